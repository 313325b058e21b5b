// SPDX-License-Identifier: GPL-2.0-only
//! The commands. Each returns Ok(()) or a [`Failure`] that says in words what went wrong.

use crate::errno;
use crate::ftrace_users;
use crate::kmsg::{self, Cursor};
use crate::ops::KernelOps;
use crate::procmods::{self, Module};
use crate::render;
use crate::sysfs::{self, CoreKind, Layout, Patch};
use crate::taint::{self, Taint};
use serde::Serialize;
use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// The kernel (or the core) refused the operation, or it did not have the expected effect.
    Failed = 1,
    /// The command line asks for something this tool does not do.
    Usage = 2,
    /// No such patch, file or module, or the lpatch core is not loaded.
    NotFound = 3,
    /// Permission denied: the operation needs root.
    Permission = 4,
}

#[derive(Debug)]
pub struct Failure {
    pub code: Exit,
    pub message: String,
    /// Further lines: explanations, then kernel log lines.
    pub details: Vec<String>,
}

impl Failure {
    pub fn new(code: Exit, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }
    fn detail(mut self, line: impl Into<String>) -> Failure {
        self.details.push(line.into());
        self
    }
    fn details(mut self, lines: impl IntoIterator<Item = String>) -> Failure {
        self.details.extend(lines);
        self
    }
    fn log_lines(mut self, lines: &[String], cursor: &Cursor) -> Failure {
        self.details
            .extend(render::log_block(lines, cursor.error.as_deref()));
        self
    }
}

pub type Outcome = Result<(), Failure>;

pub struct Ctx<'a> {
    /// The directory that plays /sys.
    pub sys: PathBuf,
    /// The directory that plays /proc.
    pub proc_root: PathBuf,
    /// The kernel log device (or a fake file).
    pub kmsg: PathBuf,
    pub ops: &'a dyn KernelOps,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

impl Ctx<'_> {
    /// Output errors (a closed pipe) are not worth a failure of the operation itself.
    pub(crate) fn say(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
    }
    fn warn(&mut self, text: &str) {
        let _ = writeln!(self.err, "warning: {text}");
    }
    pub(crate) fn json<T: Serialize>(&mut self, v: &T) {
        let s =
            serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        let _ = writeln!(self.out, "{s}");
    }
}

/// Everything the read-only commands show.
pub struct Snapshot {
    pub layout: Layout,
    pub modules: Result<Vec<Module>, String>,
    pub ours: Vec<Patch>,
    pub kernel: Vec<Patch>,
}

impl Snapshot {
    pub fn take(ctx: &Ctx) -> Snapshot {
        let layout = sysfs::detect(&ctx.sys);
        let modules = procmods::read(&ctx.proc_root);
        let loaded: Option<HashSet<String>> = modules
            .as_ref()
            .ok()
            .map(|m| m.iter().map(|m| m.name.clone()).collect());
        let read = |root: &Option<PathBuf>, kind| match root {
            Some(r) => sysfs::read_patches(r, kind, loaded.as_ref()),
            None => Vec::new(),
        };
        let ours = read(&layout.ours, CoreKind::Lpatch);
        let kernel = read(&layout.kernel_livepatch, CoreKind::KernelLivepatch);
        Snapshot {
            layout,
            modules,
            ours,
            kernel,
        }
    }

    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.as_ref().ok()?.iter().find(|m| m.name == name)
    }
}

fn not_loaded_hint() -> &'static str {
    "load it first: lpatch load /path/to/lpatch.ko"
}

// ---------------------------------------------------------------- status

#[derive(Serialize)]
struct StatusJson<'a> {
    core_loaded: bool,
    core_version: Option<&'a str>,
    sysfs_root: Option<String>,
    patches: usize,
    patches_enabled: usize,
    kernel_livepatch_present: bool,
    kernel_livepatch_root: Option<String>,
    kernel_livepatch_patches: usize,
    taint: Option<&'a Taint>,
    taint_error: Option<&'a str>,
}

pub fn status(ctx: &mut Ctx, json: bool) -> Outcome {
    let snap = Snapshot::take(ctx);
    let tainted = ctx.proc_root.join("sys/kernel/tainted");
    let taint: Result<Taint, String> = match sysfs::read_trim(&tainted) {
        Ok(text) => taint::parse(&text)
            .ok_or_else(|| format!("{} holds {text:?}, not a number", tainted.display())),
        Err(e) => Err(format!(
            "cannot read {}: {}",
            tainted.display(),
            errno::describe_io(&e)
        )),
    };
    let l = &snap.layout;
    if json {
        ctx.json(&StatusJson {
            core_loaded: l.core_loaded,
            core_version: l.core_version.as_deref(),
            sysfs_root: l.ours.as_ref().map(|p| p.display().to_string()),
            patches: snap.ours.len(),
            patches_enabled: snap.ours.iter().filter(|p| p.enabled == Some(true)).count(),
            kernel_livepatch_present: l.kernel_livepatch.is_some(),
            kernel_livepatch_root: l.kernel_livepatch.as_ref().map(|p| p.display().to_string()),
            kernel_livepatch_patches: snap.kernel.len(),
            taint: taint.as_ref().ok(),
            taint_error: taint.as_ref().err().map(String::as_str),
        });
    } else {
        let text = render::status(&snap, &ctx.sys, &taint);
        ctx.say(&text);
    }
    if l.core_loaded {
        Ok(())
    } else {
        Err(Failure::new(Exit::NotFound, "the lpatch core is not loaded").detail(not_loaded_hint()))
    }
}

// ---------------------------------------------------------------- list, info

#[derive(Serialize)]
struct ListJson<'a> {
    core_loaded: bool,
    sysfs_root: Option<String>,
    kernel_livepatch_root: Option<String>,
    patches: Vec<&'a Patch>,
}

pub fn list(ctx: &mut Ctx, json: bool) -> Outcome {
    let snap = Snapshot::take(ctx);
    let all: Vec<&Patch> = snap.ours.iter().chain(snap.kernel.iter()).collect();
    if json {
        ctx.json(&ListJson {
            core_loaded: snap.layout.core_loaded,
            sysfs_root: snap.layout.ours.as_ref().map(|p| p.display().to_string()),
            kernel_livepatch_root: snap
                .layout
                .kernel_livepatch
                .as_ref()
                .map(|p| p.display().to_string()),
            patches: all,
        });
    } else {
        if !snap.layout.core_loaded {
            ctx.warn(&format!(
                "the lpatch core is not loaded; {}",
                not_loaded_hint()
            ));
        }
        let text = render::list(&all);
        ctx.say(&text);
    }
    Ok(())
}

#[derive(Serialize)]
struct InfoJson<'a> {
    #[serde(flatten)]
    patch: &'a Patch,
    module: Option<&'a Module>,
    /// Per patched function, what ftrace says of it (tracefs enabled_functions).
    #[serde(skip_serializing_if = "Option::is_none")]
    ftrace: Option<Vec<FtraceOfFunction<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ftrace_error: Option<&'a str>,
}

#[derive(Serialize)]
struct FtraceOfFunction<'a> {
    object: &'a str,
    function: &'a str,
    sites: Vec<&'a ftrace_users::Site>,
}

pub fn info(ctx: &mut Ctx, name: &str, json: bool) -> Outcome {
    check_name(name)?;
    let snap = Snapshot::take(ctx);
    let Some(patch) = snap
        .ours
        .iter()
        .chain(snap.kernel.iter())
        .find(|p| p.name == name)
    else {
        return Err(not_found(&snap.layout, name, &snap.ours));
    };
    let module = snap.module(name);
    let ftrace = ftrace_users::read(&ctx.sys);
    if json {
        let per_function = ftrace.as_ref().ok().map(|sites| {
            patch
                .objects
                .iter()
                .flat_map(|o| {
                    o.functions.iter().map(move |f| FtraceOfFunction {
                        object: &o.name,
                        function: &f.dir,
                        sites: ftrace_users::of_function(sites, &f.name, &o.name),
                    })
                })
                .collect()
        });
        ctx.json(&InfoJson {
            patch,
            module,
            ftrace: per_function,
            ftrace_error: ftrace.as_ref().err().map(String::as_str),
        });
    } else {
        let text = render::info(
            patch,
            module,
            snap.modules.as_ref().err().map(String::as_str),
            &ftrace,
        );
        ctx.say(&text);
    }
    Ok(())
}

// ---------------------------------------------------------------- finding a patch

/// Patch names are module names; anything that could walk out of the sysfs root is refused.
pub fn check_name(name: &str) -> Outcome {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || name.len() > 255
    {
        return Err(
            Failure::new(Exit::Usage, format!("{name:?} is not a patch name"))
                .detail("a patch is named after its module: letters, digits, '_' and '-'"),
        );
    }
    Ok(())
}

fn not_found(layout: &Layout, name: &str, ours: &[Patch]) -> Failure {
    if !layout.core_loaded && layout.ours.is_none() {
        return Failure::new(
            Exit::NotFound,
            format!("no patch named {name}: the lpatch core is not loaded"),
        )
        .detail(not_loaded_hint());
    }
    let f = Failure::new(Exit::NotFound, format!("no patch named {name}"));
    if ours.is_empty() {
        f.detail("no lpatch patch is registered")
    } else {
        let names: Vec<&str> = ours.iter().map(|p| p.name.as_str()).collect();
        f.detail(format!("registered patches: {}", names.join(", ")))
    }
}

fn refuse_kernel(name: &str, dir: &Path, action: &str) -> Failure {
    Failure::new(
        Exit::Usage,
        format!("patch {name} belongs to the kernel's own livepatch core, not to lpatch; lpatch does not {action} it"),
    )
    .detail(format!("use {} directly, e.g.: echo 0 > {}", dir.display(), dir.join("enabled").display()))
}

/// The directory of lpatch patch `name`, or why there is none.
fn find_ours(ctx: &Ctx, name: &str, action: &str) -> Result<(Layout, PathBuf), Failure> {
    check_name(name)?;
    let layout = sysfs::detect(&ctx.sys);
    if let Some(root) = &layout.ours {
        let dir = root.join(name);
        if dir.is_dir() {
            return Ok((layout, dir));
        }
    }
    if let Some(klp) = &layout.kernel_livepatch {
        let dir = klp.join(name);
        if dir.is_dir() {
            return Err(refuse_kernel(name, &dir, action));
        }
    }
    let ours = match &layout.ours {
        Some(r) => sysfs::read_patches(r, CoreKind::Lpatch, None),
        None => Vec::new(),
    };
    Err(not_found(&layout, name, &ours))
}

// ---------------------------------------------------------------- enable, disable

fn read_enabled(dir: &Path) -> Option<bool> {
    match sysfs::read_trim(&dir.join("enabled")).ok()?.as_str() {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

/// Whether `word` occurs in `text` delimited by characters that cannot be in a module name.
fn mentions(text: &str, word: &str) -> bool {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

/// Writes `enabled`. Ok(false) when the patch already was in that state.
fn write_enabled(
    ctx: &Ctx,
    root: Option<&Path>,
    name: &str,
    dir: &Path,
    on: bool,
) -> Result<bool, Failure> {
    if read_enabled(dir) == Some(on) {
        return Ok(false);
    }
    let verb = if on { "enable" } else { "disable" };
    let mut cursor = Cursor::start(&ctx.kmsg);
    let attr = dir.join("enabled");
    let Err(e) = ctx.ops.write_attr(&attr, if on { "1" } else { "0" }) else {
        return match read_enabled(dir) {
            Some(now) if now == on => Ok(true),
            now => Err(Failure::new(
                Exit::Failed,
                format!(
                    "the kernel accepted the write, but {} now reads {}",
                    attr.display(),
                    render::tristate(now)
                ),
            )),
        };
    };
    let records = cursor.read_new();
    let lines = kmsg::relevant(&records, Some(name));
    let what = errno::describe_io(&e);
    let code = e.raw_os_error().unwrap_or(0);
    let f = match code {
        libc::EACCES | libc::EPERM => {
            return Err(Failure::new(
                Exit::Permission,
                format!("cannot {verb} patch {name}: {what}"),
            )
            .detail(format!("writing {} needs root", attr.display())));
        }
        _ if e.kind() == ErrorKind::NotFound => {
            return Err(Failure::new(
                Exit::NotFound,
                format!("patch {name} went away while writing {}", attr.display()),
            ));
        }
        libc::EBUSY if !on => {
            let others: Vec<String> = root
                .map(|r| sysfs::read_patches(r, CoreKind::Lpatch, None))
                .unwrap_or_default()
                .into_iter()
                .filter(|p| p.name != name && lines.iter().any(|l| mentions(l, &p.name)))
                .map(|p| p.name)
                .collect();
            let f = Failure::new(Exit::Failed, format!("cannot disable patch {name}: {what}"))
                .detail("patches stack: a patch enabled after this one is still enabled, and it has to be disabled first");
            match others.as_slice() {
                [one] => f.detail(format!("disable {one} first: lpatch disable {one}")),
                [] if lines.is_empty() => f.detail(
                    "the kernel log does not say which patch; see lpatch list for the enabled ones",
                ),
                [] => f.detail("the kernel log says:"),
                many => f.detail(format!("the kernel log names: {}", many.join(", "))),
            }
        }
        libc::EBUSY => {
            let f = Failure::new(Exit::Failed, format!("cannot enable patch {name}: {what}"));
            let owners = owners_of_functions(ctx, name, dir);
            if owners.is_empty() {
                let f = f.detail("the core is busy with this patch, or another ftrace user that changes the instruction pointer (a kernel livepatch, another live patching tool, a kprobe with a post handler, a BPF trampoline) owns a function it patches");
                let held = ftrace_holders(ctx, dir);
                if held.is_empty() {
                    f
                } else {
                    f.detail("ftrace shows (tracefs enabled_functions):")
                        .details(held.iter().map(|l| format!("  {l}")))
                }
            } else {
                f.detail("a function it patches is already redirected by another enabled patch:")
                    .details(owners.iter().map(|o| format!("  {o}")))
            }
        }
        libc::EINVAL => Failure::new(
            Exit::Failed,
            format!("the core refused to {verb} patch {name}: {what}"),
        )
        .detail(format!(
            "the value was refused, or the patch is already {verb}d (it changed meanwhile)"
        )),
        _ => Failure::new(Exit::Failed, format!("cannot {verb} patch {name}: {what}")),
    };
    Err(f.log_lines(&lines, &cursor))
}

/// The other enabled patches, of either core, that patch a function of patch `name`
/// (same object, same function name), as "<object>: <func> is patched by <patch>" lines.
fn owners_of_functions(ctx: &Ctx, name: &str, dir: &Path) -> Vec<String> {
    let me = sysfs::read_patch(dir, CoreKind::Lpatch, None);
    let layout = sysfs::detect(&ctx.sys);
    let mut others = Vec::new();
    if let Some(r) = &layout.ours {
        others.extend(sysfs::read_patches(r, CoreKind::Lpatch, None));
    }
    if let Some(r) = &layout.kernel_livepatch {
        others.extend(sysfs::read_patches(r, CoreKind::KernelLivepatch, None));
    }
    let mut lines = Vec::new();
    for o in &me.objects {
        for f in &o.functions {
            for p in others
                .iter()
                .filter(|p| p.name != name && p.enabled == Some(true))
            {
                let hit = p
                    .objects
                    .iter()
                    .any(|po| po.name == o.name && po.functions.iter().any(|pf| pf.name == f.name));
                if hit {
                    let kind = match p.core {
                        CoreKind::Lpatch => "",
                        CoreKind::KernelLivepatch => " (kernel livepatch)",
                    };
                    lines.push(format!(
                        "{}: {} is patched by {}{kind}",
                        o.name, f.name, p.name
                    ));
                }
            }
        }
    }
    lines
}

/// The functions of a (disabled) patch that other ftrace users hold, as tracefs's
/// enabled_functions tells it, each with who it probably is; empty when unreadable.
fn ftrace_holders(ctx: &Ctx, dir: &Path) -> Vec<String> {
    let Ok(sites) = ftrace_users::read(&ctx.sys) else {
        return Vec::new();
    };
    let me = sysfs::read_patch(dir, CoreKind::Lpatch, None);
    let mut lines = Vec::new();
    for o in &me.objects {
        for f in &o.functions {
            let found = ftrace_users::of_function(&sites, &f.name, &o.name);
            if found.is_empty() {
                continue;
            }
            let who = if found.iter().any(|s| s.direct) {
                "a direct call (a BPF trampoline, or register_ftrace_direct)"
            } else if found.iter().any(|s| s.ipmodify) {
                "an ftrace user that changes the instruction pointer (a kernel livepatch, or a kprobe with a post handler)"
            } else {
                "tracers or kprobes, which share a function with a patch"
            };
            lines.push(format!(
                "{}: {}: {}: {who}",
                o.name,
                f.name,
                render::ftrace_line(&found)
            ));
        }
    }
    lines
}

pub fn set_enabled(ctx: &mut Ctx, name: &str, on: bool) -> Outcome {
    let action = if on { "enable" } else { "disable" };
    let (layout, dir) = find_ours(ctx, name, action)?;
    let changed = write_enabled(ctx, layout.ours.as_deref(), name, &dir, on)?;
    let state = if on { "enabled" } else { "disabled" };
    if changed {
        ctx.say(&format!("patch {name} {state}\n"));
    } else {
        ctx.say(&format!("patch {name} is already {state}\n"));
    }
    Ok(())
}

// ---------------------------------------------------------------- unload

/// How long `unload` waits for a disable's transition to end.
const TRANSITION_WAIT: Duration = Duration::from_secs(30);

/// Waits until patch `name`'s transition has ended (`transition` reads 0, or the core has
/// no such attribute): until every task has left the patch's code, the core holds its
/// module.
fn wait_transition(name: &str, dir: &Path) -> Result<(), Failure> {
    let attr = dir.join("transition");
    let running = || sysfs::read_trim(&attr).is_ok_and(|t| t == "1");
    let start = Instant::now();
    while running() {
        if start.elapsed() > TRANSITION_WAIT {
            return Err(Failure::new(
                Exit::Failed,
                format!(
                    "patch {name} is disabled, but its transition has not ended after {} s: a task is still in its code, so its module stays loaded",
                    TRANSITION_WAIT.as_secs()
                ),
            )
            .detail(format!("try again later: lpatch unload {name}"))
            .detail(format!(
                "or enable it again (the transition reverses): lpatch enable {name}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

pub fn unload(ctx: &mut Ctx, name: &str) -> Outcome {
    let (layout, dir) = find_ours(ctx, name, "unload")?;
    match read_enabled(&dir) {
        Some(false) => {}
        _ => {
            if write_enabled(ctx, layout.ours.as_deref(), name, &dir, false)? {
                ctx.say(&format!("patch {name} disabled\n"));
            }
        }
    }
    wait_transition(name, &dir)?;
    let cname = CString::new(name)
        .map_err(|_| Failure::new(Exit::Usage, format!("{name:?} is not a module name")))?;
    let mut cursor = Cursor::start(&ctx.kmsg);
    let Err(e) = ctx.ops.delete_module(&cname, libc::O_NONBLOCK) else {
        if dir.exists() {
            ctx.warn(&format!(
                "module {name} is unloaded but {} is still there",
                dir.display()
            ));
        }
        ctx.say(&format!("module {name} unloaded\n"));
        return Ok(());
    };
    let lines = kmsg::relevant(&cursor.read_new(), Some(name));
    let what = errno::describe(e);
    let module = procmods::read(&ctx.proc_root)
        .ok()
        .and_then(|m| m.into_iter().find(|m| m.name == name));
    let root = ctx.ops.euid() == 0;
    let f = match e {
        libc::EPERM | libc::EACCES if !root => {
            return Err(Failure::new(
                Exit::Permission,
                format!("cannot unload module {name}: {what}"),
            )
            .detail(format!(
                "unloading modules needs root; patch {name} stays disabled"
            )));
        }
        libc::ENOENT => Failure::new(
            Exit::NotFound,
            format!("cannot unload module {name}: {what}"),
        )
        .detail(format!(
            "the kernel has no module named {name}, although {} exists",
            dir.display()
        )),
        libc::EBUSY | libc::EAGAIN | libc::EPERM => {
            let mut f = Failure::new(
                Exit::Failed,
                format!("the kernel refused to unload module {name}: {what}"),
            );
            if let Some(m) = module.as_ref().filter(|m| !m.used_by.is_empty()) {
                f = f.detail(format!(
                    "modules that use {name}: {} (unload those first)",
                    m.used_by.join(", ")
                ));
            }
            f.detail(format!("patch {name} is disabled, but its module stays loaded."))
                .detail("The lpatch core holds a patch module while a task may run its code: until the")
                .detail("transition of its disable has ended, and for good on a kernel without per-task")
                .detail("patch states (no CONFIG_LIVEPATCH), where no one can prove that no task still runs,")
                .detail("or sleeps in, the patch's code; there the module goes away at the next reboot.")
        }
        _ => Failure::new(Exit::Failed, format!("cannot unload module {name}: {what}")),
    };
    let f = match module {
        Some(m) => f.detail(format!("module {name}: {}", render::module_summary(&m))),
        None => f,
    };
    Err(f.log_lines(&lines, &cursor))
}

// ---------------------------------------------------------------- load

fn load_errno_words(e: i32) -> &'static str {
    match e {
        libc::EEXIST => "a module with this name is already loaded",
        libc::ENOEXEC => "the kernel does not take this file as a module: not an ELF module for this architecture, corrupt, or built for another kernel (vermagic mismatch)",
        libc::EINVAL => "the module does not fit this kernel or its init refused: symbol version (CRC) mismatch, bad parameters, or the lpatch core rejected the patch",
        libc::ENOENT => "something the module needs does not exist: an unknown symbol, or a function or object the patch targets",
        libc::EBUSY => "busy: a function is already being patched by another patch, or the module is being loaded right now",
        libc::EPERM => "loading modules is not permitted: it needs root (CAP_SYS_MODULE), and root is refused too when kernel.modules_disabled=1 or the kernel is locked down",
        libc::EACCES => "permission denied: the file's mount or a security module forbids loading it",
        libc::EKEYREJECTED | libc::ENOKEY | libc::EKEYEXPIRED | libc::EBADMSG => "the module's signature was refused: the kernel enforces module signing and this module is unsigned or signed with a key it does not trust",
        libc::ETXTBSY => "the file is open for writing by another process",
        libc::EFBIG | libc::ENOMEM => "the module is too large, or the kernel is out of memory",
        libc::ENOSYS => "module loading is not available here: the kernel was built without it, or a sandbox (seccomp) blocks the syscall",
        libc::EBADF => "the file could not be read by the kernel",
        _ => "the kernel refused the module",
    }
}

/// The parameter string finit_module(2) takes, from insmod-style `NAME[=VALUE]` words:
/// space-separated, a value with white space in double quotes (the kernel's `next_arg`
/// strips them). Names are what a module parameter can be called; a value cannot hold a
/// double quote, which the kernel's syntax has no escape for.
pub fn module_params(params: &[String]) -> Result<CString, Failure> {
    let mut words = Vec::with_capacity(params.len());
    for p in params {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p.as_str(), None),
        };
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
        if !name_ok {
            return Err(Failure::new(
                Exit::Usage,
                format!("{p:?} is not a module parameter"),
            )
            .detail("parameters are NAME=VALUE, or NAME alone for a boolean; a name has letters, digits, '_', '-' and '.'"));
        }
        match value {
            None => words.push(name.to_string()),
            Some(v) if v.contains('"') || v.contains('\0') => {
                return Err(Failure::new(
                    Exit::Usage,
                    format!("the value of parameter {name} holds a '\"' or a NUL byte"),
                )
                .detail("the kernel's module parameter syntax has no way to escape them"));
            }
            Some(v) if v.chars().any(char::is_whitespace) => words.push(format!("{name}=\"{v}\"")),
            Some(v) => words.push(format!("{name}={v}")),
        }
    }
    // No NUL can be left: names are checked and values refused above.
    CString::new(words.join(" "))
        .map_err(|_| Failure::new(Exit::Usage, "a module parameter holds a NUL byte"))
}

pub fn load(ctx: &mut Ctx, path: &Path, params: &[String]) -> Outcome {
    let cparams = module_params(params)?;
    // The file as the user wrote it, with its parameters: "fix.ko a=1 b=2".
    let shown = if params.is_empty() {
        path.display().to_string()
    } else {
        format!("{} {}", path.display(), cparams.to_string_lossy())
    };
    let open = File::open(path).and_then(|mut f| {
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map(|_| (f, bytes))
    });
    let (file, bytes) = match open {
        Ok(x) => x,
        Err(e) => {
            let code = match e.kind() {
                ErrorKind::NotFound => Exit::NotFound,
                ErrorKind::PermissionDenied => Exit::Permission,
                _ if e.raw_os_error() == Some(libc::EISDIR) => Exit::Usage,
                _ => Exit::Failed,
            };
            return Err(Failure::new(
                code,
                format!("cannot read {}: {}", path.display(), errno::describe_io(&e)),
            ));
        }
    };
    let (name, source) = crate::elf::module_name(path, &bytes);
    let guessed = source == crate::elf::NameSource::FileName;
    let is_core = name == "lpatch";
    let layout = sysfs::detect(&ctx.sys);
    if !is_core && !layout.core_loaded {
        return Err(Failure::new(
            Exit::NotFound,
            format!("cannot load patch {name}: the lpatch core is not loaded"),
        )
        .detail(not_loaded_hint()));
    }

    let mut cursor = Cursor::start(&ctx.kmsg);
    let result = ctx.ops.finit_module(&file, &cparams, 0);
    drop(file);
    let lines = kmsg::relevant_to_load(&cursor.read_new(), &name);

    if let Err(e) = result {
        let code = match e {
            libc::EPERM | libc::EACCES if ctx.ops.euid() != 0 => Exit::Permission,
            libc::EACCES => Exit::Permission,
            _ => Exit::Failed,
        };
        let mut f = Failure::new(
            code,
            format!("loading {shown} failed: {}", errno::describe(e)),
        )
        .detail(load_errno_words(e));
        if e == libc::EEXIST {
            if layout.ours.as_ref().is_some_and(|r| r.join(&name).is_dir()) {
                f = f.detail(format!("patch {name} is registered: lpatch info {name}"));
            } else {
                f = f.detail(format!("module {name} is loaded (see /proc/modules)"));
            }
        }
        if !crate::elf::is_elf(&bytes) {
            f = f.detail(format!("{} is not an ELF file at all", path.display()));
        }
        for why in crate::unresolved::explain(&lines, &name) {
            f = f.detail(why);
        }
        if guessed {
            f = f.detail(format!("(the module name {name} was guessed from the file name: the file has no .modinfo name)"));
        }
        return Err(f.log_lines(&lines, &cursor));
    }

    let layout = sysfs::detect(&ctx.sys);
    let mut text = String::new();
    if is_core {
        text.push_str(&format!(
            "lpatch core loaded, version {}; patches register in {}\n",
            layout.core_version.as_deref().unwrap_or("unknown"),
            layout
                .ours
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(no sysfs root yet)".into())
        ));
        text.push_str(&render::log_block(&lines, cursor.error.as_deref()).join("\n"));
        ctx.say(text.trim_end());
        ctx.say("\n");
        return Ok(());
    }

    let ours = layout
        .ours
        .as_ref()
        .map(|r| r.join(&name))
        .filter(|d| d.is_dir());
    let Some(dir) = ours else {
        let mut f = Failure::new(
            Exit::Failed,
            format!("module {name} loaded, but no patch named {name} appeared"),
        );
        if let Some(k) = layout
            .kernel_livepatch
            .as_ref()
            .map(|r| r.join(&name))
            .filter(|d| d.is_dir())
        {
            f = f.detail(format!(
                "it registered with the kernel's own livepatch core instead: {}",
                k.display()
            ));
        } else {
            f = f.detail(match &layout.ours {
                Some(r) => format!("{} has no {name}: the module is not an lpatch patch, or registers under another name", r.display()),
                None => "the lpatch core has no sysfs directory".to_string(),
            });
        }
        f = f.detail(format!("module {name} stays loaded"));
        if guessed {
            f = f.detail(format!("(the name {name} was guessed from the file name)"));
        }
        return Err(f.log_lines(&lines, &cursor));
    };
    let modules = procmods::read(&ctx.proc_root).ok();
    let loaded: Option<HashSet<String>> = modules.map(|m| m.into_iter().map(|m| m.name).collect());
    let patch = sysfs::read_patch(&dir, CoreKind::Lpatch, loaded.as_ref());
    text.push_str(&format!(
        "loaded {shown}: patch {name} {}\n",
        render::enabled_word(patch.enabled)
    ));
    text.push_str(&render::patched_summary(&patch));
    for l in render::log_block(&lines, cursor.error.as_deref()) {
        text.push_str(&l);
        text.push('\n');
    }
    ctx.say(&text);
    if patch.enabled != Some(true) {
        return Err(Failure::new(
            Exit::Failed,
            format!(
                "patch {name} is registered but not enabled (enabled reads {})",
                render::tristate(patch.enabled)
            ),
        )
        .detail(format!("enable it with: lpatch enable {name}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_whole_names_only() {
        assert!(mentions(
            "lpatch: cannot disable a: b is enabled after it",
            "b"
        ));
        assert!(mentions("lpatch: disable 'fix_2' first", "fix_2"));
        assert!(!mentions("lpatch: fix_22 is enabled", "fix_2"));
        assert!(!mentions("lpatch: abc", "b"));
        assert!(mentions("b", "b"));
    }

    #[test]
    fn names_are_checked() {
        for bad in ["", ".", "..", "a/b", "../x", "a\0b"] {
            assert_eq!(check_name(bad).unwrap_err().code, Exit::Usage, "{bad:?}");
        }
        assert!(check_name("livepatch_sample").is_ok());
    }
}
