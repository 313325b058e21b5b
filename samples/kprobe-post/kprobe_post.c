// SPDX-License-Identifier: GPL-2.0-only
/*
 * kprobe_post: a kprobe with a post handler on a function (default cmdline_proc_show).
 * On an ftrace call site such a kprobe claims the IPMODIFY slot, as a live patch does.
 * post=0: without the post handler (an ftrace user that does not modify the ip, so it
 * shares the function with a live patch). Its pre handler counts calls in hits.
 */
#include <linux/kprobes.h>
#include <linux/module.h>

static char *symbol = "cmdline_proc_show";
module_param(symbol, charp, 0444);
static bool post = true;
module_param(post, bool, 0444);
static unsigned long hits;
module_param(hits, ulong, 0444);

static int kprobe_post_pre_handler(struct kprobe *p, struct pt_regs *regs)
{
	data_race(hits++);
	return 0;
}

static void kprobe_post_handler(struct kprobe *p, struct pt_regs *regs, unsigned long flags)
{
}

static struct kprobe kp = { .pre_handler = kprobe_post_pre_handler };

static int __init kprobe_post_init(void)
{
	kp.symbol_name = symbol;
	if (post)
		kp.post_handler = kprobe_post_handler;
	return register_kprobe(&kp);
}

static void __exit kprobe_post_exit(void)
{
	unregister_kprobe(&kp);
}

module_init(kprobe_post_init);
module_exit(kprobe_post_exit);
MODULE_LICENSE("GPL");
