// SPDX-License-Identifier: GPL-2.0-only
/*
 * Sleeps (msleep) under a spinlock on load: CONFIG_DEBUG_ATOMIC_SLEEP reports
 * "BUG: sleeping function called from invalid context". Proves the check is on and
 * that lpatch-vm's splat check catches its report. For the debug kernel only.
 */
#include <linux/delay.h>
#include <linux/module.h>
#include <linux/spinlock.h>

static DEFINE_SPINLOCK(debug_sleep_lock);

static int __init debug_sleep_init(void)
{
	spin_lock(&debug_sleep_lock);
	msleep(1);
	spin_unlock(&debug_sleep_lock);
	pr_info("debug-sleep: slept under a spinlock\n");
	return 0;
}

static void __exit debug_sleep_exit(void)
{
}

module_init(debug_sleep_init);
module_exit(debug_sleep_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch test: a sleep in atomic context for DEBUG_ATOMIC_SLEEP to report");
