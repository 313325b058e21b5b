// SPDX-License-Identifier: GPL-2.0-only
//! What a fresh machine meets first: scripts/setup.sh, scripts/debug-kernel.sh and the first
//! `make all` of a fresh clone. These run on the host (root, as `make test` does), never
//! load anything into its kernel, and leave the machine's own package lists and caches as
//! they were.
//! - Package lists older than the archive: set-up still ends with the kernel Debian serves.
//! - A disk too small for a step: the step stops before it starts, naming the shortfall.
//! - A fresh clone with no kernel cache yet: `make all` creates `build/current` and nothing
//!   outside `build/`.
//!
//! They boot no guest and test the stock set-up, whichever kernel the suite boots: their
//! names hold `needs_stock_kernel`, so `make test` runs them and `make test-debug` does not
//! run them again.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A fresh directory under the system's temp dir, removed when dropped (unmounting a
/// tmpfs first when one was mounted there).
struct TempDir {
    path: PathBuf,
    mounted: bool,
}

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("lpatch-setup-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir {
            path,
            mounted: false,
        }
    }

    /// A tmpfs of `mib` MiB mounted on this directory: a small disk.
    fn small_disk(tag: &str, mib: u32) -> TempDir {
        let mut d = TempDir::new(tag);
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&d.path)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount tmpfs: {}", text(&out.stderr));
        d.mounted = true;
        d
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.path).status();
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn report(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// A command without what the surrounding `make test` put in the environment (its
/// MAKEFLAGS would carry the top Makefile's own variables into a nested make, and
/// the LPATCH_* ones would point the child at this run's caches).
fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("LPATCH_")
            || ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"].contains(&k.as_str())
        {
            c.env_remove(&k);
        }
    }
    c
}

/// `KVER=` from the last lines set-up (or debug-kernel.sh) printed.
fn printed_kver(out: &Output) -> Option<String> {
    text(&out.stdout)
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("KVER=").map(str::to_string))
}

/// The headers ABI `linux-headers-amd64` depends on, per the lists `apt_config` names
/// (None: the system's).
fn resolved_abi(apt_config: Option<&Path>) -> String {
    let mut c = Command::new("apt-cache");
    c.args(["depends", "linux-headers-amd64"]);
    if let Some(cfg) = apt_config {
        c.env("APT_CONFIG", cfg);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        report("apt-cache depends", &out)
    );
    text(&out.stdout)
        .lines()
        .find_map(|l| {
            let dep = l
                .trim()
                .strip_prefix("Depends: ")?
                .trim_matches(|c| c == '<' || c == '>');
            dep.strip_prefix("linux-headers-").map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no headers dependency in {}", text(&out.stdout)))
}

/// An ABI the archive has not served for years.
const STALE_ABI: &str = "6.1.0-1-amd64";

/// Every `linux-headers-amd64` stanza of a Packages text made to depend on [`STALE_ABI`],
/// and a stanza for that headers package (stale lists still list it; the archive has
/// long stopped serving it).
fn make_stale(packages: &str) -> (String, usize) {
    let mut out = String::with_capacity(packages.len());
    let mut changed = 0;
    for stanza in packages.split_inclusive("\n\n") {
        if !stanza.starts_with("Package: linux-headers-amd64\n") {
            out.push_str(stanza);
            continue;
        }
        for line in stanza.split_inclusive('\n') {
            match line.strip_prefix("Depends: linux-headers-") {
                Some(_) => {
                    out.push_str(&format!("Depends: linux-headers-{STALE_ABI}\n"));
                    changed += 1;
                }
                None => out.push_str(line),
            }
        }
    }
    if changed > 0 {
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&format!(
            "Package: linux-headers-{STALE_ABI}\nSource: linux\nVersion: 6.1.4-1\nArchitecture: amd64\n\
             Installed-Size: 1\nFilename: pool/main/l/linux/linux-headers-{STALE_ABI}_6.1.4-1_amd64.deb\n\
             Size: 1\nSection: kernel\nPriority: optional\nDescription: Header files for Linux {STALE_ABI}\n\n"
        ));
    }
    (out, changed)
}

/// A Release text whose checksum lines for the binary Packages indexes are zeroed.
fn disown_indexes(release: &str) -> String {
    release
        .split_inclusive('\n')
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f[..] {
                [hash, _, path]
                    if path.contains("binary-amd64/Packages")
                        && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    l.replacen(hash, &"0".repeat(hash.len()), 1)
                }
                _ => l.to_string(),
            }
        })
        .collect()
}

/// Set-up on a machine whose package lists predate the archive: a copy of this machine's
/// lists in which linux-headers-amd64 points at an ABI Debian no longer serves, used
/// through APT_CONFIG (Dir::State::Lists). Their Release files no longer vouch for those
/// indexes (other checksums) and are dated back, so an update fetches new ones.
/// Set-up must refresh the lists and end with the kernel the archive serves today.
#[test]
fn needs_stock_kernel_setup_with_stale_package_lists_ends_with_the_current_kernel() {
    let tmp = TempDir::new("stale");
    let lists = tmp.path.join("lists");
    std::fs::create_dir_all(lists.join("partial")).unwrap();
    let mut edited = 0;
    for e in std::fs::read_dir("/var/lib/apt/lists").unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if !e.file_type().unwrap().is_file() || name == "lock" {
            continue;
        }
        let dest = if name.contains("_Packages") {
            // apt-helper reads any compression apt writes (lz4, gz, xz, none); the edited
            // index is written uncompressed, which apt reads as well.
            let out = Command::new("/usr/lib/apt/apt-helper")
                .arg("cat-file")
                .arg(e.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                report("apt-helper cat-file", &out)
            );
            let (stale, n) = make_stale(&text(&out.stdout));
            edited += n;
            let plain = ["lz4", "gz", "xz"].iter().fold(name.as_str(), |n, ext| {
                n.trim_end_matches(&format!(".{ext}")[..])
            });
            let dest = lists.join(plain);
            std::fs::write(&dest, stale).unwrap();
            dest
        } else if name.ends_with("Release") {
            // The old Release's hashes are what an update compares the new ones with: made
            // to differ for the indexes, they no longer vouch for them, and apt fetches them.
            let dest = lists.join(&name);
            std::fs::write(
                &dest,
                disown_indexes(&std::fs::read_to_string(e.path()).unwrap()),
            )
            .unwrap();
            dest
        } else {
            let dest = lists.join(&name);
            std::fs::copy(e.path(), &dest).unwrap();
            dest
        };
        // Old, as a fresh image's lists are: an update's If-Modified-Since gets new ones.
        let st = Command::new("touch")
            .args(["-d", "2023-06-10"])
            .arg(&dest)
            .status()
            .unwrap();
        assert!(st.success());
    }
    assert!(
        edited > 0,
        "no linux-headers-amd64 stanza in /var/lib/apt/lists"
    );
    let cfg = tmp.path.join("apt.conf");
    std::fs::write(
        &cfg,
        format!(
            "Dir::State::Lists \"{}\";\nDir::Cache::pkgcache \"\";\nDir::Cache::srcpkgcache \"\";\n",
            lists.display()
        ),
    )
    .unwrap();
    assert_eq!(
        resolved_abi(Some(&cfg)),
        STALE_ABI,
        "the staged lists are not stale"
    );

    let out = clean_command("bash")
        .arg(repo().join("scripts/setup.sh"))
        .env("APT_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        report("setup.sh with stale lists", &out)
    );
    let kver = printed_kver(&out).unwrap_or_else(|| panic!("{}", report("no KVER", &out)));
    assert_ne!(
        kver,
        STALE_ABI,
        "{}",
        report("setup kept the stale version", &out)
    );
    // The staged lists were refreshed, and agree with the system's (fresh) ones.
    assert_eq!(resolved_abi(Some(&cfg)), kver);
    assert_eq!(resolved_abi(None), kver);
}

/// Runs `script` with its cache on a tmpfs of `mib` MiB: it must stop with status 1 and
/// a message holding every one of `says` and the shortfall, and leave `subdir` of the
/// cache empty.
fn stops_on_a_small_disk(script: &str, mib: u32, says: &[&str], subdir: &str) {
    let disk = TempDir::small_disk(script.trim_end_matches(".sh"), mib);
    let out = clean_command("bash")
        .arg(repo().join("scripts").join(script))
        .env("LPATCH_CACHE", &disk.path)
        .output()
        .unwrap();
    let what = format!("{script} on a {mib} MiB disk");
    assert_eq!(out.status.code(), Some(1), "{}", report(&what, &out));
    let err = text(&out.stderr);
    assert!(
        says.iter().all(|s| err.contains(s)) && err.contains("short by "),
        "{}",
        report(&what, &out)
    );
    let left: Vec<_> = std::fs::read_dir(disk.path.join(subdir)).unwrap().collect();
    assert!(left.is_empty(), "{what} left {left:?}");
}

/// Set-up on a disk too small for the kernel image: it stops before downloading, naming
/// the shortfall and the directory, and leaves nothing of the image behind.
#[test]
fn needs_stock_kernel_setup_stops_before_downloading_when_the_disk_is_short() {
    stops_on_a_small_disk(
        "setup.sh",
        16,
        &[
            "setup: not enough free disk for downloading and unpacking linux-image-",
            "lpatch-setup-setup-",
        ],
        "kernel",
    );
}

/// The debug kernel's script on a disk too small for its source and build: it stops
/// before unpacking anything, naming the shortfall.
#[test]
fn needs_stock_kernel_debug_kernel_build_stops_before_unpacking_when_the_disk_is_short() {
    stops_on_a_small_disk(
        "debug-kernel.sh",
        64,
        &["debug-kernel: not enough free disk for unpacking linux-source-6.1"],
        "src",
    );
}

/// Every file below `dir`, relative to it, except under `skip`.
fn files_below(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p == skip {
            continue;
        }
        if p.is_dir() && !p.is_symlink() {
            files_below(&p, skip, out);
        } else {
            out.push(p);
        }
    }
}

/// A fresh clone's first `make all` on a machine with no kernel cache recorded yet (no
/// `current`, no version to read when make starts): it must create `build/current` and
/// nothing outside `build/` but cargo's own `crates/target/`. The clone is the repository's files (tracked, and new ones
/// not ignored: what a commit of this working tree would hold); the cache a new
/// directory holding a copy of this machine's unpacked image (as a download would leave
/// it) but no `current`. It builds what `make all` builds (the module build's host tool,
/// the static CLI, lpatch.ko, the samples): about 2.5 min of CPU, at nice 10.
#[test]
fn needs_stock_kernel_fresh_clone_first_make_all_creates_build_current_only() {
    let tmp = TempDir::new("clone");
    let clone = tmp.path.join("lpatch");
    let cache = tmp.path.join("cache");
    let ls = Command::new("git")
        .arg("-C")
        .arg(repo())
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .unwrap();
    assert!(ls.status.success(), "{}", report("git ls-files", &ls));
    let mut tracked: Vec<PathBuf> = Vec::new();
    for f in ls.stdout.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let rel = PathBuf::from(text(f));
        let src = repo().join(&rel);
        if !src.exists() {
            continue; // deleted in the working tree, not yet committed
        }
        std::fs::create_dir_all(clone.join(&rel).parent().unwrap()).unwrap();
        std::fs::copy(&src, clone.join(&rel)).unwrap();
        tracked.push(clone.join(&rel));
    }
    // Set-up's kernel (Debian's, in this run's cache), whichever kernel the guests boot.
    let cache_root = std::env::var_os("LPATCH_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/lpatch"), PathBuf::from);
    let real = cache_root.join("kernel/current").canonicalize().unwrap();
    let kver = std::fs::read_to_string(real.join("version"))
        .unwrap()
        .trim()
        .to_string();
    std::fs::create_dir_all(cache.join("kernel")).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(&real)
        .arg(cache.join("kernel").join(&kver))
        .status()
        .unwrap();
    assert!(st.success());

    // Its own cargo target, as a clone has (sharing this run's would let the clone's build
    // overwrite the binaries the other tests are using); at low priority, beside them.
    let out = clean_command("nice")
        .args(["-n", "10", "make", "-C"])
        .arg(&clone)
        .arg("all")
        .env("LPATCH_CACHE", &cache)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        report("make all in a fresh clone", &out)
    );

    let current = clone.join("build/current");
    let link = std::fs::read_link(&current)
        .unwrap_or_else(|e| panic!("build/current: {e}\n{}", report("make all", &out)));
    assert_eq!(link, PathBuf::from(format!("linux-headers-{kver}")));
    assert!(current.join("kernel/lpatch.ko").is_file());
    assert!(current
        .join("samples/livepatch-sample/livepatch-sample.ko")
        .is_file());
    assert_eq!(
        std::fs::read_link(cache.join("kernel/current")).unwrap(),
        PathBuf::from(&kver)
    );
    // Outside build/ only cargo's own target directory (crates/target/, ignored by git) may
    // appear; the bug this guards against left a `current` link in the repository's root.
    let mut found = Vec::new();
    files_below(&clone, &clone.join("build"), &mut found);
    let cargo_target = clone.join("crates/target");
    let stray: Vec<_> = found
        .into_iter()
        .filter(|f| !tracked.contains(f) && !f.starts_with(&cargo_target))
        .collect();
    assert!(
        stray.is_empty(),
        "make all left files outside build/: {stray:?}"
    );
}
