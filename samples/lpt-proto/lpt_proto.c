// SPDX-License-Identifier: GPL-2.0-only
/*
 * lpt_proto: a target for the consistency model's hardest case. lpt_proto_outer() calls
 * lpt_proto_inner() with a token saying which protocol the caller follows (1, standing in
 * for "takes the lock before the call"); a patch (lp_proto) changes both functions to
 * protocol 2, and old and new must never meet in one call chain: each inner counts the
 * calls it gets with its own protocol and the ones with the other (violations). 64 kernel
 * threads call lpt_proto_outer() over and over, sleeping a jiffy in outer before its call,
 * one in inner and one outside the chain, so walks find some inside and some out (a task
 * switched while asleep in the old outer would call the new inner). Read-only parameters: old_calls,
 * old_violations (the new code's are the patch module's).
 */
#include <linux/atomic.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/sched.h>

#define LPT_PROTO_THREADS 64

static struct task_struct *lpt_threads[LPT_PROTO_THREADS];
static atomic_long_t lpt_calls = ATOMIC_LONG_INIT(0), lpt_violations = ATOMIC_LONG_INIT(0);

static int lpt_get(char *buf, const struct kernel_param *kp)
{
	return sprintf(buf, "%ld\n", atomic_long_read(kp->arg));
}

static const struct kernel_param_ops lpt_counter_ops = { .get = lpt_get };
module_param_cb(old_calls, &lpt_counter_ops, &lpt_calls, 0444);
module_param_cb(old_violations, &lpt_counter_ops, &lpt_violations, 0444);

noinline int lpt_proto_inner(int token)
{
	atomic_long_inc(token == 1 ? &lpt_calls : &lpt_violations);
	schedule_timeout_uninterruptible(1);
	/* Not a tail call: this function stays on the stack while the thread sleeps. */
	barrier();
	return token;
}
EXPORT_SYMBOL_GPL(lpt_proto_inner);

noinline int lpt_proto_outer(void)
{
	int ret;

	/* Asleep here, before the call: a task switched now would call the other inner. */
	schedule_timeout_uninterruptible(1);
	ret = lpt_proto_inner(1);

	barrier();
	return ret;
}

static int lpt_proto_thread(void *data)
{
	while (!kthread_should_stop()) {
		lpt_proto_outer();
		schedule_timeout_interruptible(1);
	}
	return 0;
}

static void lpt_proto_stop(int n)
{
	while (n--)
		kthread_stop(lpt_threads[n]);
}

static int __init lpt_proto_init(void)
{
	int i;

	for (i = 0; i < LPT_PROTO_THREADS; i++) {
		lpt_threads[i] = kthread_run(lpt_proto_thread, NULL, "lpt_proto/%d", i);
		if (IS_ERR(lpt_threads[i])) {
			int ret = PTR_ERR(lpt_threads[i]);

			lpt_proto_stop(i);
			return ret;
		}
	}
	return 0;
}

static void __exit lpt_proto_exit(void)
{
	lpt_proto_stop(LPT_PROTO_THREADS);
}

module_init(lpt_proto_init);
module_exit(lpt_proto_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch test target: 64 threads calling two functions under one protocol");
