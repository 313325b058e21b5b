// SPDX-License-Identifier: GPL-2.0-only
/*
 * Like lp_reloc_vmlinux, but its replacement also reads a vmlinux symbol that does not exist:
 * the module loader cannot resolve that relocation and refuses the load (ENOENT, and
 * "livepatch: symbol '...' not found in symbol table"), before any of it runs.
 */
#include <linux/module.h>
#include <linux/sysctl.h>
#include <lpatch.h>

extern int lpt_no_such_kernel_symbol;
LPATCH_SYM(vmlinux, lpt_no_such_kernel_symbol, 0);

static int lp_proc_do_uuid(struct ctl_table *table, int write, void *buf, size_t *lenp,
			   loff_t *ppos)
{
	return lpt_no_such_kernel_symbol;
}

static struct lp_func funcs[] = {
	{ .old_name = "proc_do_uuid", .new_func = lp_proc_do_uuid },
	{ }
};
static struct lp_object objs[] = { { .name = NULL, .funcs = funcs }, { } };
static struct lp_patch patch = { .mod = THIS_MODULE, .objs = objs };

static int __init lp_reloc_vmlinux_missing_init(void)
{
	int ret = lp_register_patch(&patch);

	if (ret)
		return ret;
	ret = lp_enable_patch(&patch);
	if (ret)
		lp_unregister_patch(&patch);
	return ret;
}

static void __exit lp_reloc_vmlinux_missing_exit(void)
{
	lp_unregister_patch(&patch);
}

module_init(lp_reloc_vmlinux_missing_init);
module_exit(lp_reloc_vmlinux_missing_exit);
MODULE_LICENSE("GPL");
