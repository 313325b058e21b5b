// SPDX-License-Identifier: GPL-2.0-only
/*
 * kprobe_post: a kprobe with a post handler on a function (default cmdline_proc_show).
 * On an ftrace call site such a kprobe claims the IPMODIFY slot, as a live patch does.
 */
#include <linux/kprobes.h>
#include <linux/module.h>

static char *symbol = "cmdline_proc_show";
module_param(symbol, charp, 0444);

static void kprobe_post_handler(struct kprobe *p, struct pt_regs *regs, unsigned long flags)
{
}

static struct kprobe kp = { .post_handler = kprobe_post_handler };

static int __init kprobe_post_init(void)
{
	kp.symbol_name = symbol;
	return register_kprobe(&kp);
}

static void __exit kprobe_post_exit(void)
{
	unregister_kprobe(&kp);
}

module_init(kprobe_post_init);
module_exit(kprobe_post_exit);
MODULE_LICENSE("GPL");
