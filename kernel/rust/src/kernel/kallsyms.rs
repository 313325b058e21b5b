//! Symbols the core needs but the kernel does not export to modules, reached through
//! kallsyms: `kallsyms_lookup_name` itself is found by registering a kprobe on it (the
//! kprobe's resolved address is the function), and everything else through it.

use super::ffi;
use super::modules::ModPtr;
use core::ffi::{c_char, c_int, c_ulong, c_void, CStr};
use lpatch_logic::error::{Error, Result};

type LookupName = unsafe extern "C" fn(*const c_char) -> c_ulong;
type SymbolCb = unsafe extern "C" fn(*mut c_void, *const c_char, *mut ffi::module, c_ulong) -> c_int;
type OnEachSymbol = unsafe extern "C" fn(SymbolCb, *mut c_void) -> c_int;
type FindModule = unsafe extern "C" fn(*const c_char) -> *mut ffi::module;
type FtraceLocation = unsafe extern "C" fn(c_ulong) -> c_ulong;
type TextPoke = unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> *mut c_void;
type TextPokeSync = unsafe extern "C" fn();
type FindRecDirect = unsafe extern "C" fn(c_ulong) -> c_ulong;
type SizeOffset = unsafe extern "C" fn(c_ulong, *mut c_ulong, *mut c_ulong) -> c_int;

/// The unexported kernel functions the core calls, found once at load.
pub struct Kallsyms {
    vmlinux_on_each: OnEachSymbol,
    modules_on_each: OnEachSymbol,
    find_module: FindModule,
    ftrace_location: FtraceLocation,
    text_poke: TextPoke,
    text_poke_sync: TextPokeSync,
    /// text_mutex, which text_poke's callers hold.
    text_mutex: usize,
    /// ftrace's `int ftrace_enabled` (sysctl kernel.ftrace_enabled).
    ftrace_enabled: usize,
    /// ftrace's direct calls (BPF trampolines, register_ftrace_direct): `direct_mutex`,
    /// which serialises their changes, and `ftrace_find_rec_direct`. None on a kernel
    /// built without them.
    direct: Option<(usize, FindRecDirect)>,
    size_offset: SizeOffset,
    lookup_name: LookupName,
    /// How far KASLR moved the kernel from its link-time address.
    pub kaslr_offset: usize,
}

fn kprobe_lookup_name() -> Result<LookupName> {
    // SAFETY: an all-zero kprobe is its documented initial state; we set only symbol_name
    // and flags.
    let mut kp: ffi::kprobe = unsafe { core::mem::zeroed() };
    kp.symbol_name = c"kallsyms_lookup_name".as_ptr();
    // Registered disabled: kprobes resolves the address but never arms the probe, so ftrace
    // is not touched. (Armed, it is an ftrace-based probe; registered and unregistered while
    // sysctl kernel.ftrace_enabled=0, 6.1 leaves a stale flag on kallsyms_lookup_name's
    // ftrace record, and the next time the last ftrace_ops goes — ours, when the last patch
    // is disabled — ftrace's sanity check WARNs and kills ftrace for good.)
    kp.flags = ffi::KPROBE_FLAG_DISABLED;
    // SAFETY: kp lives until unregister_kprobe below; the kprobe has no handlers, so it
    // never fires into us.
    let ret = unsafe { ffi::register_kprobe(&mut kp) };
    if ret < 0 {
        pr_err!("cannot find kallsyms_lookup_name: register_kprobe failed ({})", ret);
        return Err(Error::check(ret).err().unwrap_or(Error::ENOENT));
    }
    let addr = kp.addr as usize;
    // SAFETY: kp was registered just above.
    unsafe { ffi::unregister_kprobe(&mut kp) };
    if addr == 0 {
        return Err(Error::ENOENT);
    }
    // SAFETY: kprobes resolved the symbol kallsyms_lookup_name, whose C signature is
    // `unsigned long kallsyms_lookup_name(const char *)`.
    Ok(unsafe { core::mem::transmute::<usize, LookupName>(addr) })
}

fn lookup(f: LookupName, name: &CStr) -> Result<usize> {
    // SAFETY: f is kallsyms_lookup_name; name is NUL-terminated.
    let addr = unsafe { f(name.as_ptr()) } as usize;
    if addr == 0 {
        pr_err!("kernel symbol {} not found", name.to_str().unwrap_or("?"));
        return Err(Error::ENOENT);
    }
    Ok(addr)
}

/// As [`lookup`], for a symbol a kernel may lack: no log line.
fn lookup_quiet(f: LookupName, name: &CStr) -> Option<usize> {
    // SAFETY: f is kallsyms_lookup_name; name is NUL-terminated.
    let addr = unsafe { f(name.as_ptr()) } as usize;
    (addr != 0).then_some(addr)
}

impl Kallsyms {
    pub fn init() -> Result<Kallsyms> {
        let f = kprobe_lookup_name()?;
        let text = lookup(f, c"_text")?;
        // SAFETY (all the transmutes): each address is the named kernel function, whose C
        // signature in this kernel series (6.1) is the one the target type spells.
        unsafe {
            Ok(Kallsyms {
                vmlinux_on_each: core::mem::transmute::<usize, OnEachSymbol>(lookup(f, c"kallsyms_on_each_symbol")?),
                modules_on_each: core::mem::transmute::<usize, OnEachSymbol>(lookup(
                    f,
                    c"module_kallsyms_on_each_symbol",
                )?),
                find_module: core::mem::transmute::<usize, FindModule>(lookup(f, c"find_module")?),
                ftrace_location: core::mem::transmute::<usize, FtraceLocation>(lookup(f, c"ftrace_location")?),
                text_poke: core::mem::transmute::<usize, TextPoke>(lookup(f, c"text_poke")?),
                text_poke_sync: core::mem::transmute::<usize, TextPokeSync>(lookup(f, c"text_poke_sync")?),
                text_mutex: lookup(f, c"text_mutex")?,
                ftrace_enabled: lookup(f, c"ftrace_enabled")?,
                direct: lookup_quiet(f, c"direct_mutex").zip(
                    lookup_quiet(f, c"ftrace_find_rec_direct").map(|a| core::mem::transmute::<usize, FindRecDirect>(a)),
                ),
                size_offset: core::mem::transmute::<usize, SizeOffset>(lookup(f, c"kallsyms_lookup_size_offset")?),
                lookup_name: f,
                kaslr_offset: text.wrapping_sub(ffi::lpatch_start_kernel() as usize),
            })
        }
    }

    /// The address of `name`, if the kernel has it (no log line when not).
    pub fn lookup_quiet(&self, name: &CStr) -> Option<usize> {
        lookup_quiet(self.lookup_name, name)
    }

    /// The size of the function (or object) starting at `addr`; 0 when `addr` is not a
    /// symbol's start or kallsyms does not know it.
    pub fn function_size(&self, addr: usize) -> usize {
        let (mut size, mut offset): (c_ulong, c_ulong) = (0, 0);
        // SAFETY: kallsyms_lookup_size_offset only reads the symbol tables and writes the
        // two out-parameters, ours.
        let found = unsafe { (self.size_offset)(addr as c_ulong, &mut size, &mut offset) };
        if found == 0 || offset != 0 {
            return 0;
        }
        size as usize
    }

    /// Calls `f(name, address)` for every vmlinux symbol, in kallsyms order.
    pub fn for_each_vmlinux_symbol<F: FnMut(&[u8], usize)>(&self, mut f: F) {
        let mut state = Walk { f: &mut f, only: None };
        // SAFETY: the callback matches SymbolCb and `state` outlives the walk.
        unsafe { (self.vmlinux_on_each)(walk_cb::<F>, &mut state as *mut Walk<'_, F> as *mut c_void) };
    }

    /// Calls `f(name, address)` for every symbol of one module, in kallsyms order. Takes
    /// module_mutex (inside the kernel's walker): never call with it held.
    pub fn for_each_module_symbol<F: FnMut(&[u8], usize)>(&self, module: ModPtr, mut f: F) {
        let mut state = Walk {
            f: &mut f,
            only: Some(module.as_ptr()),
        };
        // SAFETY: as above.
        unsafe { (self.modules_on_each)(walk_cb::<F>, &mut state as *mut Walk<'_, F> as *mut c_void) };
    }

    /// The address of `addr`'s ftrace call site when `addr` is a traceable function's start.
    pub fn ftrace_location(&self, addr: usize) -> Option<usize> {
        // SAFETY: ftrace_location only reads ftrace's tables.
        let loc = unsafe { (self.ftrace_location)(addr as c_ulong) } as usize;
        (loc != 0).then_some(loc)
    }

    /// Writes `bytes` at `addr` as the kernel writes code: text_poke under text_mutex.
    ///
    /// # Safety
    /// `addr..addr + bytes.len()` is mapped kernel memory (module text or data included)
    /// that no one else writes meanwhile, and fewer than a page long.
    pub unsafe fn text_poke(&self, addr: usize, bytes: &[u8]) {
        // SAFETY: text_mutex is the kernel's mutex for text_poke; text_poke maps the page(s)
        // of `addr` writable through a temporary mm and copies, as the caller allows.
        unsafe {
            ffi::lpatch_mutex_lock(self.text_mutex as *mut c_void);
            (self.text_poke)(addr as *mut c_void, bytes.as_ptr().cast(), bytes.len());
            ffi::lpatch_mutex_unlock(self.text_mutex as *mut c_void);
        }
    }

    /// Runs `f` with ftrace's direct calls held still (direct_mutex: no BPF trampoline or
    /// register_ftrace_direct user attaches or detaches meanwhile), giving it the question
    /// "does a direct call sit on this call site?". ftrace's own functions may be called
    /// from `f`, register_ftrace_function excepted (it takes the same mutex).
    pub fn with_direct_calls_held<R>(&self, f: impl FnOnce(&dyn Fn(usize) -> bool) -> R) -> R {
        let Some((mutex, find)) = self.direct else {
            return f(&|_| false);
        };
        let is_direct = |ip: usize| {
            // SAFETY: ftrace_find_rec_direct only looks `ip` up in ftrace's hash of direct
            // calls, which direct_mutex (held here) keeps from changing.
            unsafe { find(ip as c_ulong) != 0 }
        };
        // SAFETY: direct_mutex is ftrace's static mutex; taken and released in order, in
        // process context, before ftrace_lock as ftrace itself takes them.
        unsafe { ffi::lpatch_mutex_lock(mutex as *mut c_void) };
        let r = f(&is_direct);
        // SAFETY: taken just above.
        unsafe { ffi::lpatch_mutex_unlock(mutex as *mut c_void) };
        r
    }

    /// Whether ftrace is switched on (sysctl kernel.ftrace_enabled).
    pub fn ftrace_enabled(&self) -> bool {
        // SAFETY: ftrace_enabled is a static int of vmlinux, always mapped; the sysctl
        // writes it under ftrace_lock, and a racy read of an aligned int is one load.
        unsafe { core::ptr::read_volatile(self.ftrace_enabled as *const c_int) != 0 }
    }

    /// Makes every CPU see code text_poke wrote (a serialising IPI to each).
    pub fn text_poke_sync(&self) {
        // SAFETY: text_poke_sync takes no arguments and only syncs the CPUs' cores.
        unsafe { (self.text_poke_sync)() }
    }

    pub(super) fn find_module_raw(&self, name: &CStr) -> *mut ffi::module {
        // SAFETY: callers hold preemption disabled (modules.rs), which find_module requires.
        unsafe { (self.find_module)(name.as_ptr()) }
    }
}

struct Walk<'a, F> {
    f: &'a mut F,
    only: Option<*mut ffi::module>,
}

unsafe extern "C" fn walk_cb<F: FnMut(&[u8], usize)>(
    data: *mut c_void,
    name: *const c_char,
    module: *mut ffi::module,
    addr: c_ulong,
) -> c_int {
    // SAFETY: data is the Walk passed by for_each_*; name is a NUL-terminated kallsyms name.
    unsafe {
        let w = &mut *(data as *mut Walk<'_, F>);
        if w.only.is_some_and(|m| m != module) || name.is_null() {
            return 0;
        }
        (w.f)(CStr::from_ptr(name).to_bytes(), addr as usize);
    }
    0
}
