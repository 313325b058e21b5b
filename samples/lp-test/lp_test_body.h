/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A patch module driven by parameters, to exercise every path of the core from the tests:
 * which object and function(s) to patch, sympos/old_addr, which replacement, and bad
 * inputs. Built under several names (lp_test_a, _b, ...) so a test can load several.
 *
 *   obj=<module>    object to patch (default: vmlinux)
 *   func=<name>     function to replace; func2=<name> a second one
 *   sympos=N old_addr=0x...
 *   repl=0|1|2|3    replacement: 0 returns 0 (for functions never called), 1 a
 *                   cmdline_proc_show that prints "<this module>", 2 an
 *                   lpt_target_message that returns "patched by <this module>", 3 an
 *                   arch_cpu_idle that polls (interrupts on, back to the idle loop at
 *                   once, so it runs over and over where RCU is not watching), counting
 *                   its calls in the read-only parameter idle_calls; 4 an
 *                   lpt_sleeper_nap that sleeps while the parameter hold is 1 (writable),
 *                   counting its calls in naps: a task inside a patch's new code; 5 a
 *                   __x64_sys_getpid that returns the pid with bit 30 set
 *   bad=1..5        NULL patch / NULL mod / NULL objs / NULL funcs / NULL new_func
 *   twice=1         register a second time (expects -EEXIST) before enabling
 *   enable=0        register only
 *   extra=1..3      after enabling: enable again / unregister / disable twice (errors logged)
 *   fail_after_enable=1   init fails after enabling (the module goes away while patched)
 *   pause_ms=N      sleep N ms between register and enable (the window in which the
 *                   patch's sysfs exists but its init has not enabled it yet)
 *   fail_walk=1     the Nth slab allocation of register + enable fails (the kernel's per-task
 *                   fail-nth; needs CONFIG_FAILSLAB), for N = 1, 2, ... in turn, all within
 *                   this init (no module reload per N): each N's register + enable must
 *                   fail whole (then the patch is not registered) or succeed (then it is
 *                   disabled and unregistered again); ends enabled at the first N past the
 *                   last allocation. Logs each step.
 *   fail_walk=2     the same walk over removal: for N = 1, 2, ... register and enable
 *                   (no failure armed), then disable and unregister with the Nth slab
 *                   allocation failing. Both must succeed at every N (lpatch allocates
 *                   nothing there; ftrace's own filter update may fail, which the core
 *                   absorbs). Ends unregistered at the first N no allocation reaches.
 */
#include <linux/delay.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <lpatch.h>

static char *obj;
module_param(obj, charp, 0444);
static char *func;
module_param(func, charp, 0444);
static char *func2;
module_param(func2, charp, 0444);
static unsigned long sympos;
module_param(sympos, ulong, 0444);
static unsigned long old_addr;
module_param(old_addr, ulong, 0444);
static int repl;
module_param(repl, int, 0444);
static int bad;
module_param(bad, int, 0444);
static bool twice;
module_param(twice, bool, 0444);
static bool enable = true;
module_param(enable, bool, 0444);
static int extra;
module_param(extra, int, 0444);
static bool fail_after_enable;
module_param(fail_after_enable, bool, 0444);
static int fail_walk;
module_param(fail_walk, int, 0444);
static unsigned int pause_ms;
module_param(pause_ms, uint, 0444);
static unsigned long idle_calls;
module_param(idle_calls, ulong, 0444);
static bool hold = true;
module_param(hold, bool, 0644);
static unsigned long naps;
module_param(naps, ulong, 0444);

static int lp_test_noop(void)
{
	return 0;
}

static int lp_test_cmdline(struct seq_file *m, void *v)
{
	seq_printf(m, "%s\n", KBUILD_MODNAME);
	return 0;
}

static const char *lp_test_message(void)
{
	return "patched by " KBUILD_MODNAME;
}

/*
 * Called as arch_cpu_idle: after ct_idle_enter(), interrupts off, to return them on. It
 * polls briefly with interrupts on, as idle=poll does, so that interrupts are taken here:
 * under qemu's TCG, which delivers them only between translated blocks, a window of one
 * instruction after sti could starve a vCPU of them (a guest once hung silently, every
 * CPU in this loop).
 */
static void lp_test_idle(void)
{
	int i;

	data_race(idle_calls++);
	raw_local_irq_enable();
	for (i = 0; i < 64 && !need_resched(); i++)
		cpu_relax();
}

static int lp_test_nap(void)
{
	WRITE_ONCE(naps, naps + 1);
	while (READ_ONCE(hold))
		msleep(20);
	return 1;
}

static long lp_test_getpid(const struct pt_regs *regs)
{
	return task_tgid_vnr(current) | (1L << 30);
}

static struct lp_func funcs[3];
static struct lp_object objs[2];
static struct lp_patch patch;

#ifdef CONFIG_FAILSLAB
static int lp_test_fail_walk(void)
{
	unsigned int n, left;
	int ret, off, gone;

	for (n = 1; n <= 1000; n++) {
		current->fail_nth = n;
		ret = lp_register_patch(&patch);
		if (!ret) {
			ret = lp_enable_patch(&patch);
			if (ret)
				lp_unregister_patch(&patch);
		}
		left = current->fail_nth;
		current->fail_nth = 0;
		if (left) {
			pr_info(KBUILD_MODNAME ": walk %u: not reached, returned %d\n", n, ret);
			return ret;
		}
		if (ret) {
			/* Refused whole: not registered, so unregistering must fail. */
			gone = lp_unregister_patch(&patch);
			pr_info(KBUILD_MODNAME ": walk %u: returned %d, unregister then %d\n", n, ret, gone);
			continue;
		}
		off = lp_disable_patch(&patch);
		gone = lp_unregister_patch(&patch);
		pr_info(KBUILD_MODNAME ": walk %u: absorbed, disable %d, unregister %d\n", n, off, gone);
	}
	return -E2BIG;
}

static int lp_test_removal_walk(void)
{
	unsigned int n, left;
	int ret, off, gone;

	for (n = 1; n <= 1000; n++) {
		ret = lp_register_patch(&patch);
		if (!ret)
			ret = lp_enable_patch(&patch);
		if (ret) {
			pr_err(KBUILD_MODNAME ": removal walk %u: register and enable returned %d\n", n, ret);
			return ret;
		}
		current->fail_nth = n;
		off = lp_disable_patch(&patch);
		gone = lp_unregister_patch(&patch);
		left = current->fail_nth;
		current->fail_nth = 0;
		pr_info(KBUILD_MODNAME ": removal walk %u: %s, disable %d, unregister %d\n", n,
			left ? "not reached" : "failed", off, gone);
		if (left)
			return 0;
	}
	return -E2BIG;
}
#else
static int lp_test_fail_walk(void)
{
	pr_err(KBUILD_MODNAME ": fail_walk needs a kernel with CONFIG_FAILSLAB\n");
	return -EOPNOTSUPP;
}

static int lp_test_removal_walk(void)
{
	return lp_test_fail_walk();
}
#endif

static int __init lp_test_init(void)
{
	void *new_func = repl == 1 ? (void *)lp_test_cmdline :
			 repl == 2 ? (void *)lp_test_message :
			 repl == 3 ? (void *)lp_test_idle :
			 repl == 4 ? (void *)lp_test_nap :
			 repl == 5 ? (void *)lp_test_getpid : (void *)lp_test_noop;
	int ret, ret2;

	funcs[0] = (struct lp_func){ .old_name = func, .new_func = new_func,
				     .old_addr = old_addr, .old_sympos = sympos };
	if (func2)
		funcs[1] = (struct lp_func){ .old_name = func2, .new_func = new_func };
	objs[0] = (struct lp_object){ .name = obj, .funcs = funcs };
	patch = (struct lp_patch){ .mod = THIS_MODULE, .objs = objs };

	switch (bad) {
	case 1: ret = lp_register_patch(NULL); goto out;
	case 2: patch.mod = NULL; break;
	case 3: patch.objs = NULL; break;
	case 4: objs[0].funcs = NULL; objs[0].name = obj ? obj : "vmlinux_is_null_here"; break;
	case 5: funcs[0].new_func = NULL; break;
	}
	if (fail_walk) {
		ret = fail_walk == 2 ? lp_test_removal_walk() : lp_test_fail_walk();
		goto out;
	}
	ret = lp_register_patch(&patch);
	if (ret)
		goto out;
	if (twice) {
		ret2 = lp_register_patch(&patch);
		pr_info(KBUILD_MODNAME ": second register: %d\n", ret2);
	}
	if (!enable)
		goto out;
	if (pause_ms) {
		pr_info(KBUILD_MODNAME ": registered, enabling in %u ms\n", pause_ms);
		msleep(pause_ms);
	}
	ret = lp_enable_patch(&patch);
	if (ret) {
		lp_unregister_patch(&patch);
		goto out;
	}
	switch (extra) {
	case 1: pr_info(KBUILD_MODNAME ": enable again: %d\n", lp_enable_patch(&patch)); break;
	case 2: pr_info(KBUILD_MODNAME ": unregister while enabled: %d\n", lp_unregister_patch(&patch)); break;
	case 3:
		pr_info(KBUILD_MODNAME ": disable: %d\n", lp_disable_patch(&patch));
		pr_info(KBUILD_MODNAME ": disable again: %d\n", lp_disable_patch(&patch));
		pr_info(KBUILD_MODNAME ": enable after disable: %d\n", lp_enable_patch(&patch));
		break;
	}
	if (fail_after_enable)
		ret = -EAGAIN;
out:
	pr_info(KBUILD_MODNAME ": init returns %d\n", ret);
	return ret;
}

static void __exit lp_test_exit(void)
{
	pr_info(KBUILD_MODNAME ": unregister: %d\n", lp_unregister_patch(&patch));
}

module_init(lp_test_init);
module_exit(lp_test_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch test patch module, driven by parameters");
