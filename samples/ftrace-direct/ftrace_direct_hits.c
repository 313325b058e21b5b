// SPDX-License-Identifier: GPL-2.0-only
/*
 * ftrace_direct_hits: attaches an ftrace direct call (register_ftrace_direct, the generic
 * kind, whose ops has no way to share a function with an IPMODIFY user such as a live
 * patch) to the function at addr=, and counts its calls in the parameter hits. The
 * trampoline only increments the counter: no register is touched but the flags.
 */
#include <linux/ftrace.h>
#include <linux/module.h>
#include <asm/ibt.h>
#include <asm/linkage.h>

static unsigned long addr;
module_param(addr, ulong, 0444);
unsigned long lp_direct_hits;
module_param_named(hits, lp_direct_hits, ulong, 0444);

void lp_direct_tramp(void);
asm(".pushsection .text, \"ax\", @progbits\n"
    ".type lp_direct_tramp, @function\n"
    ".globl lp_direct_tramp\n"
    "lp_direct_tramp:\n"
    ASM_ENDBR
    "lock incq lp_direct_hits(%rip)\n"
    ASM_RET
    ".size lp_direct_tramp, .-lp_direct_tramp\n"
    ".popsection\n");

static int __init ftrace_direct_hits_init(void)
{
	int ret = register_ftrace_direct(addr, (unsigned long)lp_direct_tramp);

	pr_info("ftrace_direct_hits: register_ftrace_direct(%ps): %d\n", (void *)addr, ret);
	return ret;
}

static void __exit ftrace_direct_hits_exit(void)
{
	unregister_ftrace_direct(addr, (unsigned long)lp_direct_tramp);
}

module_init(ftrace_direct_hits_init);
module_exit(ftrace_direct_hits_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch test: an ftrace direct call counting a function's calls");
