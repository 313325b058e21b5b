// SPDX-License-Identifier: GPL-2.0-only
/*
 * recursion_hold: calls its own rh_message() with ftrace's recursion guard held, as if
 * from inside the tracing of another call, so a patch of it cannot be applied to that call.
 * Writing anything to /sys/module/recursion_hold/parameters/run logs what rh_message()
 * returns called plainly and called under the guard. (The guard lets one nested level
 * through, for interrupts arriving mid-trace: it is taken twice.)
 */
#include <linux/ftrace.h>
#include <linux/module.h>
#include <linux/trace_recursion.h>

/* The barrier keeps the compiler from taking it for a pure function and merging calls. */
noinline const char *rh_message(void)
{
	barrier();
	return "original";
}

static int rh_run(const char *val, const struct kernel_param *kp)
{
	const char *plain = rh_message(), *held = "(guard not taken)";
	int outer, inner;

	outer = ftrace_test_recursion_trylock(_THIS_IP_, _RET_IP_);
	inner = ftrace_test_recursion_trylock(_THIS_IP_, _RET_IP_);
	if (outer >= 0 && inner >= 0)
		held = rh_message();
	if (inner >= 0)
		ftrace_test_recursion_unlock(inner);
	if (outer >= 0)
		ftrace_test_recursion_unlock(outer);
	pr_info("recursion_hold: plain: %s; under the recursion guard: %s\n", plain, held);
	return 0;
}

static const struct kernel_param_ops rh_run_ops = { .set = rh_run };
module_param_cb(run, &rh_run_ops, NULL, 0200);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch test: calls a patched function with ftrace's recursion guard held");
