// SPDX-License-Identifier: GPL-2.0-only
/*
 * lpatch.ko's C glue. The logic lives in the Rust core (rust/src); this file holds what Rust
 * cannot express: module boilerplate and exports (so modpost records CRCs), static objects
 * whose layout and initialisers are C macros (the ftrace_ops, the notifier block, the mutex,
 * the sysfs attribute tables), and one-line helpers for static inlines.
 */
#include <linux/bug.h>
#include <linux/cpu.h>
#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/stacktrace.h>
#include <linux/tracepoint.h>
#include <linux/ftrace.h>
#include <linux/kernfs.h>
#include <linux/kallsyms.h>
#include <linux/kobject.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/preempt.h>
#include <linux/slab.h>
#include <linux/sysfs.h>
#include <linux/timekeeping.h>
#include <linux/workqueue.h>
#include <lpatch.h>

/* The Rust side (rust/src/lib.rs). */
int lpr_init(void);
void lpr_exit(void);
int lpr_register_patch(struct lp_patch *patch);
int lpr_unregister_patch(struct lp_patch *patch);
int lpr_enable_patch(struct lp_patch *patch);
int lpr_disable_patch(struct lp_patch *patch);
unsigned long lpr_redirect_target(unsigned long ip);
bool lpr_recursion_bypassed(unsigned long ip);
int lpr_module_notify(unsigned long action, struct module *mod);
ssize_t lpr_sysfs_show(struct kobject *kobj, const char *attr, char *buf);
ssize_t lpr_sysfs_store(struct kobject *kobj, const char *attr, const char *buf, size_t len);

/* ---- the API patch modules call ---- */
int lp_register_patch(struct lp_patch *patch) { return lpr_register_patch(patch); }
EXPORT_SYMBOL_GPL(lp_register_patch);
int lp_unregister_patch(struct lp_patch *patch) { return lpr_unregister_patch(patch); }
EXPORT_SYMBOL_GPL(lp_unregister_patch);
int lp_enable_patch(struct lp_patch *patch) { return lpr_enable_patch(patch); }
EXPORT_SYMBOL_GPL(lp_enable_patch);
int lp_disable_patch(struct lp_patch *patch) { return lpr_disable_patch(patch); }
EXPORT_SYMBOL_GPL(lp_disable_patch);

/* ---- memory, locking, preemption, taint ---- */
/* kvmalloc: tables that grow with a patch need not be physically contiguous. */
void *lpatch_kvmalloc(size_t size) { return kvmalloc(size, GFP_KERNEL); }
void *lpatch_kvrealloc(void *p, size_t old, size_t size)
{
	return kvrealloc(p, old, size, GFP_KERNEL);
}
void __noreturn lpatch_bug(void) { BUG(); }

static DEFINE_MUTEX(lpatch_mutex);	/* the one lock over every state change */
void lpatch_lock(void) { mutex_lock(&lpatch_mutex); }
void lpatch_unlock(void) { mutex_unlock(&lpatch_mutex); }
void lpatch_preempt_disable(void) { preempt_disable(); }
void lpatch_preempt_enable(void) { preempt_enable(); }
/*
 * Returns once every online CPU has run a work item, so has scheduled since the call: all
 * that was running then with preemption disabled (every call of the ftrace handler,
 * interrupt and NMI code) has finished, idle CPUs included, where RCU is not watching and
 * synchronize_rcu() would not wait. As schedule_on_each_cpu(), which the in-kernel
 * livepatch uses for the same reason, but with static works: it never allocates, so never
 * fails. Callers hold lpatch_mutex (one user of the works at a time).
 */
static DEFINE_PER_CPU(struct work_struct, lpatch_sync_work);
static void lpatch_sync_nothing(struct work_struct *work) { }
void lpatch_sync_cpus(void)
{
	int cpu;

	cpus_read_lock();
	for_each_online_cpu(cpu) {
		INIT_WORK(per_cpu_ptr(&lpatch_sync_work, cpu), lpatch_sync_nothing);
		schedule_work_on(cpu, per_cpu_ptr(&lpatch_sync_work, cpu));
	}
	for_each_online_cpu(cpu)
		flush_work(per_cpu_ptr(&lpatch_sync_work, cpu));
	cpus_read_unlock();
}
/* synchronize_rcu_tasks is a macro for synchronize_rcu on kernels without TASKS_RCU. */
void lpatch_synchronize_tasks(void) { lpatch_sync_cpus(); synchronize_rcu_tasks(); }
unsigned long lpatch_start_kernel(void) { return __START_KERNEL; }
/* mutex_lock is a macro under lockdep: for text_mutex, which Rust finds through kallsyms. */
void lpatch_mutex_lock(struct mutex *m) { mutex_lock(m); }
void lpatch_mutex_unlock(struct mutex *m) { mutex_unlock(m); }

/*
 * A patch module's ELF section headers and symbols, which the loader keeps only for a
 * module tagged MODULE_INFO(livepatch, "Y") on a CONFIG_LIVEPATCH kernel (copy_module_elf;
 * its symtab is then the whole of core_kallsyms, in ELF order). Returns e_shnum, 0 if none.
 */
unsigned int lpatch_module_elf(struct module *mod, const Elf64_Shdr **sechdrs,
			       const char **secstrings, const Elf64_Sym **symtab,
			       unsigned int *nsyms, const char **strtab)
{
#ifdef CONFIG_LIVEPATCH
	if (!mod->klp_info)
		return 0;
	*sechdrs = mod->klp_info->sechdrs;
	*secstrings = mod->klp_info->secstrings;
	*symtab = mod->core_kallsyms.symtab;
	*nsyms = mod->core_kallsyms.num_symtab;
	*strtab = mod->core_kallsyms.strtab;
	return mod->klp_info->hdr.e_shnum;
#else
	return 0;
#endif
}

/* ---- redirection: one ftrace_ops for every patched function ---- */
static void notrace lpatch_ftrace_handler(unsigned long ip, unsigned long parent_ip,
					  struct ftrace_ops *ops, struct ftrace_regs *fregs)
{
	/* Also disables preemption: the Rust lookup relies on it for RCU. */
	int bit = ftrace_test_recursion_trylock(ip, parent_ip);
	unsigned long target;

	if (bit < 0) {
		/*
		 * A patched function called from inside the tracing of another call: the
		 * original runs. Silent, that would be a fix not applied; say so once per
		 * function (a log line, not a WARN: the kernel is fine).
		 */
		preempt_disable_notrace();
		if (lpr_recursion_bypassed(ip))
			pr_warn("lpatch: %ps called recursively inside ftrace: its original ran, not the replacement\n",
				(void *)ip);
		preempt_enable_notrace();
		return;
	}
	target = lpr_redirect_target(ip);
	if (target)
		ftrace_instruction_pointer_set(fregs, target);
	ftrace_test_recursion_unlock(bit);
}

/*
 * Registered only while some function is redirected (so `sysctl kernel.ftrace_enabled=0`
 * works when nothing is patched); PERMANENT meanwhile: ftrace refuses that sysctl rather
 * than silently stop every redirection, as it does for the in-kernel livepatch.
 */
static struct ftrace_ops lpatch_ops = {
	.func = lpatch_ftrace_handler,
	.flags = FTRACE_OPS_FL_IPMODIFY | FTRACE_OPS_FL_PERMANENT,
};

int lpatch_ftrace_filter(unsigned long *ips, unsigned int n, int remove, int reset)
{
	return ftrace_set_filter_ips(&lpatch_ops, ips, n, remove, reset);
}
int lpatch_ftrace_register(void) { return register_ftrace_function(&lpatch_ops); }
int lpatch_ftrace_unregister(void) { return unregister_ftrace_function(&lpatch_ops); }

/* ---- the consistency model: per-task state, task walks, the switch at syscall exit ---- */
/*
 * task_struct.patch_state exists only on CONFIG_LIVEPATCH kernels; without it the core
 * switches every task at once. A task_struct is opaque to Rust: these read and write it.
 */
#ifdef CONFIG_LIVEPATCH
bool lpatch_has_task_states(void) { return true; }
int lpatch_current_patch_state(void) { return READ_ONCE(current->patch_state); }
int lpatch_task_patch_state(struct task_struct *t) { return READ_ONCE(t->patch_state); }
void lpatch_task_set_patch_state(struct task_struct *t, int s) { WRITE_ONCE(t->patch_state, s); }
#else
bool lpatch_has_task_states(void) { return false; }
int lpatch_current_patch_state(void) { return -1; }
int lpatch_task_patch_state(struct task_struct *t) { return -1; }
void lpatch_task_set_patch_state(struct task_struct *t, int s) { }
#endif
struct task_struct *lpatch_current(void) { return current; }
int lpatch_mutex_trylock(struct mutex *m) { return mutex_trylock(m); }

/*
 * Calls f(task, data) for every thread under the kernel's tasklist_lock (not exported: the
 * caller found it through kallsyms). When f returns nonzero the lock is let go for a moment
 * (forks, exits and writers get their turn) and the walk goes on after that task if it and
 * its process are still on the list; if not it stops there. Returns whether it saw every
 * task; *longest_ns grows to the longest the lock was held at once.
 */
bool lpatch_walk_tasks(rwlock_t *tasklist, int (*f)(struct task_struct *, void *), void *data,
		       u64 *longest_ns)
{
	struct task_struct *g, *t;
	u64 start;

	read_lock(tasklist);
	start = ktime_get_ns();
	for_each_process_thread(g, t) {
		if (!f(t, data))
			continue;
		get_task_struct(g);
		get_task_struct(t);
		*longest_ns = max(*longest_ns, ktime_get_ns() - start);
		read_unlock(tasklist);
		cond_resched();
		read_lock(tasklist);
		start = ktime_get_ns();
		if (!pid_alive(g) || !pid_alive(t)) {
			read_unlock(tasklist);
			/* Possibly the last references: dropped with the lock let go. */
			put_task_struct(t);
			put_task_struct(g);
			return false;
		}
		/* Both still on the list, so neither reference is the last. */
		put_task_struct(t);
		put_task_struct(g);
	}
	*longest_ns = max(*longest_ns, ktime_get_ns() - start);
	read_unlock(tasklist);
	return true;
}

/* What a stall report says of a task, and the nudges for tasks not yet switched. */
int lpatch_task_pid(struct task_struct *t) { return task_pid_nr(t); }
void lpatch_task_comm(struct task_struct *t, char *buf) { strscpy_pad(buf, t->comm, TASK_COMM_LEN); }
bool lpatch_task_is_kthread(struct task_struct *t) { return t->flags & PF_KTHREAD; }
/* wake_up_state is not exported: the caller found it through kallsyms. */
void lpatch_wake_kthread(struct task_struct *t, int (*wake_up_state)(struct task_struct *, unsigned int))
{
	wake_up_state(t, TASK_INTERRUPTIBLE);
}
/* set_notify_signal(), a static inline over wake_up_state. */
void lpatch_notify_signal(struct task_struct *t, int (*wake_up_state)(struct task_struct *, unsigned int))
{
	if (!test_and_set_tsk_thread_flag(t, TIF_NOTIFY_SIGNAL) && !wake_up_state(t, TASK_INTERRUPTIBLE))
		kick_process(t);
}
u64 lpatch_now_ns(void) { return ktime_get_ns(); }
void lpatch_describe_code(char *buf, size_t len, unsigned long addr)
{
	char sym[KSYM_SYMBOL_LEN];

	sprint_symbol(sym, addr);
	strscpy(buf, sym, len);
}

/* The idle task of a CPU, from smpboot's per-CPU idle_threads (found through kallsyms). */
struct task_struct *lpatch_idle_task(struct task_struct **idle_threads, int cpu)
{
	return *per_cpu_ptr(idle_threads, cpu);
}
int lpatch_nr_cpu_ids(void) { return nr_cpu_ids; }
bool lpatch_cpu_possible(int cpu) { return cpu_possible(cpu); }
bool lpatch_cpu_online(int cpu) { return cpu_online(cpu); }
long lpatch_work_on_cpu(int cpu, long (*fn)(void *), void *arg) { return work_on_cpu(cpu, fn, arg); }

/*
 * The switch at syscall exit: a probe on the sys_exit tracepoint (registered only during
 * a transition: it puts every syscall on the slow path) sets the leaving task's state to
 * the goal. Only the exit path is on its stack there.
 */
static struct tracepoint *lpatch_tp_sys_exit;
static int lpatch_syscall_goal;
static void lpatch_find_sys_exit(struct tracepoint *tp, void *priv)
{
	if (!strcmp(tp->name, "sys_exit"))
		lpatch_tp_sys_exit = tp;
}
static void notrace lpatch_sys_exit_probe(void *data, struct pt_regs *regs, long ret)
{
#ifdef CONFIG_LIVEPATCH
	int goal = READ_ONCE(lpatch_syscall_goal);

	if (READ_ONCE(current->patch_state) != goal)
		WRITE_ONCE(current->patch_state, goal);
#endif
}
/*
 * goal >= 0: on, switching to goal (if on already, to the new goal once this returns);
 * goal < 0: off, returning once no probe runs. Called by the transition owner only.
 */
static bool lpatch_syscall_on;
int lpatch_syscall_switch(int goal)
{
	int ret;

	if (goal >= 0) {
		if (!lpatch_tp_sys_exit)
			for_each_kernel_tracepoint(lpatch_find_sys_exit, NULL);
		if (!lpatch_tp_sys_exit)
			return -ENOENT;
		WRITE_ONCE(lpatch_syscall_goal, goal);
		if (lpatch_syscall_on) {
			/* A reversal: no probe sets the old goal once this returns. */
			tracepoint_synchronize_unregister();
			return 0;
		}
		ret = tracepoint_probe_register(lpatch_tp_sys_exit, lpatch_sys_exit_probe, NULL);
		lpatch_syscall_on = !ret;
		return ret;
	}
	if (!lpatch_syscall_on)
		return 0;
	ret = tracepoint_probe_unregister(lpatch_tp_sys_exit, lpatch_sys_exit_probe, NULL);
	tracepoint_synchronize_unregister();
	lpatch_syscall_on = false;
	return ret;
}

/*
 * The transition owner: one kernel thread for the core's lifetime runs every enable and
 * disable and the walks between, so the in-kernel livepatch's mutex, held for a whole
 * transition, is taken and released by one task.
 */
static DECLARE_WAIT_QUEUE_HEAD(lpatch_thread_wq);
static atomic_t lpatch_thread_kicked;
static DECLARE_COMPLETION(lpatch_request_done);
static DEFINE_MUTEX(lpatch_request_mutex);	/* one request at a time */
struct task_struct *lpatch_thread_start(int (*fn)(void *))
{
	return kthread_run(fn, NULL, "lpatch");
}
void lpatch_thread_stop(struct task_struct *t) { kthread_stop(t); }
bool lpatch_thread_should_stop(void) { return kthread_should_stop(); }
void lpatch_thread_kick(void)
{
	atomic_set(&lpatch_thread_kicked, 1);
	wake_up(&lpatch_thread_wq);
}
/* Sleeps until kicked, stopped, or ms milliseconds pass (ms < 0: no time limit). */
void lpatch_thread_wait(long ms)
{
#define LPATCH_WOKEN (atomic_xchg(&lpatch_thread_kicked, 0) || kthread_should_stop())
	if (ms < 0)
		wait_event_interruptible(lpatch_thread_wq, LPATCH_WOKEN);
	else
		wait_event_interruptible_timeout(lpatch_thread_wq, LPATCH_WOKEN, msecs_to_jiffies(ms));
#undef LPATCH_WOKEN
}
/*
 * The fault-injection countdown (fail-nth) of a task that hands a request to the core's
 * thread goes with the request and comes back with the answer, so an injected allocation
 * failure reaches the work done on that task's behalf (the debug kernel's tests walk it).
 */
unsigned int lpatch_fail_nth_take(void)
{
#ifdef CONFIG_FAULT_INJECTION
	unsigned int n = current->fail_nth;

	current->fail_nth = 0;
	return n;
#else
	return 0;
#endif
}
void lpatch_fail_nth_put(unsigned int n)
{
#ifdef CONFIG_FAULT_INJECTION
	current->fail_nth = n;
#endif
}
void lpatch_request_lock(void) { mutex_lock(&lpatch_request_mutex); }
void lpatch_request_unlock(void) { mutex_unlock(&lpatch_request_mutex); }
void lpatch_request_prepare(void) { reinit_completion(&lpatch_request_done); }
void lpatch_request_wait(void) { wait_for_completion(&lpatch_request_done); }
void lpatch_request_complete(void) { complete(&lpatch_request_done); }

/* ---- module arrivals and departures ---- */
static int lpatch_module_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	return notifier_from_errno(lpr_module_notify(action, data));
}

static struct notifier_block lpatch_module_nb = {
	.notifier_call = lpatch_module_notify,
	/* Before other notifiers see a coming module, so its functions are already patched. */
	.priority = INT_MAX,
};
int lpatch_module_notifier(int on)
{
	return on ? register_module_notifier(&lpatch_module_nb)
		  : unregister_module_notifier(&lpatch_module_nb);
}

/* ---- sysfs: one attribute table per directory kind; Rust formats and parses ---- */
static ssize_t lpatch_show(struct kobject *kobj, struct kobj_attribute *attr, char *buf)
{
	return lpr_sysfs_show(kobj, attr->attr.name, buf);
}
static ssize_t lpatch_store(struct kobject *kobj, struct kobj_attribute *attr,
			    const char *buf, size_t len)
{
	return lpr_sysfs_store(kobj, attr->attr.name, buf, len);
}

static struct kobj_attribute lpatch_attr_enabled = __ATTR(enabled, 0644, lpatch_show, lpatch_store);
static struct kobj_attribute lpatch_attr_transition = __ATTR(transition, 0444, lpatch_show, NULL);
static struct attribute *lpatch_patch_attrs[] = {
	&lpatch_attr_enabled.attr, &lpatch_attr_transition.attr, NULL
};
static const struct attribute_group lpatch_patch_group = { .attrs = lpatch_patch_attrs };

static struct kobj_attribute lpatch_attr_old_addr = __ATTR(old_addr, 0400, lpatch_show, NULL);
static struct kobj_attribute lpatch_attr_new_addr = __ATTR(new_addr, 0400, lpatch_show, NULL);
static struct attribute *lpatch_func_attrs[] = {
	&lpatch_attr_old_addr.attr, &lpatch_attr_new_addr.attr, NULL
};
static const struct attribute_group lpatch_func_group = { .attrs = lpatch_func_attrs };

/* kind: 0 = a patch directory, 1 = a function directory (objects have no attributes). */
int lpatch_sysfs_add_attrs(struct kobject *kobj, int kind)
{
	return sysfs_create_group(kobj, kind ? &lpatch_func_group : &lpatch_patch_group);
}
struct kobject *lpatch_kernel_kobj(void) { return kernel_kobj; }
bool lpatch_kernel_has_dir(const char *name)
{
	struct kernfs_node *kn = kernfs_find_and_get(kernel_kobj->sd, name);

	kernfs_put(kn);
	return kn != NULL;
}

static int __init lpatch_init(void) { return lpr_init(); }
static void __exit lpatch_exit(void) { lpr_exit(); }

module_init(lpatch_init);
module_exit(lpatch_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lpatch: live patching core written in Rust");
MODULE_VERSION(LPATCH_VERSION);
