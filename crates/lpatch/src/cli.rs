// SPDX-License-Identifier: GPL-2.0-only
//! Command line.

use crate::app::{self, Ctx, Exit, Failure};
use crate::ops::KernelOps;
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the operation failed: the kernel or the lpatch core refused it, or it did not have the expected effect
  2  usage error (bad arguments, or a patch that belongs to the kernel's own livepatch core)
  3  not found: no such patch, file or module, or the lpatch core is not loaded
  4  permission denied (run as root)";

#[derive(Parser, Debug)]
#[command(
    name = "lpatch",
    version,
    about = "Live patching for the Linux kernel: load, list, enable, disable and unload patches",
    long_about = "Live patching for the Linux kernel: load, list, enable, disable and unload patches.\n\n\
                  Patches are kernel modules that register with the lpatch core (lpatch.ko). The core\n\
                  shows them under /sys/kernel/lpatch, or /sys/kernel/livepatch on kernels without\n\
                  their own livepatch core. Patches of the kernel's own livepatch core are shown,\n\
                  marked (kernel livepatch), but never changed.",
    after_help = EXIT_CODES,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Directory that stands for /sys
    #[arg(long, global = true, value_name = "DIR", default_value = "/sys")]
    pub sysfs_root: PathBuf,
    /// Directory that stands for /proc
    #[arg(long, global = true, value_name = "DIR", default_value = "/proc")]
    pub proc_root: PathBuf,
    /// Kernel log device to read the core's messages from
    #[arg(long, global = true, value_name = "FILE", default_value = "/dev/kmsg")]
    pub kmsg: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show whether the core is loaded, its version, its sysfs root, the kernel's taint
    /// flags in words, and whether the kernel's own livepatch core is present
    #[command(after_help = "Exits 3 when the lpatch core is not loaded (after printing the status).\n\n".to_string() + EXIT_CODES)]
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List every patch: name, enabled, objects, functions, and addresses when readable (root)
    #[command(after_help = EXIT_CODES)]
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one patch in full, with its module's state from /proc/modules
    #[command(after_help = EXIT_CODES)]
    Info {
        /// Patch name (the name of its module)
        patch: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Load a patch module (finit_module) and confirm the patch it registers is enabled
    #[command(
        long_about = "Load a patch module with finit_module(2) and confirm that the patch it registers\n\
                      (named after the module) appears enabled; print what it patches. On failure,\n\
                      print the error in words and the core's kernel log lines. Loading lpatch.ko\n\
                      itself loads the core.\n\n\
                      Module parameters follow the file, as for insmod: NAME=VALUE, or NAME alone\n\
                      for a boolean. A value with spaces is passed quoted; a value cannot hold '\"'.",
        after_help = EXIT_CODES
    )]
    Load {
        /// The patch module file (.ko)
        file: PathBuf,
        /// Module parameters, passed to the module as insmod passes them
        #[arg(value_name = "PARAM[=VALUE]")]
        params: Vec<String>,
    },
    /// Enable a patch
    #[command(after_help = EXIT_CODES)]
    Enable {
        /// Patch name
        patch: String,
    },
    /// Disable a patch (patches stack: disable later-enabled ones first)
    #[command(after_help = EXIT_CODES)]
    Disable {
        /// Patch name
        patch: String,
    },
    /// Disable a patch if enabled, then unload its module (delete_module)
    #[command(
        long_about = "Disable a patch if it is enabled, wait for the transition of that disable to end\n\
                      (up to 30 s: until every task has left the patch's code), then unload its module\n\
                      with delete_module(2).\n\n\
                      On a kernel without per-task patch states (no CONFIG_LIVEPATCH) the core pins a\n\
                      patch module once it has been enabled: no one can prove there that no task still\n\
                      runs the patch's code, so the kernel refuses the unload; the patch then stays\n\
                      disabled and its module loaded until a reboot.",
        after_help = EXIT_CODES
    )]
    Unload {
        /// Patch name
        patch: String,
    },
    /// Build a live patch from a source diff against the kernel's source
    #[command(
        long_about = "Build a live patch from a unified diff (git or diff -Nupr style, applied like\n\
                      patch -p1) against the exact source of a Debian kernel. The kernel's source,\n\
                      config and compiler are checked and a prepared tree is cached (in\n\
                      $LPATCH_CACHE/builder/<kernel>/, /var/cache/lpatch by default); only the\n\
                      translation units the diff touches are compiled, before and after it, and\n\
                      their objects compared. --dry-run prints, per object (vmlinux or a module),\n\
                      the functions the patch would replace and the functions and data it would\n\
                      add, each with the reason.",
        after_help = EXIT_CODES
    )]
    Build(crate::build::BuildArgs),
    /// List the symbols of a name in the running kernel: object, sympos, type, address
    #[command(
        long_about = "List the symbols named NAME in the running kernel (from /proc/kallsyms), in vmlinux\n\
                      and in loaded modules, or in OBJECT only (vmlinux or a module's name): for each,\n\
                      its object, its sympos (1-based among same-named symbols of that object, in\n\
                      kallsyms order, as lpatch and the kernel's livepatch count them), whether it is\n\
                      local (a static; in a module, not exported), its type and address (root only), and how a relocation names it\n\
                      (.klp.sym.<object>.<name>,<sympos>; sympos 0 when the name is unique there).",
        after_help = EXIT_CODES
    )]
    Syms {
        /// The symbol's name
        name: String,
        /// Only in this object: vmlinux, or a module's name
        object: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Turn a patch module's LPATCH_SYM references into livepatch relocations (.klp.rela)
    #[command(
        long_about = "Turn a patch module's references to symbols the kernel does not export (statics of\n\
                      vmlinux or of a module) into the kernel's livepatch relocations: each symbol named\n\
                      by LPATCH_SYM becomes .klp.sym.<object>.<symbol>,<sympos> and its relocations move\n\
                      to .klp.rela.<object>.<section>. The module loader resolves vmlinux's at load, the\n\
                      lpatch core a module's when that module is loaded.\n\n\
                      How to write such a patch:\n\
                      1. in its source, declare each symbol and name its object and sympos\n\
                      \x20  (lpatch syms NAME shows both; 0 when the name is unique in the object):\n\
                      \x20    extern int foo;\n\
                      \x20    LPATCH_SYM(vmlinux, foo, 0);\n\
                      \x20    MODULE_INFO(livepatch, \"Y\");   (needed when an object is a module)\n\
                      2. build it with kbuild as usual, adding KBUILD_MODPOST_WARN=1 (modpost then only\n\
                      \x20  warns about the unexported symbols);\n\
                      3. run lpatch klp-convert on the linked .ko: it rewrites it in place (or writes\n\
                      \x20  OUT) and prints, per object, the symbols converted and their relocations.\n\
                      Running it again changes nothing; a module not converted fails to load with\n\
                      \"Unknown symbol\".",
        after_help = "Exits 2 when the module is not an x86-64 kernel module or its records cannot be\n\
                      converted (the error says which and why).\n\n".to_string() + EXIT_CODES
    )]
    KlpConvert {
        /// The linked patch module (.ko)
        module: PathBuf,
        /// Write the converted module to OUT instead of rewriting MODULE
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: Option<PathBuf>,
    },
}

/// Runs the tool with `args` (argv[0] first) and returns the exit code.
pub fn run<I, T>(args: I, ops: &dyn KernelOps, out: &mut dyn Write, err: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let text = e.to_string();
            if e.use_stderr() {
                let _ = err.write_all(text.as_bytes());
                return Exit::Usage as i32;
            }
            let _ = out.write_all(text.as_bytes());
            return Exit::Ok as i32;
        }
    };
    let mut ctx = Ctx {
        sys: cli.sysfs_root,
        proc_root: cli.proc_root,
        kmsg: cli.kmsg,
        ops,
        out,
        err,
    };
    let result = match &cli.command {
        Command::Status { json } => app::status(&mut ctx, *json),
        Command::List { json } => app::list(&mut ctx, *json),
        Command::Info { patch, json } => app::info(&mut ctx, patch, *json),
        Command::Load { file, params } => app::load(&mut ctx, file, params),
        Command::Enable { patch } => app::set_enabled(&mut ctx, patch, true),
        Command::Disable { patch } => app::set_enabled(&mut ctx, patch, false),
        Command::Unload { patch } => app::unload(&mut ctx, patch),
        Command::Build(args) => crate::build::build(&mut ctx, args),
        Command::Syms { name, object, json } => {
            crate::syms::syms(&mut ctx, name, object.as_deref(), *json)
        }
        Command::KlpConvert { module, output } => {
            crate::klp_convert::klp_convert(&mut ctx, module, output.as_deref())
        }
    };
    let _ = ctx.out.flush();
    match result {
        Ok(()) => Exit::Ok as i32,
        Err(f) => {
            report(ctx.err, &f);
            f.code as i32
        }
    }
}

fn report(err: &mut dyn Write, f: &Failure) {
    let mut s = format!("error: {}\n", f.message);
    for d in &f.details {
        s.push_str("  ");
        s.push_str(d);
        s.push('\n');
    }
    let _ = err.write_all(s.as_bytes());
    let _ = err.flush();
}
