// SPDX-License-Identifier: GPL-2.0-only
//! The kernel log as /dev/kmsg gives it: one record per read(), each
//! "prio,seq,ts_usec,flags[,...];message\n" followed by optional " KEY=VALUE\n" lines.
//!
//! A [`Cursor`] is opened before an operation, positioned after the last record, and read
//! afterwards: it then yields exactly the records the kernel logged meanwhile. The same
//! code reads a regular file (tests' fake kmsg), where appended lines play the new records.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// syslog facility << 3 | level.
    pub prio: u32,
    pub seq: u64,
    pub message: String,
}

/// Parses one record line; None for continuation lines and anything malformed.
pub fn parse_record(line: &str) -> Option<Record> {
    if line.starts_with(' ') {
        return None;
    }
    let (header, message) = line.split_once(';')?;
    let mut fields = header.split(',');
    let prio = fields.next()?.trim().parse().ok()?;
    let seq = fields.next()?.trim().parse().ok()?;
    Some(Record {
        prio,
        seq,
        message: message.trim_end_matches(['\n', '\r']).to_string(),
    })
}

pub struct Cursor {
    file: Option<File>,
    /// Why the log cannot be read, when it cannot.
    pub error: Option<String>,
    pending: Vec<u8>,
}

impl Cursor {
    /// Opens the log and skips every record already in it.
    pub fn start(path: &Path) -> Cursor {
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path);
        match opened {
            Ok(mut f) => match f.seek(SeekFrom::End(0)) {
                Ok(_) => Cursor {
                    file: Some(f),
                    error: None,
                    pending: Vec::new(),
                },
                Err(e) => Cursor::broken(path, &e),
            },
            Err(e) => Cursor::broken(path, &e),
        }
    }

    fn broken(path: &Path, e: &std::io::Error) -> Cursor {
        let why = format!(
            "cannot read the kernel log {}: {}",
            path.display(),
            crate::errno::describe_io(e)
        );
        Cursor {
            file: None,
            error: Some(why),
            pending: Vec::new(),
        }
    }

    /// The records logged since [`Cursor::start`] (or the previous call).
    pub fn read_new(&mut self) -> Vec<Record> {
        let Some(file) = self.file.as_mut() else {
            return Vec::new();
        };
        // /dev/kmsg wants a buffer that holds a whole record; 16 KiB is above its limit.
        let mut buf = vec![0u8; 16 * 1024];
        // Bounded: a ring buffer that is overwritten while we read keeps answering EPIPE.
        for _ in 0..100_000 {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // Records were overwritten before we read them; the next read goes on.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) => {
                    self.error = Some(format!(
                        "reading the kernel log failed: {}",
                        crate::errno::describe_io(&e)
                    ));
                    break;
                }
            }
        }
        let complete = match self.pending.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => return Vec::new(),
        };
        let text: Vec<u8> = self.pending.drain(..complete).collect();
        String::from_utf8_lossy(&text)
            .lines()
            .filter_map(parse_record)
            .collect()
    }
}

/// Whether a log message comes from the lpatch core ("lpatch: ...").
pub fn is_core_line(message: &str) -> bool {
    message.contains("lpatch:")
}

/// Whether `message` is worth showing after an operation on module `module`: the core's
/// own lines and the module loader's lines about that module ("<module>: Unknown symbol ...").
fn is_relevant(message: &str, module: Option<&str>) -> bool {
    is_core_line(message)
        || module.is_some_and(|m| {
            message
                .strip_prefix(m)
                .is_some_and(|rest| rest.starts_with(':'))
        })
}

/// The messages worth showing after an operation on module `module` (see `is_relevant`).
pub fn relevant(records: &[Record], module: Option<&str>) -> Vec<String> {
    records
        .iter()
        .filter(|r| is_relevant(&r.message, module))
        .map(|r| r.message.clone())
        .collect()
}

/// The lines of a module's load: [`relevant`]'s, and the in-kernel livepatch code's (the
/// loader resolves a patch module's vmlinux relocations through it, and says so with
/// "livepatch: " when one fails).
pub fn relevant_to_load(records: &[Record], module: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.message.starts_with("livepatch: ") || is_relevant(&r.message, Some(module)))
        .map(|r| r.message.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempTree;
    use std::io::Write;

    #[test]
    fn parses_records() {
        let r = parse_record("6,1234,5678901,-;lpatch: enabling patch p\n").unwrap();
        assert_eq!(
            r,
            Record {
                prio: 6,
                seq: 1234,
                message: "lpatch: enabling patch p".into()
            }
        );
        let r = parse_record("4,7,1,c,caller=T12;hello; world").unwrap();
        assert_eq!(r.seq, 7);
        assert_eq!(r.message, "hello; world");
        assert_eq!(parse_record(" SUBSYSTEM=acpi"), None);
        assert_eq!(parse_record("garbage"), None);
        assert_eq!(parse_record("x,1,2,-;m"), None);
        assert_eq!(parse_record("6;m"), None);
        assert_eq!(parse_record(""), None);
    }

    #[test]
    fn cursor_sees_only_new_records() {
        let t = TempTree::new();
        let path = t.write("kmsg", "6,1,0,-;lpatch: old line\n 6,continuation\n");
        let mut c = Cursor::start(&path);
        assert!(c.error.is_none());
        assert!(c.read_new().is_empty());
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(
            b"6,2,0,-;lpatch: new line\n SUBSYSTEM=x\n4,3,0,-;other: thing\n6,4,0,-;partial",
        )
        .unwrap();
        let got = c.read_new();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].message, "lpatch: new line");
        assert_eq!(got[1].seq, 3);
        f.write_all(b" line\n").unwrap();
        let got = c.read_new();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message, "partial line");
    }

    #[test]
    fn missing_log_is_explained() {
        let t = TempTree::new();
        let mut c = Cursor::start(&t.path("nope"));
        assert!(c.error.as_deref().unwrap().contains("ENOENT"));
        assert!(c.read_new().is_empty());
    }

    #[test]
    fn relevant_lines() {
        let recs = vec![
            Record {
                prio: 6,
                seq: 1,
                message: "lpatch: patch a loaded".into(),
            },
            Record {
                prio: 3,
                seq: 2,
                message: "a: Unknown symbol foo (err -2)".into(),
            },
            Record {
                prio: 3,
                seq: 3,
                message: "ab: Unknown symbol bar (err -2)".into(),
            },
            Record {
                prio: 6,
                seq: 4,
                message: "usb 1-1: new device".into(),
            },
        ];
        assert_eq!(
            relevant(&recs, Some("a")),
            vec!["lpatch: patch a loaded", "a: Unknown symbol foo (err -2)"]
        );
        assert_eq!(relevant(&recs, None), vec!["lpatch: patch a loaded"]);
    }
}
