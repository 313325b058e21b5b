// SPDX-License-Identifier: GPL-2.0-only
/*
 * Allocates with GFP_KERNEL (which may sleep) under a spinlock on load:
 * CONFIG_DEBUG_ATOMIC_SLEEP reports "BUG: sleeping function called from invalid
 * context" although nothing actually sleeps here, which only that check can see. Proves
 * the check is on and that lpatch-vm's splat check catches its report. For the debug
 * kernel only.
 *
 * (msleep() under the lock would be caught too, but differently: 6.1's msleep() has no
 * might_sleep(), so the report is the scheduler's "BUG: scheduling while atomic", which
 * the stock kernel prints as well.)
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

static DEFINE_SPINLOCK(debug_sleep_lock);

static int __init debug_sleep_init(void)
{
	void *p;

	spin_lock(&debug_sleep_lock);
	p = kmalloc(64, GFP_KERNEL);
	spin_unlock(&debug_sleep_lock);
	kfree(p);
	pr_info("debug-sleep: allocated with GFP_KERNEL under a spinlock\n");
	return 0;
}

static void __exit debug_sleep_exit(void)
{
}

module_init(debug_sleep_init);
module_exit(debug_sleep_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch test: a may-sleep allocation in atomic context for DEBUG_ATOMIC_SLEEP to report");
