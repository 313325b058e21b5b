// SPDX-License-Identifier: GPL-2.0-only
/*
 * klp_cmdline: an in-kernel livepatch (klp) module replacing cmdline_proc_show, to show
 * that lpatch refuses a function the kernel's own livepatch core already redirects (and
 * to compare the two cores in benchmarks). With sleeper=1 it replaces lpt_sleeper_wait of
 * samples/lpt-sleeper instead: a transition of the in-kernel livepatch that the sleeping
 * thread holds until released.
 */
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

static int klp_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s\n", "patched by the in-kernel livepatch");
	return 0;
}

static struct klp_func funcs[] = {
	{ .old_name = "cmdline_proc_show", .new_func = klp_cmdline_proc_show },
	{ }
};

static struct klp_object objs[] = {
	{ .funcs = funcs },
	{ }
};

static bool sleeper;
module_param(sleeper, bool, 0444);

static int klp_sleeper_wait(void)
{
	return 1;
}

static struct klp_func sleeper_funcs[] = {
	{ .old_name = "lpt_sleeper_wait", .new_func = klp_sleeper_wait },
	{ }
};

static struct klp_object sleeper_objs[] = {
	{ .name = "lpt_sleeper", .funcs = sleeper_funcs },
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int __init klp_cmdline_init(void)
{
	if (sleeper)
		patch.objs = sleeper_objs;
	return klp_enable_patch(&patch);
}

static void __exit klp_cmdline_exit(void)
{
}

module_init(klp_cmdline_init);
module_exit(klp_cmdline_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
