// SPDX-License-Identifier: GPL-2.0-only
//! A writer (and, for the tests, a reader) of the "newc" cpio format that the kernel
//! unpacks as an initramfs. The archive is left uncompressed: the kernel takes it as is.
//!
//! Entries are written in the order they are added; the kernel creates each entry when
//! it meets it, so a directory must come before anything inside it. [`Cpio`] takes care
//! of that by creating missing parent directories itself.

use std::collections::BTreeSet;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: usize = 110;

/// An in-memory newc archive under construction.
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
    dirs: BTreeSet<String>,
}

impl Default for Cpio {
    fn default() -> Self {
        Self::new()
    }
}

fn pad4(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// "/a//b/" -> "a/b": cpio names are relative, without a leading slash.
fn norm(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

impl Cpio {
    pub fn new() -> Cpio {
        Cpio {
            buf: Vec::new(),
            ino: 1,
            dirs: BTreeSet::new(),
        }
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        let ino = self.ino;
        self.ino += 1;
        let namesize = name.len() + 1;
        let fields: [u32; 13] = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            namesize as u32,
            0, // check
        ];
        self.buf.extend_from_slice(MAGIC);
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        pad4(&mut self.buf);
        self.buf.extend_from_slice(data);
        pad4(&mut self.buf);
    }

    /// Creates the parent directories of `name` (already normalised) that are missing.
    fn parents(&mut self, name: &str) {
        let mut prefix = String::new();
        let comps: Vec<&str> = name.split('/').collect();
        for c in &comps[..comps.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
            if !self.dirs.contains(&prefix) {
                let p = prefix.clone();
                self.dir(&p, 0o755);
            }
        }
    }

    /// A directory (parents created as needed). Adding one twice is a no-op.
    pub fn dir(&mut self, path: &str, perm: u32) {
        let name = norm(path);
        if name.is_empty() || self.dirs.contains(&name) {
            return;
        }
        self.parents(&name);
        self.entry(&name, S_IFDIR | (perm & 0o7777), 2, (0, 0), &[]);
        self.dirs.insert(name);
    }

    /// A regular file with the given permission bits.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        let name = norm(path);
        self.parents(&name);
        self.entry(&name, S_IFREG | (perm & 0o7777), 1, (0, 0), data);
    }

    /// A symbolic link `path` -> `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        let name = norm(path);
        self.parents(&name);
        self.entry(&name, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes());
    }

    /// A character device node. Written into the archive, so creating it needs no
    /// privilege on the host.
    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        let name = norm(path);
        self.parents(&name);
        self.entry(&name, S_IFCHR | (perm & 0o7777), 1, (major, minor), &[]);
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry(TRAILER, 0, 1, (0, 0), &[]);
        // The kernel does not care, but cpio(1) likes a 512-byte multiple.
        while !self.buf.len().is_multiple_of(512) {
            self.buf.push(0);
        }
        self.buf
    }
}

/// One entry read back by [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub mode: u32,
    pub nlink: u32,
    pub rdev: (u32, u32),
    pub data: Vec<u8>,
}

/// Parses a newc archive up to its trailer. Used by the tests to check the writer.
pub fn parse(mut buf: &[u8]) -> Result<Vec<Entry>, String> {
    let total = buf.len();
    let mut out = Vec::new();
    loop {
        let at = total - buf.len();
        if buf.len() < HEADER_LEN {
            return Err(format!("truncated header at {at}"));
        }
        if &buf[..6] != MAGIC {
            return Err(format!("bad magic at {at}"));
        }
        let mut f = [0u32; 13];
        for (i, v) in f.iter_mut().enumerate() {
            let s = std::str::from_utf8(&buf[6 + 8 * i..14 + 8 * i]).map_err(|e| e.to_string())?;
            *v = u32::from_str_radix(s, 16).map_err(|e| format!("field {i} at {at}: {e}"))?;
        }
        let namesize = f[11] as usize;
        let filesize = f[6] as usize;
        let name_end = HEADER_LEN + namesize;
        if namesize == 0 || buf.len() < name_end || buf[name_end - 1] != 0 {
            return Err(format!("bad name at {at}"));
        }
        let name = String::from_utf8_lossy(&buf[HEADER_LEN..name_end - 1]).into_owned();
        let data_start = (at + name_end).next_multiple_of(4) - at;
        let data_end = data_start + filesize;
        if buf.len() < data_end {
            return Err(format!("truncated data of {name}"));
        }
        if name == TRAILER {
            return Ok(out);
        }
        out.push(Entry {
            name,
            mode: f[1],
            nlink: f[4],
            rdev: (f[9], f[10]),
            data: buf[data_start..data_end].to_vec(),
        });
        let next = ((at + data_end).next_multiple_of(4) - at).min(buf.len());
        buf = &buf[next..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut c = Cpio::new();
        c.dir("/dev", 0o755);
        c.char_dev("/dev/console", 0o600, 5, 1);
        c.file("/lib/lpatch/a.ko", 0o644, b"odd");
        c.file("/init", 0o755, b"#!/bin/sh\n");
        c.symlink("/bin/sh", "busybox");
        c.dir("/dev", 0o755); // twice: no second entry
        c.file("/lib/lpatch/empty", 0o600, b"");
        c.finish()
    }

    #[test]
    fn round_trip() {
        let a = sample();
        assert_eq!(a.len() % 512, 0);
        let e = parse(&a).unwrap();
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev",
                "dev/console",
                "lib",
                "lib/lpatch",
                "lib/lpatch/a.ko",
                "init",
                "bin",
                "bin/sh",
                "lib/lpatch/empty"
            ]
        );
        let by = |n: &str| e.iter().find(|e| e.name == n).unwrap().clone();
        assert_eq!(by("dev/console").mode, S_IFCHR | 0o600);
        assert_eq!(by("dev/console").rdev, (5, 1));
        assert_eq!(by("lib/lpatch/a.ko").data, b"odd");
        assert_eq!(by("lib/lpatch/a.ko").mode, S_IFREG | 0o644);
        assert_eq!(by("init").mode & 0o7777, 0o755);
        assert_eq!(by("bin/sh").mode & S_IFMT, S_IFLNK);
        assert_eq!(by("bin/sh").data, b"busybox");
        assert_eq!(by("lib").mode, S_IFDIR | 0o755);
        assert_eq!(by("lib").nlink, 2);
        assert!(by("lib/lpatch/empty").data.is_empty());
    }

    #[test]
    fn norm_paths() {
        assert_eq!(norm("/a//b/./c/"), "a/b/c");
        assert_eq!(norm("x"), "x");
        assert_eq!(norm("/"), "");
    }

    /// Cross-check with GNU cpio (scripts/setup.sh installs it; missing, the test fails).
    #[test]
    fn gnu_cpio_lists_it() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running cpio(1): {e} (scripts/setup.sh installs it)"));
        child.stdin.take().unwrap().write_all(&sample()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 9, "{text}");
        assert!(
            lines[1].starts_with("crw-------")
                && lines[1].contains("5,")
                && lines[1].ends_with("dev/console"),
            "{text}"
        );
        assert!(
            lines[7].starts_with("lrwxrwxrwx") && lines[7].ends_with("bin/sh -> busybox"),
            "{text}"
        );
        assert!(
            lines[4].starts_with("-rw-r--r--") && lines[4].ends_with("lib/lpatch/a.ko"),
            "{text}"
        );
    }
}
