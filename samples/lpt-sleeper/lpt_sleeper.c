// SPDX-License-Identifier: GPL-2.0-only
/*
 * lpt_sleeper: a kernel thread that sleeps inside a function a patch replaces, for the
 * consistency model's tests. On load its thread enters lpt_sleeper_wait() and sleeps there
 * until "release" is written to /proc/lpt_sleeper; then it returns and rests in
 * lpt_sleeper_rest() (not patched) until the module goes. Reading /proc/lpt_sleeper shows
 * where the thread is ("waiting", "resting").
 *
 * A second thread, lpt_napper, calls lpt_sleeper_nap() (which returns at once) and
 * sleeps 50 ms between calls outside it, so it switches at once; a replacement of
 * lpt_sleeper_nap that sleeps keeps it inside a patch's new code.
 */
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

static DECLARE_WAIT_QUEUE_HEAD(lpt_sleeper_wq);
static bool lpt_released;
static const char *lpt_where = "starting";
static struct task_struct *lpt_thread, *lpt_napper;

/* Where the thread sleeps until released: the function a patch replaces. */
noinline int lpt_sleeper_wait(void)
{
	WRITE_ONCE(lpt_where, "waiting");
	wait_event_interruptible(lpt_sleeper_wq, READ_ONCE(lpt_released) || kthread_should_stop());
	return 1;
}

noinline void lpt_sleeper_rest(void)
{
	WRITE_ONCE(lpt_where, "resting");
	wait_event_interruptible(lpt_sleeper_wq, kthread_should_stop());
}

static int lpt_sleeper_thread(void *data)
{
	lpt_sleeper_wait();
	lpt_sleeper_rest();
	return 0;
}

static unsigned long lpt_nap_calls;

/* Counts its calls: a function without side effects could be called by no one. */
noinline int lpt_sleeper_nap(void)
{
	WRITE_ONCE(lpt_nap_calls, lpt_nap_calls + 1);
	return 0;
}

static int lpt_napper_thread(void *data)
{
	while (!kthread_should_stop()) {
		lpt_sleeper_nap();
		msleep_interruptible(50);
	}
	return 0;
}

static int lpt_sleeper_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s\n", READ_ONCE(lpt_where));
	return 0;
}

static int lpt_sleeper_open(struct inode *inode, struct file *file)
{
	return single_open(file, lpt_sleeper_show, NULL);
}

static ssize_t lpt_sleeper_write(struct file *file, const char __user *buf, size_t len, loff_t *pos)
{
	char word[8] = { };

	if (copy_from_user(word, buf, min(len, sizeof(word) - 1)))
		return -EFAULT;
	if (strncmp(word, "release", 7))
		return -EINVAL;
	WRITE_ONCE(lpt_released, true);
	wake_up_interruptible(&lpt_sleeper_wq);
	return len;
}

static const struct proc_ops lpt_sleeper_ops = {
	.proc_open = lpt_sleeper_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = lpt_sleeper_write,
};

static int __init lpt_sleeper_init(void)
{
	if (!proc_create("lpt_sleeper", 0644, NULL, &lpt_sleeper_ops))
		return -ENOMEM;
	lpt_thread = kthread_run(lpt_sleeper_thread, NULL, "lpt_sleeper");
	if (IS_ERR(lpt_thread)) {
		remove_proc_entry("lpt_sleeper", NULL);
		return PTR_ERR(lpt_thread);
	}
	lpt_napper = kthread_run(lpt_napper_thread, NULL, "lpt_napper");
	if (IS_ERR(lpt_napper)) {
		kthread_stop(lpt_thread);
		remove_proc_entry("lpt_sleeper", NULL);
		return PTR_ERR(lpt_napper);
	}
	return 0;
}

static void __exit lpt_sleeper_exit(void)
{
	kthread_stop(lpt_napper);
	kthread_stop(lpt_thread);
	remove_proc_entry("lpt_sleeper", NULL);
}

module_init(lpt_sleeper_init);
module_exit(lpt_sleeper_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch test target: a kernel thread asleep in a patchable function");
