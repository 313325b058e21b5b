// SPDX-License-Identifier: GPL-2.0-only
/*
 * A patch of vmlinux whose replacement calls a static function and updates a static
 * variable of the patched file, drivers/char/random.c, through relocations the module
 * loader applies (LPATCH_SYM, converted by `lpatch klp-convert`).
 *
 * It replaces proc_do_uuid, the handler of /proc/sys/kernel/random/{uuid,boot_id}: each
 * read adds one to the static sysctl_random_min_urandom_seed and prints it with the static
 * proc_do_rointvec. /proc/sys/kernel/random/urandom_min_reseed_secs shows the same int
 * through the kernel's own, unpatched, path: the variable is the kernel's.
 *
 * Built a second time as lp_reloc_vmlinux_missing (LP_MISSING): its replacement also reads
 * a vmlinux symbol that does not exist, so the module loader cannot resolve that relocation
 * and refuses the load (EINVAL, "livepatch: symbol '...' not found in symbol table")
 * before any of it runs.
 */
#include <linux/module.h>
#include <linux/sysctl.h>
#include <lpatch.h>

extern int sysctl_random_min_urandom_seed;
LPATCH_SYM(vmlinux, sysctl_random_min_urandom_seed, 0);
extern int proc_do_rointvec(struct ctl_table *table, int write, void *buf, size_t *lenp,
			    loff_t *ppos);
LPATCH_SYM(vmlinux, proc_do_rointvec, 0);
#ifdef LP_MISSING
extern int lpt_no_such_kernel_symbol;
LPATCH_SYM(vmlinux, lpt_no_such_kernel_symbol, 0);
#endif

static int lp_proc_do_uuid(struct ctl_table *table, int write, void *buf, size_t *lenp,
			   loff_t *ppos)
{
	struct ctl_table counter = {
		.data = &sysctl_random_min_urandom_seed,
		.maxlen = sizeof(int),
		.mode = 0444,
	};

	if (write)
		return -EPERM;
#ifdef LP_MISSING
	if (lpt_no_such_kernel_symbol)
		return -EIO;
#endif
	if (!*ppos)
		sysctl_random_min_urandom_seed++;
	return proc_do_rointvec(&counter, 0, buf, lenp, ppos);
}

static struct lp_func funcs[] = {
	{ .old_name = "proc_do_uuid", .new_func = lp_proc_do_uuid },
	{ }
};
static struct lp_object objs[] = { { .name = NULL, .funcs = funcs }, { } };
static struct lp_patch patch = { .mod = THIS_MODULE, .objs = objs };

static int __init lp_reloc_vmlinux_init(void)
{
	int ret = lp_register_patch(&patch);

	if (ret)
		return ret;
	ret = lp_enable_patch(&patch);
	if (ret)
		lp_unregister_patch(&patch);
	return ret;
}

static void __exit lp_reloc_vmlinux_exit(void)
{
	lp_unregister_patch(&patch);
}

module_init(lp_reloc_vmlinux_init);
module_exit(lp_reloc_vmlinux_exit);
MODULE_LICENSE("GPL");
