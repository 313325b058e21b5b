// SPDX-License-Identifier: GPL-2.0-only
/*
 * lpt_target: a module for patches to target. /proc/lpt_target shows what
 * lpt_target_message() returns ("original" until a patch replaces it).
 * fail_init=1 makes its init fail after its functions exist (and may be patched).
 * init_ms=N makes its init sleep N ms first (the module stays COMING meanwhile).
 * lpt_target_twin_alias is a second name of lpt_target_twin (one address).
 * lpt_target_setup is __init code, called by its init (a patch naming it is refused).
 *
 * Statics a patch reaches only through relocations (issue 22): lpt_bump() adds to the
 * counter lpt_hits; /proc/lpt_target_hits shows it, through code no patch replaces.
 * lpt_twin_name is static here and in lpt_target_other.c ("main", "other").
 */
#include <linux/delay.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>

static bool fail_init;
module_param(fail_init, bool, 0444);
static unsigned int init_ms;
module_param(init_ms, uint, 0444);

noinline const char *lpt_target_message(void)
{
	return "original";
}

/*
 * A function with a second name (one address), as an alias or GCC's identical-code folding
 * makes one: a patch naming both must be refused. Apart from lpt_target_message, whose name
 * the other tests read back from ftrace (which prints one name per address).
 */
noinline int lpt_target_twin(void)
{
	return 2;
}
int lpt_target_twin_alias(void) __attribute__((alias("lpt_target_twin")));

/* __init: freed once the init returns; traceable while it runs. */
static noinline int __init lpt_target_setup(void)
{
	return init_ms ? 1 : 0;
}

static unsigned int lpt_hits;
static const char *lpt_twin_name __used = "main";
const char *lpt_target_other_name(void);

/* noipa: all its callers here pass 0, which GCC would otherwise fold into its body. */
static noinline __attribute__((__noipa__)) unsigned int lpt_bump(unsigned int by)
{
	lpt_hits += by;
	return lpt_hits;
}

static int lpt_hits_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%u %s %s\n", lpt_bump(0), lpt_twin_name, lpt_target_other_name());
	return 0;
}

static int lpt_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s\n", lpt_target_message());
	return 0;
}

static int __init lpt_init(void)
{
	if (lpt_target_setup())
		msleep(init_ms);
	if (fail_init) {
		pr_info("lpt_target: init sees message '%s', failing on request\n", lpt_target_message());
		return -EAGAIN;
	}
	if (!proc_create_single("lpt_target", 0444, NULL, lpt_show))
		return -ENOMEM;
	if (!proc_create_single("lpt_target_hits", 0444, NULL, lpt_hits_show)) {
		remove_proc_entry("lpt_target", NULL);
		return -ENOMEM;
	}
	return 0;
}

static void __exit lpt_exit(void)
{
	remove_proc_entry("lpt_target_hits", NULL);
	remove_proc_entry("lpt_target", NULL);
}

module_init(lpt_init);
module_exit(lpt_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch test target module");
