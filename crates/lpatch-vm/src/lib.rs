// SPDX-License-Identifier: GPL-2.0-only
//! Boots Debian's stock kernel under qemu (TCG, no KVM) with a generated initramfs,
//! runs a shell script in it as root, and hands back the script's output and status
//! and the kernel log, with the log's warnings, oopses and the like picked out.
//!
//! ```no_run
//! use lpatch_vm::{Boot, Vm};
//! let run = Vm::new()
//!     .boot(Boot::Kaslr)
//!     .ko("target/my.ko")
//!     .script("insmod my.ko && rmmod my")
//!     .run()
//!     .unwrap();
//! run.assert_ok();
//! ```
//!
//! The guest's kernel log goes to its first serial port (`console=ttyS0`), the script's
//! stdout and stderr to the second, each into a file on the host. /init prints
//! `LPATCH-VM-EXIT <status>` after the script and reboots; qemu runs with `-no-reboot`,
//! so that ends it. A kernel panic reboots at once (`panic=-1`), so it ends it too.

pub mod cpio;
pub mod kernel;
pub mod parse;
pub mod tools;

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use kernel::{
    config_on, config_value, default_kernel_dir, default_memory_mb, headers_dir, is_debug_kernel,
    kernel_release, linked_text_address, require_debug_kernel, require_stock_kernel,
};
pub use parse::{is_splat, splats, split_output, BENIGN_LINES, SPLAT_LINE_STARTS, SPLAT_PATTERNS};
pub use tools::static_binary;

/// Where the test script, the .ko files and the /init script live in the guest.
pub const GUEST_MODULE_DIR: &str = "/lib/lpatch";
pub const GUEST_SCRIPT: &str = "/lpatch/test.sh";
const BUSYBOX: &str = "/bin/busybox";
const QEMU: &str = "qemu-system-x86_64";

/// How the kernel is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// `-kernel vmlinux` through its PVH entry: about twice as fast under TCG, but the
    /// decompressor is skipped, so there is no KASLR (`kaslr_offset()` is 0).
    Pvh,
    /// `-kernel bzImage`: the decompressor randomizes the kernel's address (KASLR on).
    Kaslr,
}

/// Why a run could not be made. A guest that misbehaves is no error: see [`VmRun`].
#[derive(Debug)]
pub enum Error {
    /// A host file operation failed.
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The kernel directory lacks something.
    Kernel(String),
    /// qemu could not start the guest (it exited with an error).
    Qemu { status: ExitStatus, stderr: String },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Kernel(m) => write!(f, "{m}"),
            Error::Qemu { status, stderr } => {
                write!(f, "qemu failed ({status}): {}", stderr.trim_end())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A guest to boot: a builder. Nothing happens until [`Vm::run`].
#[derive(Debug, Clone)]
pub struct Vm {
    boot: Boot,
    smp: u32,
    /// Run every vCPU on one host thread (qemu's `-accel tcg,thread=single`).
    one_thread: bool,
    /// 0: the kernel's default ([`default_memory_mb`]), decided at [`Vm::run`].
    memory_mb: u32,
    timeout: Duration,
    kernel_dir: PathBuf,
    /// (host path, guest path, permission bits; None: the host file's)
    files: Vec<(PathBuf, String, Option<u32>)>,
    script: String,
    cmdline: Vec<String>,
    /// Extra qemu arguments, after the fixed ones.
    qemu_args: Vec<String>,
}

impl Default for Vm {
    fn default() -> Self {
        Self::new()
    }
}

static RUN_COUNTER: AtomicU32 = AtomicU32::new(0);

impl Vm {
    /// Pvh boot, 1 vCPU, 120 s timeout, kernel from `$LPATCH_KERNEL_DIR` or
    /// /var/cache/lpatch/kernel/current, memory by the kernel ([`default_memory_mb`]:
    /// `$LPATCH_VM_MEMORY`, else 1024 MiB for a KASAN kernel, else 512 MiB), and an
    /// empty script.
    pub fn new() -> Vm {
        Vm {
            boot: Boot::Pvh,
            smp: 1,
            one_thread: false,
            memory_mb: 0,
            timeout: Duration::from_secs(120),
            kernel_dir: default_kernel_dir(),
            files: Vec::new(),
            script: String::new(),
            cmdline: Vec::new(),
            qemu_args: Vec::new(),
        }
    }

    pub fn boot(mut self, b: Boot) -> Self {
        self.boot = b;
        self
    }

    /// Number of vCPUs. Keep 1 when guests run in parallel on this 2-core host: two
    /// 2-vCPU guests starve each other into false RCU-stall and soft-lockup reports.
    pub fn smp(mut self, n: u32) -> Self {
        self.smp = n.max(1);
        self
    }

    /// Runs every vCPU on one host thread (`-accel tcg,thread=single`), interleaved
    /// instruction block by block, instead of one thread each (MTTCG). For a guest that
    /// calls a function on one CPU while ftrace rewrites its call site from another:
    /// under qemu 7.2's MTTCG the caller can keep running a stale translation of the site
    /// for good (measured with the function tracer alone, no lpatch: a soft lockup at
    /// the function's first byte within a few dozen toggles), which real CPUs never do.
    pub fn one_thread(mut self) -> Self {
        self.one_thread = true;
        self
    }

    /// Guest memory in MiB (0: the kernel's default, see [`Vm::new`]).
    pub fn memory(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }

    /// Wall-clock limit of the whole run; qemu is killed after it.
    pub fn timeout(mut self, secs: u64) -> Self {
        self.timeout = Duration::from_secs(secs);
        self
    }

    /// The directory holding `vmlinux`, `bzImage` (and `version`, `config`).
    pub fn kernel_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.kernel_dir = dir.into();
        self
    }

    /// A module, copied to /lib/lpatch/<basename> in the guest (the script's cwd).
    pub fn ko(mut self, host_path: impl AsRef<Path>) -> Self {
        let p = host_path.as_ref().to_path_buf();
        let base = p
            .file_name()
            .unwrap_or(OsStr::new("unnamed.ko"))
            .to_string_lossy()
            .into_owned();
        self.files
            .push((p, format!("{GUEST_MODULE_DIR}/{base}"), Some(0o644)));
        self
    }

    /// Any file, copied to `guest_path` (absolute) with its host permission bits;
    /// missing directories are created.
    pub fn file(mut self, host_path: impl AsRef<Path>, guest_path: &str) -> Self {
        self.files.push((
            host_path.as_ref().to_path_buf(),
            guest_path.to_string(),
            None,
        ));
        self
    }

    /// The script, run by busybox `sh` as root in /lib/lpatch with stdin /dev/null.
    /// Its stdout and stderr become [`VmRun::output`], its exit status
    /// [`VmRun::status`]. Calling this again replaces the script.
    pub fn script(mut self, text: &str) -> Self {
        self.script = text.to_string();
        self
    }

    /// Extra kernel command-line words, appended after the fixed ones.
    pub fn cmdline(mut self, extra: &str) -> Self {
        self.cmdline
            .extend(extra.split_whitespace().map(str::to_string));
        self
    }

    /// Extra qemu arguments, appended after the fixed ones: e.g.
    /// `["-icount", "shift=0,sleep=off"]`, so guest time follows the executed
    /// instruction count (1 vCPU only: -icount with -smp 2 hangs at boot).
    pub fn qemu_args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.qemu_args
            .extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// The guest memory in MiB this run will have.
    pub fn memory_mb(&self) -> u32 {
        match self.memory_mb {
            0 => default_memory_mb(&self.kernel_dir),
            mb => mb,
        }
    }

    fn kernel_image(&self) -> PathBuf {
        self.kernel_dir.join(match self.boot {
            Boot::Pvh => "vmlinux",
            Boot::Kaslr => "bzImage",
        })
    }

    /// The kernel command line of this guest.
    pub fn kernel_cmdline(&self) -> String {
        // ignore_loglevel: every printk reaches the console, so a splat is never missed.
        // panic=-1: reboot at once on a panic, which with -no-reboot ends qemu.
        // No oops=panic: an Oops is reported and the guest carries on to the end.
        let mut words: Vec<String> = [
            "console=ttyS0",
            "ignore_loglevel",
            "printk.time=1",
            "panic=-1",
            "rdinit=/init",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        words.extend(self.cmdline.iter().cloned());
        words.join(" ")
    }

    /// Builds the initramfs (an uncompressed newc cpio).
    pub fn initramfs(&self) -> Result<Vec<u8>, Error> {
        let mut c = cpio::Cpio::new();
        for d in [
            "/bin",
            "/dev",
            "/proc",
            "/sys",
            "/tmp",
            "/run",
            "/root",
            "/lpatch",
            GUEST_MODULE_DIR,
        ] {
            c.dir(d, 0o755);
        }
        c.char_dev("/dev/console", 0o600, 5, 1);
        c.char_dev("/dev/null", 0o666, 1, 3);
        let bb = fs::read(BUSYBOX)
            .map_err(|e| Error::io(format!("reading {BUSYBOX} (busybox-static)"), e))?;
        c.file("/bin/busybox", 0o755, &bb);
        for applet in busybox_applets()? {
            // never a link named busybox over the binary itself
            if applet != "busybox" && !applet.contains('/') {
                c.symlink(&format!("/bin/{applet}"), "busybox");
            }
        }
        c.symlink("/sbin", "bin");
        c.dir("/usr", 0o755);
        c.symlink("/usr/bin", "../bin");
        c.symlink("/usr/sbin", "../bin");
        c.file("/init", 0o755, INIT.as_bytes());
        c.file(GUEST_SCRIPT, 0o755, self.script.as_bytes());
        for (host, guest, perm) in &self.files {
            let data =
                fs::read(host).map_err(|e| Error::io(format!("reading {}", host.display()), e))?;
            let perm = match perm {
                Some(p) => *p,
                None => {
                    use std::os::unix::fs::PermissionsExt;
                    fs::metadata(host)
                        .map_err(|e| Error::io(format!("stat {}", host.display()), e))?
                        .permissions()
                        .mode()
                        & 0o7777
                }
            };
            c.file(guest, perm, &data);
        }
        Ok(c.finish())
    }

    /// Boots the guest, runs the script, and waits for the guest to end or the timeout.
    pub fn run(self) -> Result<VmRun, Error> {
        let image = self.kernel_image();
        if !image.is_file() {
            return Err(Error::Kernel(format!(
                "no kernel image at {} (run scripts/setup.sh, or set LPATCH_KERNEL_DIR)",
                image.display()
            )));
        }
        let dir = std::env::temp_dir().join(format!(
            "lpatch-vm-{}-{}",
            std::process::id(),
            RUN_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let result = self.run_in(&dir, &image);
        let keep = std::env::var_os("LPATCH_VM_KEEP").is_some_and(|v| !v.is_empty());
        match &result {
            Ok(_) if !keep => {
                let _ = fs::remove_dir_all(&dir);
            }
            _ => eprintln!("lpatch-vm: run files kept in {}", dir.display()),
        }
        result
    }

    fn run_in(&self, dir: &Path, image: &Path) -> Result<VmRun, Error> {
        let initrd = dir.join("initramfs.cpio");
        let console = dir.join("console.log");
        let out = dir.join("output.log");
        let qemu_err = dir.join("qemu.stderr");
        fs::write(&initrd, self.initramfs()?)
            .map_err(|e| Error::io(format!("writing {}", initrd.display()), e))?;
        let stderr_file =
            fs::File::create(&qemu_err).map_err(|e| Error::io("creating qemu.stderr", e))?;

        let mut cmd = Command::new(QEMU);
        let accel = if self.one_thread {
            "tcg,thread=single"
        } else {
            "tcg"
        };
        cmd.args(["-accel", accel, "-cpu", kernel::cpu_model(&self.kernel_dir)])
            .arg("-m")
            .arg(self.memory_mb().to_string())
            .arg("-smp")
            .arg(self.smp.to_string())
            .args([
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-monitor",
                "none",
                "-no-reboot",
            ])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-serial")
            .arg(format!("file:{}", out.display()))
            .arg("-kernel")
            .arg(image)
            .arg("-initrd")
            .arg(&initrd)
            .arg("-append")
            .arg(self.kernel_cmdline())
            .args(&self.qemu_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr_file);

        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("starting {QEMU}"), e))?;
        let deadline = start + self.timeout;
        let mut boot = None;
        let mut timed_out = false;
        let status = loop {
            if let Some(st) = child
                .try_wait()
                .map_err(|e| Error::io("waiting for qemu", e))?
            {
                break st;
            }
            // The start marker is the first thing on the second port: its arrival
            // is when user space began.
            if boot.is_none() && fs::metadata(&out).map(|m| m.len() > 0).unwrap_or(false) {
                boot = Some(start.elapsed());
            }
            if Instant::now() >= deadline {
                timed_out = true;
                let _ = child.kill();
                break child.wait().map_err(|e| Error::io("waiting for qemu", e))?;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let wall = start.elapsed();

        let read = |p: &Path| {
            fs::read(p)
                .map(|b| parse::clean_text(&b))
                .unwrap_or_default()
        };
        let qemu_stderr = read(&qemu_err);
        if !timed_out && !status.success() {
            return Err(Error::Qemu {
                status,
                stderr: qemu_stderr,
            });
        }
        let kernel_log = read(&console);
        let out_text = read(&out);
        if boot.is_none() && out_text.starts_with(parse::START_MARKER) {
            boot = Some(wall); // it ran faster than the polling
        }
        let (output, status) = parse::split_output(&out_text);
        Ok(VmRun {
            output,
            status,
            kernel_log,
            timed_out,
            wall,
            boot,
            qemu_stderr,
        })
    }
}

/// The applet names of the host's busybox (the static one copied into the guest).
fn busybox_applets() -> Result<Vec<String>, Error> {
    let out = Command::new(BUSYBOX)
        .arg("--list")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::io(format!("running {BUSYBOX} --list"), e))?;
    if !out.status.success() {
        return Err(Error::Kernel(format!(
            "{BUSYBOX} --list failed: {}",
            out.status
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// The guest's /init. The script's output goes to the second serial port through fd 3,
/// kept open until after the exit marker: closing the last descriptor of a tty waits
/// until its output is sent, so nothing is lost to the reboot.
const INIT: &str = r#"#!/bin/sh
export PATH=/bin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
mount -t tmpfs tmpfs /tmp
exec 3>/dev/ttyS1
echo LPATCH-VM-START >&3
cd /lib/lpatch
sh /lpatch/test.sh </dev/null >&3 2>&3 3>&-
status=$?
cd /
printf '\nLPATCH-VM-EXIT %d\n' "$status" >&3
exec 3>&-
sync
reboot -f
sleep 5
poweroff -f
"#;

/// What happened in the guest.
#[derive(Debug, Clone)]
pub struct VmRun {
    /// The script's stdout and stderr (second serial port), `\r` removed.
    pub output: String,
    /// The script's exit status; None if the guest ended (panic, timeout) before /init
    /// could report it.
    pub status: Option<i32>,
    /// Everything the kernel printed (first serial port), `\r` removed.
    pub kernel_log: String,
    /// qemu was killed at the timeout.
    pub timed_out: bool,
    /// Wall time of the whole run, qemu start to exit.
    pub wall: Duration,
    /// Wall time from qemu's start until /init's first output: the boot time.
    pub boot: Option<Duration>,
    /// What qemu printed on stderr (normally nothing).
    pub qemu_stderr: String,
}

impl VmRun {
    /// The offending kernel-log lines (see [`SPLAT_PATTERNS`]).
    pub fn splats(&self) -> Vec<String> {
        parse::splats(&self.kernel_log)
    }

    /// Guest time (printk time stamp) at which the kernel ran /init.
    pub fn guest_init_secs(&self) -> Option<f64> {
        parse::init_time(&self.kernel_log)
    }

    /// Everything about the run, for a failure message.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let splats = self.splats();
        s.push_str(&format!(
            "status: {:?}, timed out: {}, wall: {:.1?}, boot: {:?}\n",
            self.status, self.timed_out, self.wall, self.boot
        ));
        if !splats.is_empty() {
            s.push_str(&format!(
                "---- {} splat line(s) in the kernel log ----\n",
                splats.len()
            ));
            for l in &splats {
                s.push_str(l);
                s.push('\n');
            }
        }
        s.push_str("---- guest output ----\n");
        s.push_str(&self.output);
        if !self.output.ends_with('\n') {
            s.push('\n');
        }
        s.push_str("---- kernel log ----\n");
        s.push_str(&self.kernel_log);
        if !self.qemu_stderr.is_empty() {
            s.push_str("---- qemu stderr ----\n");
            s.push_str(&self.qemu_stderr);
        }
        s
    }

    /// What is wrong with the run, if anything: a splat, a timeout or no status.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.timed_out {
            p.push(format!("the guest timed out after {:.1?}", self.wall));
        }
        if self.status.is_none() {
            p.push("the guest ended without reporting the script's status".to_string());
        }
        let n = self.splats().len();
        if n > 0 {
            p.push(format!("{n} splat line(s) in the kernel log"));
        }
        p
    }

    /// Panics, with the splat lines, the output and the kernel log, if the kernel log
    /// has a splat, the guest timed out or the script's status is missing.
    #[track_caller]
    pub fn assert_clean(&self) {
        let p = self.problems();
        if !p.is_empty() {
            panic!("VM run not clean: {}\n{}", p.join("; "), self.report());
        }
    }

    /// [`VmRun::assert_clean`], and the script exited 0.
    #[track_caller]
    pub fn assert_ok(&self) {
        self.assert_clean();
        if self.status != Some(0) {
            panic!(
                "VM script failed with status {:?}\n{}",
                self.status,
                self.report()
            );
        }
    }
}
