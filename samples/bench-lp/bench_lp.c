// SPDX-License-Identifier: GPL-2.0-only
/*
 * bench_lp: an lpatch patch replacing bench_target's bench_f (x + 1) with x + 2, for the
 * per-call benchmark (lpatch-bench, P1). Registered and enabled from init.
 */
#include <linux/module.h>
#include <lpatch.h>

static noinline int bench_f_new(int x)
{
	return x + 2;
}

static struct lp_func funcs[] = {
	{ .old_name = "bench_f", .new_func = bench_f_new },
	{ }
};
static struct lp_object objs[] = { { .name = "bench_target", .funcs = funcs }, { } };
static struct lp_patch patch = { .mod = THIS_MODULE, .objs = objs };

static int __init bench_lp_init(void)
{
	int ret = lp_register_patch(&patch);

	if (!ret) {
		ret = lp_enable_patch(&patch);
		if (ret)
			lp_unregister_patch(&patch);
	}
	return ret;
}

static void __exit bench_lp_exit(void)
{
	lp_unregister_patch(&patch);
}

module_init(bench_lp_init);
module_exit(bench_lp_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch-bench: lpatch patch of bench_f");
