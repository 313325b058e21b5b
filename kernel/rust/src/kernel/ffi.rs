//! Raw declarations: the layouts and functions bindgen generated from the target kernel's
//! own headers, plus the C glue's helpers (for what is a macro or a static inline in C).
//! Nothing here is safe to call directly outside `kernel`: the safe wrappers sit beside it.

mod generated {
    #![allow(warnings, clippy::all)]
    include!(env!("LPATCH_BINDINGS"));
}
pub use generated::*;

extern "C" {
    /// kvmalloc(size, GFP_KERNEL): kmalloc, or vmalloc past what kmalloc finds.
    pub fn lpatch_kvmalloc(size: usize) -> *mut core::ffi::c_void;
    /// kvrealloc(p, old, size, GFP_KERNEL): a new block and a copy when growing (the old
    /// one kept on failure), `p` itself when not.
    pub fn lpatch_kvrealloc(p: *mut core::ffi::c_void, old: usize, size: usize) -> *mut core::ffi::c_void;
    /// BUG(): the end of a Rust panic. It never returns, but is declared as returning so the
    /// caller can end with `ud2` where objtool expects the function to end.
    pub fn lpatch_bug();
}

// The glue's helpers (lpatch_glue.c), one line each in C.
extern "C" {
    pub fn lpatch_lock();
    pub fn lpatch_unlock();
    pub fn lpatch_preempt_disable();
    pub fn lpatch_preempt_enable();
    pub fn lpatch_synchronize_tasks();
    pub fn lpatch_sync_cpus();
    pub fn lpatch_start_kernel() -> core::ffi::c_ulong;
    pub fn lpatch_mutex_lock(m: *mut core::ffi::c_void);
    pub fn lpatch_mutex_unlock(m: *mut core::ffi::c_void);
    /// `module` is a `struct module *` (its layout holds types that are not FFI-safe).
    pub fn lpatch_module_elf(
        module: *mut core::ffi::c_void,
        sechdrs: *mut *const Elf64_Shdr,
        secstrings: *mut *const core::ffi::c_char,
        symtab: *mut *const Elf64_Sym,
        nsyms: *mut core::ffi::c_uint,
        strtab: *mut *const core::ffi::c_char,
    ) -> core::ffi::c_uint;
    pub fn lpatch_ftrace_filter(
        ips: *mut core::ffi::c_ulong,
        n: core::ffi::c_uint,
        remove: core::ffi::c_int,
        reset: core::ffi::c_int,
    ) -> core::ffi::c_int;
    pub fn lpatch_ftrace_register() -> core::ffi::c_int;
    pub fn lpatch_ftrace_unregister() -> core::ffi::c_int;
    pub fn lpatch_module_notifier(on: core::ffi::c_int) -> core::ffi::c_int;
    pub fn lpatch_sysfs_add_attrs(kobj: *mut kobject, kind: core::ffi::c_int) -> core::ffi::c_int;
    pub fn lpatch_kernel_kobj() -> *mut kobject;
    pub fn lpatch_kernel_has_dir(name: *const core::ffi::c_char) -> bool;
    pub fn lpatch_has_task_states() -> bool;
    pub fn lpatch_current_patch_state() -> core::ffi::c_int;
    /// Tasks are `struct task_struct *`, opaque here.
    pub fn lpatch_task_patch_state(t: *mut core::ffi::c_void) -> core::ffi::c_int;
    pub fn lpatch_task_set_patch_state(t: *mut core::ffi::c_void, s: core::ffi::c_int);
    pub fn lpatch_current() -> *mut core::ffi::c_void;
    pub fn lpatch_mutex_trylock(m: *mut core::ffi::c_void) -> core::ffi::c_int;
    pub fn lpatch_walk_tasks(
        tasklist: *mut core::ffi::c_void,
        f: Option<unsafe extern "C" fn(*mut core::ffi::c_void, *mut core::ffi::c_void) -> core::ffi::c_int>,
        data: *mut core::ffi::c_void,
        longest_ns: *mut u64,
    ) -> bool;
    pub fn lpatch_task_pid(t: *mut core::ffi::c_void) -> core::ffi::c_int;
    pub fn lpatch_task_comm(t: *mut core::ffi::c_void, buf: *mut u8);
    pub fn lpatch_task_is_kthread(t: *mut core::ffi::c_void) -> bool;
    pub fn lpatch_wake_kthread(
        t: *mut core::ffi::c_void,
        wake_up_state: unsafe extern "C" fn(*mut core::ffi::c_void, core::ffi::c_uint) -> core::ffi::c_int,
    );
    pub fn lpatch_notify_signal(
        t: *mut core::ffi::c_void,
        wake_up_state: unsafe extern "C" fn(*mut core::ffi::c_void, core::ffi::c_uint) -> core::ffi::c_int,
    );
    pub fn lpatch_now_ns() -> u64;
    pub fn lpatch_describe_code(buf: *mut u8, len: usize, addr: core::ffi::c_ulong);
    pub fn lpatch_idle_task(idle_threads: *mut *mut core::ffi::c_void, cpu: core::ffi::c_int)
        -> *mut core::ffi::c_void;
    pub fn lpatch_nr_cpu_ids() -> core::ffi::c_int;
    pub fn lpatch_cpu_possible(cpu: core::ffi::c_int) -> bool;
    pub fn lpatch_cpu_online(cpu: core::ffi::c_int) -> bool;
    pub fn lpatch_work_on_cpu(
        cpu: core::ffi::c_int,
        f: Option<unsafe extern "C" fn(*mut core::ffi::c_void) -> core::ffi::c_long>,
        arg: *mut core::ffi::c_void,
    ) -> core::ffi::c_long;
    pub fn lpatch_syscall_switch(goal: core::ffi::c_int) -> core::ffi::c_int;
    pub fn lpatch_thread_start(
        f: Option<unsafe extern "C" fn(*mut core::ffi::c_void) -> core::ffi::c_int>,
    ) -> *mut core::ffi::c_void;
    pub fn lpatch_thread_stop(t: *mut core::ffi::c_void);
    pub fn lpatch_thread_should_stop() -> bool;
    pub fn lpatch_thread_kick();
    pub fn lpatch_thread_wait(ms: core::ffi::c_long);
    pub fn lpatch_fail_nth_take() -> core::ffi::c_uint;
    pub fn lpatch_fail_nth_put(n: core::ffi::c_uint);
    pub fn lpatch_request_lock();
    pub fn lpatch_request_unlock();
    pub fn lpatch_request_prepare();
    pub fn lpatch_request_wait();
    pub fn lpatch_request_complete();
}
