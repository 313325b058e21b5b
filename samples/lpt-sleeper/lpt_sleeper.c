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
 *
 * A third, lpt_dozer, sleeps an hour inside lpt_sleeper_doze() unless woken, then 1.5 s
 * outside it, and again. A user task writing "hold" sleeps inside lpt_sleeper_hold()
 * until "unhold" is written, or a signal interrupts it (the write then restarts). The
 * read-only parameters dozes and holds count the calls of each.
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
static struct task_struct *lpt_thread, *lpt_napper, *lpt_dozer;
static bool lpt_unheld;
static unsigned long dozes, holds;
module_param(dozes, ulong, 0444);
module_param(holds, ulong, 0444);

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

noinline void lpt_sleeper_doze(void)
{
	WRITE_ONCE(dozes, dozes + 1);
	schedule_timeout_interruptible(3600 * HZ);
	/* Not a tail call: this function stays on the stack while the thread sleeps. */
	barrier();
}

static int lpt_dozer_thread(void *data)
{
	while (!kthread_should_stop()) {
		lpt_sleeper_doze();
		/* Outside the function long enough for a walk to find it here. */
		if (!kthread_should_stop())
			msleep(1500);
	}
	return 0;
}

noinline int lpt_sleeper_hold(void)
{
	WRITE_ONCE(holds, holds + 1);
	return wait_event_interruptible(lpt_sleeper_wq, READ_ONCE(lpt_unheld));
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
	if (!strncmp(word, "hold", 4)) {
		int ret = lpt_sleeper_hold();

		return ret ? ret : len;
	}
	if (!strncmp(word, "unhold", 6))
		WRITE_ONCE(lpt_unheld, true);
	else if (!strncmp(word, "release", 7))
		WRITE_ONCE(lpt_released, true);
	else
		return -EINVAL;
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
	lpt_dozer = kthread_run(lpt_dozer_thread, NULL, "lpt_dozer");
	if (IS_ERR(lpt_dozer)) {
		kthread_stop(lpt_napper);
		kthread_stop(lpt_thread);
		remove_proc_entry("lpt_sleeper", NULL);
		return PTR_ERR(lpt_dozer);
	}
	return 0;
}

static void __exit lpt_sleeper_exit(void)
{
	kthread_stop(lpt_dozer);
	kthread_stop(lpt_napper);
	kthread_stop(lpt_thread);
	remove_proc_entry("lpt_sleeper", NULL);
}

module_init(lpt_sleeper_init);
module_exit(lpt_sleeper_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch test target: a kernel thread asleep in a patchable function");
