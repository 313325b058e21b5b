// SPDX-License-Identifier: GPL-2.0-only
/*
 * Reads a kmalloc'ed object after kfree() on load: KASAN reports a use-after-free.
 * Proves the debug kernel's KASAN is on and that lpatch-vm's splat check catches its
 * report. For the debug kernel only (elsewhere it reads freed memory unnoticed).
 */
#include <linux/compiler.h>
#include <linux/module.h>
#include <linux/slab.h>

static int __init debug_uaf_init(void)
{
	char *p = kmalloc(64, GFP_KERNEL);
	char v;

	if (!p)
		return -ENOMEM;
	p[8] = 1;
	kfree(p);
	OPTIMIZER_HIDE_VAR(p); /* no compile-time use-after-free warning */
	v = READ_ONCE(p[8]);
	pr_info("debug-uaf: read %d after kfree\n", v);
	return 0;
}

static void __exit debug_uaf_exit(void)
{
}

module_init(debug_uaf_init);
module_exit(debug_uaf_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch test: a use-after-free for KASAN to report");
