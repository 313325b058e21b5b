// SPDX-License-Identifier: GPL-2.0-only
/*
 * lp_proto: the patch of samples/lpt-proto's two functions to protocol 2. Its outer calls
 * the target's lpt_proto_inner (so each call goes through the redirection, decided for the
 * calling task then): with a consistency model each task's chain is all old or all new.
 * Read-only parameters: new_calls, new_violations.
 */
#include <linux/atomic.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <lpatch.h>

int lpt_proto_inner(int token);

static atomic_long_t lp_calls = ATOMIC_LONG_INIT(0), lp_violations = ATOMIC_LONG_INIT(0);

static int lp_get(char *buf, const struct kernel_param *kp)
{
	return sprintf(buf, "%ld\n", atomic_long_read(kp->arg));
}

static const struct kernel_param_ops lp_counter_ops = { .get = lp_get };
module_param_cb(new_calls, &lp_counter_ops, &lp_calls, 0444);
module_param_cb(new_violations, &lp_counter_ops, &lp_violations, 0444);

static noinline int lp_proto_inner(int token)
{
	atomic_long_inc(token == 2 ? &lp_calls : &lp_violations);
	schedule_timeout_uninterruptible(1);
	barrier();
	return token;
}

static noinline int lp_proto_outer(void)
{
	int ret;

	/* Asleep here, before the call: a task switched now would call the other inner. */
	schedule_timeout_uninterruptible(1);
	ret = lpt_proto_inner(2);

	barrier();
	return ret;
}

static struct lp_func funcs[] = {
	{ .old_name = "lpt_proto_outer", .new_func = lp_proto_outer },
	{ .old_name = "lpt_proto_inner", .new_func = lp_proto_inner },
	{ }
};

static struct lp_object objs[] = {
	{ .name = "lpt_proto", .funcs = funcs },
	{ }
};

static struct lp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int __init lp_proto_init(void)
{
	int ret = lp_register_patch(&patch);

	if (ret)
		return ret;
	ret = lp_enable_patch(&patch);
	if (ret)
		lp_unregister_patch(&patch);
	return ret;
}

static void __exit lp_proto_exit(void)
{
	lp_unregister_patch(&patch);
}

module_init(lp_proto_init);
module_exit(lp_proto_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch test patch: lpt_proto's two functions to protocol 2");
