/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A patch of module lpt_target whose replacement reaches the module's statics through
 * relocations (LPATCH_SYM, converted by `lpatch klp-convert`): it calls the static
 * function lpt_bump(), adds to the static counter lpt_hits, and reads one of the two
 * statics named lpt_twin_name, by sympos. /proc/lpt_target then shows
 * "relocated <hits> <twin>", and /proc/lpt_target_hits the same counter through lpt_target's
 * own code. Built under three names:
 *   lp_reloc_mod      sympos 2 of lpt_twin_name ("other"): the working patch
 *   lp_reloc_ambig    sympos 0 of lpt_twin_name: ambiguous, refused
 *   lp_reloc_missing  also names lpt_no_such_symbol: refused
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <lpatch.h>

extern unsigned int lpt_bump(unsigned int by);
LPATCH_SYM(lpt_target, lpt_bump, 0);
extern unsigned int lpt_hits;
LPATCH_SYM(lpt_target, lpt_hits, 0);
extern const char *lpt_twin_name;
LPATCH_SYM(lpt_target, lpt_twin_name, LP_TWIN_SYMPOS);

#ifdef LP_MISSING
extern int lpt_no_such_symbol;
LPATCH_SYM(lpt_target, lpt_no_such_symbol, 0);
#define LP_EXTRA (lpt_no_such_symbol ? "!" : "")
#else
#define LP_EXTRA ""
#endif

static char lp_buf[64];

static const char *lp_reloc_message(void)
{
	lpt_hits += 100;
	snprintf(lp_buf, sizeof(lp_buf), "relocated %u %s%s", lpt_bump(1), lpt_twin_name, LP_EXTRA);
	return lp_buf;
}

static struct lp_func funcs[] = {
	{ .old_name = "lpt_target_message", .new_func = lp_reloc_message },
	{ }
};
static struct lp_object objs[] = { { .name = "lpt_target", .funcs = funcs }, { } };
static struct lp_patch patch = { .mod = THIS_MODULE, .objs = objs };

static int __init lp_reloc_init(void)
{
	int ret = lp_register_patch(&patch);

	if (ret)
		return ret;
	ret = lp_enable_patch(&patch);
	if (ret)
		lp_unregister_patch(&patch);
	return ret;
}

static void __exit lp_reloc_exit(void)
{
	lp_unregister_patch(&patch);
}

module_init(lp_reloc_init);
module_exit(lp_reloc_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
