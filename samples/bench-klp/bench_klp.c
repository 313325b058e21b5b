// SPDX-License-Identifier: GPL-2.0-only
/*
 * bench_klp: an in-kernel livepatch (klp) patch replacing bench_target's bench_f (x + 1)
 * with x + 2, for the per-call benchmark (lpatch-bench, P1).
 */
#include <linux/livepatch.h>
#include <linux/module.h>

static noinline int bench_f_new(int x)
{
	return x + 2;
}

static struct klp_func funcs[] = {
	{ .old_name = "bench_f", .new_func = bench_f_new },
	{ }
};
static struct klp_object objs[] = { { .name = "bench_target", .funcs = funcs }, { } };
static struct klp_patch patch = { .mod = THIS_MODULE, .objs = objs };

static int __init bench_klp_init(void)
{
	return klp_enable_patch(&patch);
}

static void __exit bench_klp_exit(void)
{
}

module_init(bench_klp_init);
module_exit(bench_klp_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("lpatch-bench: klp patch of bench_f");
