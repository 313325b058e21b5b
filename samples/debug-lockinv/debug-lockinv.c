// SPDX-License-Identifier: GPL-2.0-only
/*
 * Takes two mutexes in both orders on load: lockdep (CONFIG_PROVE_LOCKING) reports a
 * possible circular locking dependency. Proves the debug kernel's lockdep is on and
 * that lpatch-vm's splat check catches its report. For the debug kernel only.
 */
#include <linux/module.h>
#include <linux/mutex.h>

static DEFINE_MUTEX(debug_lockinv_a);
static DEFINE_MUTEX(debug_lockinv_b);

static int __init debug_lockinv_init(void)
{
	mutex_lock(&debug_lockinv_a);
	mutex_lock(&debug_lockinv_b);
	mutex_unlock(&debug_lockinv_b);
	mutex_unlock(&debug_lockinv_a);

	mutex_lock(&debug_lockinv_b);
	mutex_lock(&debug_lockinv_a);
	mutex_unlock(&debug_lockinv_a);
	mutex_unlock(&debug_lockinv_b);

	pr_info("debug-lockinv: took a then b, and b then a\n");
	return 0;
}

static void __exit debug_lockinv_exit(void)
{
}

module_init(debug_lockinv_init);
module_exit(debug_lockinv_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch test: a lock-order inversion for lockdep to report");
