// SPDX-License-Identifier: GPL-2.0-only
/*
 * lpt_target's second file: a static of the same name as one in lpt_target_main.c, so the
 * module has two symbols lpt_twin_name (kallsyms order: main's first, then this one's) and
 * a patch must pick one by sympos.
 */
#include <linux/compiler.h>

static const char *lpt_twin_name __used = "other";

const char *lpt_target_other_name(void)
{
	return lpt_twin_name;
}
