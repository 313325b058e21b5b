// SPDX-License-Identifier: GPL-2.0-only
/*
 * A module whose init deliberately triggers a WARN(), so the VM tests can show that
 * lpatch-vm's splat check really fails when the kernel complains.
 */
#include <linux/bug.h>
#include <linux/module.h>

static int __init test_warn_init(void)
{
	WARN(1, "lpatch test-warn: deliberate warning");
	return 0;
}

static void __exit test_warn_exit(void)
{
}

module_init(test_warn_init);
module_exit(test_warn_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch test: WARN() on load");
