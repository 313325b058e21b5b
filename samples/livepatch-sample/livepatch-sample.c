// SPDX-License-Identifier: GPL-2.0-only
/*
 * livepatch-sample: replaces cmdline_proc_show, so /proc/cmdline reads
 * "this has been live patched". The lpatch counterpart of the kernel's
 * samples/livepatch/livepatch-sample.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/seq_file.h>
#include <lpatch.h>

static int livepatch_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s\n", "this has been live patched");
	return 0;
}

static struct lp_func funcs[] = {
	{ .old_name = "cmdline_proc_show", .new_func = livepatch_cmdline_proc_show },
	{ }
};

static struct lp_object objs[] = {
	{ .name = NULL, .funcs = funcs },	/* vmlinux */
	{ }
};

static struct lp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int __init livepatch_init(void)
{
	int ret = lp_register_patch(&patch);

	if (ret)
		return ret;
	ret = lp_enable_patch(&patch);
	if (ret)
		lp_unregister_patch(&patch);
	return ret;
}

static void __exit livepatch_exit(void)
{
	lp_unregister_patch(&patch);
}

module_init(livepatch_init);
module_exit(livepatch_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch sample: replaces cmdline_proc_show");
