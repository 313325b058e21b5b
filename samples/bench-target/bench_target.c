// SPDX-License-Identifier: GPL-2.0-only
/*
 * bench_target: the per-call benchmark (lpatch-bench, P1). bench_f() is a small traceable
 * function for patches to replace; bench_f_direct() has the replacement's code (x + 2),
 * called directly, as the floor.
 *
 * /proc/bench_target, write:
 *   "f <n>"       call bench_f n times through a volatile function pointer
 *   "direct <n>"  the same with bench_f_direct
 *   "rawops 1|0"  a control: one ftrace_ops (IPMODIFY) on bench_f whose handler only
 *                 sets the ip to bench_f_direct; 0 removes it
 * read: the last run, "<mode> <n> <ns> <value>", ns from ktime_get_ns around the loop
 * (preemption off), value = the function called once more with 0: 1 = bench_f's own
 * code ran, 2 = the replacement's.
 */
#include <linux/ftrace.h>
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/string.h>
#include <linux/uaccess.h>

noinline int bench_f(int x)
{
	return x + 1;
}

noinline int bench_f_direct(int x)
{
	return x + 2;
}

static DEFINE_MUTEX(bench_lock);
static char last_mode[16] = "none";
static unsigned long last_n;
static u64 last_ns;
static int last_value;

static int (*volatile bench_fp)(int);

static void bench_run(const char *mode, int (*fn)(int), unsigned long n)
{
	unsigned long i;
	u64 t0, t1;

	bench_fp = fn;
	preempt_disable();
	t0 = ktime_get_ns();
	for (i = 0; i < n; i++)
		bench_fp((int)i);
	t1 = ktime_get_ns();
	preempt_enable();
	strscpy(last_mode, mode, sizeof(last_mode));
	last_n = n;
	last_ns = t1 - t0;
	last_value = bench_fp(0);
}

static void notrace bench_raw_handler(unsigned long ip, unsigned long parent_ip,
				      struct ftrace_ops *ops, struct ftrace_regs *fregs)
{
	ftrace_instruction_pointer_set(fregs, (unsigned long)bench_f_direct);
}

static struct ftrace_ops bench_raw_ops = {
	.func = bench_raw_handler,
	.flags = FTRACE_OPS_FL_IPMODIFY,
};
static bool raw_on;

static int bench_rawops(bool on)
{
	int ret;

	if (on == raw_on)
		return 0;
	if (on) {
		ret = ftrace_set_filter_ip(&bench_raw_ops, (unsigned long)bench_f, 0, 0);
		if (ret)
			return ret;
		ret = register_ftrace_function(&bench_raw_ops);
		if (ret) {
			ftrace_set_filter_ip(&bench_raw_ops, (unsigned long)bench_f, 1, 0);
			return ret;
		}
	} else {
		ret = unregister_ftrace_function(&bench_raw_ops);
		if (ret)
			return ret;
		ftrace_set_filter_ip(&bench_raw_ops, (unsigned long)bench_f, 1, 0);
	}
	raw_on = on;
	return 0;
}

static ssize_t bench_write(struct file *file, const char __user *ubuf, size_t len, loff_t *off)
{
	char buf[64], mode[16];
	unsigned long n;
	int ret;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = 0;
	if (sscanf(buf, "%15s %lu", mode, &n) != 2)
		return -EINVAL;
	mutex_lock(&bench_lock);
	ret = 0;
	if (!strcmp(mode, "f"))
		bench_run(mode, bench_f, n);
	else if (!strcmp(mode, "direct"))
		bench_run(mode, bench_f_direct, n);
	else if (!strcmp(mode, "rawops"))
		ret = bench_rawops(n != 0);
	else
		ret = -EINVAL;
	mutex_unlock(&bench_lock);
	return ret ? ret : len;
}

static int bench_show(struct seq_file *m, void *v)
{
	mutex_lock(&bench_lock);
	seq_printf(m, "%s %lu %llu %d\n", last_mode, last_n, last_ns, last_value);
	mutex_unlock(&bench_lock);
	return 0;
}

static int bench_open(struct inode *inode, struct file *file)
{
	return single_open(file, bench_show, NULL);
}

static const struct proc_ops bench_proc_ops = {
	.proc_open = bench_open,
	.proc_read = seq_read,
	.proc_write = bench_write,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
};

static int __init bench_init(void)
{
	if (!proc_create("bench_target", 0644, NULL, &bench_proc_ops))
		return -ENOMEM;
	return 0;
}

static void __exit bench_exit(void)
{
	remove_proc_entry("bench_target", NULL);
	mutex_lock(&bench_lock);
	bench_rawops(false);
	mutex_unlock(&bench_lock);
}

module_init(bench_init);
module_exit(bench_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch-bench: a function to patch, called in a tight loop");
