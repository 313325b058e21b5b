// SPDX-License-Identifier: GPL-2.0-only
//! The running kernel's symbol table, for the position (sympos) of a name the kernel has
//! more than once: a patch names an old function or a static by name and position, and the
//! kernel counts positions in kallsyms order, which is address order.
//!
//! Debian strips its image; the unstripped vmlinux of the same build is in
//! `linux-image-<kver>-dbg` (same BuildID, same `.text`). Its symbol table keeps each
//! file's local symbols after an `STT_FILE` symbol naming the file, so a unit's statics are
//! found in the group of its file name whose locals the unit's own object has (two files of
//! one name are told apart that way, as kpatch does). The package is 819 MiB; the builder
//! takes its vmlinux once per kernel, keeps a compact list of the symbols
//! (`<cache>/builder/<kver>/symbols`, a few MiB) and deletes the rest. A user's tree
//! (`--kernel-tree`) gives its own `vmlinux` if it has one.

use crate::error::{io, Error, Result};
use crate::extract::Located;
use crate::run;
use object::{Object, ObjectSymbol};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// Names scripts/kallsyms.c leaves out of kallsyms (by prefix): never named by a patch, and
/// left out here so they do not count in a position.
const NOT_IN_KALLSYMS: &[&str] = &["__crc_", "__kstrtab_", "__kstrtabns_", ".L", "__efistub_"];

/// How the kernel orders the symbols of one name when it counts positions.
#[derive(Clone, Copy)]
pub enum Order {
    /// vmlinux: kallsyms is sorted by address.
    Address,
    /// A module: its symbol table's order.
    Table,
}

/// One file's local symbols (a file name "" holds those before any file symbol: Debian's
/// modules have none, so all their statics are there).
struct Group {
    file: String,
    locals: HashMap<String, Vec<u64>>,
}

/// Where each symbol of the kernel is.
pub struct KernelSymbols {
    /// Every address each name has, sorted.
    addresses: HashMap<String, Vec<u64>>,
    /// Globals by name.
    globals: HashMap<String, u64>,
    groups: Vec<Group>,
}

impl KernelSymbols {
    /// From the text [`KernelSymbols::to_text`] writes: `F <file>` opens a file's group,
    /// `<hex address> l|g <name>` is a symbol (a local one belongs to the open group).
    pub fn parse(text: &str) -> Result<Self> {
        let mut k = KernelSymbols {
            addresses: HashMap::new(),
            globals: HashMap::new(),
            groups: Vec::new(),
        };
        for (i, line) in text.lines().enumerate() {
            let bad = || Error::Io(format!("kernel symbol list, line {}: {line:?}", i + 1));
            if let Some(file) = line.strip_prefix("F ") {
                k.groups.push(Group {
                    file: file.to_string(),
                    locals: HashMap::new(),
                });
                continue;
            }
            let mut parts = line.splitn(3, ' ');
            let (Some(addr), Some(bind), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad());
            };
            let addr = u64::from_str_radix(addr, 16).map_err(|_| bad())?;
            match bind {
                "g" => {
                    k.globals.insert(name.to_string(), addr);
                }
                "l" => {
                    if k.groups.is_empty() {
                        k.groups.push(Group {
                            file: String::new(),
                            locals: HashMap::new(),
                        });
                    }
                    let g = k.groups.last_mut().expect("one group at least");
                    g.locals.entry(name.to_string()).or_default().push(addr);
                }
                _ => return Err(bad()),
            }
            k.addresses.entry(name.to_string()).or_default().push(addr);
        }
        for v in k.addresses.values_mut() {
            v.sort_unstable();
        }
        Ok(k)
    }

    /// The compact list of an ELF file's symbols: a vmlinux with its symbol table, where
    /// the kernel counts positions in address order, or a module, where it counts them in
    /// the order of the module's symbol table (its addresses are offsets in sections).
    pub fn list_of_elf(data: &[u8], order: Order) -> Result<String> {
        let file = object::File::parse(data)
            .map_err(|e| Error::Io(format!("reading the kernel's symbol table: {e}")))?;
        let mut out = String::new();
        let mut any = false;
        for s in file.symbols() {
            let Ok(name) = s.name() else { continue };
            if s.kind() == object::SymbolKind::File {
                let _ = writeln!(out, "F {name}");
                continue;
            }
            if name.is_empty()
                || s.is_undefined()
                || s.kind() == object::SymbolKind::Section
                || NOT_IN_KALLSYMS.iter().any(|p| name.starts_with(p))
            {
                continue;
            }
            any = true;
            let bind = if s.is_local() { 'l' } else { 'g' };
            let place = match order {
                Order::Address => s.address(),
                Order::Table => s.index().0 as u64,
            };
            let _ = writeln!(out, "{place:x} {bind} {name}");
        }
        if !any {
            return Err(Error::Io(
                "the kernel image has no symbol table (stripped)".into(),
            ));
        }
        Ok(out)
    }

    /// Loads the list for Debian's `kver` from `dir` (the builder's cache for that kernel),
    /// making it from `linux-image-<kver>-dbg` the first time.
    pub fn of_debian(dir: &Path, kver: &str) -> Result<Self> {
        let list = dir.join("symbols");
        if !list.is_file() {
            make_debian_list(dir, kver, &list)?;
        }
        let text = std::fs::read_to_string(&list).map_err(|e| io(list.display(), e))?;
        Self::parse(&text)
    }

    /// Whether the file defines `name` as a global.
    pub fn has_global(&self, name: &str) -> bool {
        self.globals.contains_key(name)
    }

    /// The position of `name` (1-based, in the kernel's order) when the kernel has it more than
    /// once, else 0 (the kernel's "must be unique"). `local_in`: a static of the unit whose
    /// object is given (its file's name and its own local names tell which group is its),
    /// else a global.
    pub fn sympos(&self, name: &str, local_in: Option<(&str, &[String])>) -> Result<u64> {
        let addr = match local_in {
            None => *self.globals.get(name).ok_or_else(|| {
                Error::Refused(format!(
                    "{name}: no such global in the running kernel's symbol table"
                ))
            })?,
            Some((file, own)) => self.local_address(name, file, own)?,
        };
        let all = &self.addresses[name];
        if all.len() == 1 {
            return Ok(0);
        }
        Ok(all.iter().filter(|a| **a < addr).count() as u64 + 1)
    }

    fn local_address(&self, name: &str, file: &str, own: &[String]) -> Result<u64> {
        let in_file = |f: &str| -> Vec<&Group> {
            self.groups
                .iter()
                .filter(|g| g.file == f && g.locals.contains_key(name))
                .collect()
        };
        let mut candidates = in_file(file);
        if candidates.is_empty() {
            candidates = in_file("");
        }
        let pick = match candidates.as_slice() {
            [] => {
                return Err(Error::Refused(format!(
                "{file}: {name}: the running kernel's symbol table has no such static of this file"
            )))
            }
            [one] => *one,
            many => {
                // The group with most of the unit's own local names.
                let score = |g: &Group| own.iter().filter(|n| g.locals.contains_key(*n)).count();
                let best = many.iter().map(|g| score(g)).max().unwrap_or(0);
                let top: Vec<&&Group> = many.iter().filter(|g| score(g) == best).collect();
                if top.len() != 1 {
                    return Err(Error::Refused(format!(
                        "{file}: {name}: {} files of this name in the running kernel have this static, and their other statics do not tell which is this one",
                        top.len()
                    )));
                }
                top[0]
            }
        };
        match pick.locals[name].as_slice() {
            [one] => Ok(*one),
            _ => Err(Error::Refused(format!(
                "{file}: {name}: the running kernel has more than one static of this name where its symbol table names no files to tell them apart"
            ))),
        }
    }
}

/// The symbol tables one object of a patch is placed with: vmlinux's, and for a module
/// that module's and those of the modules it depends on (module first). A table that is
/// missing leaves positions to the core, which refuses an ambiguous name at load.
pub struct Placement {
    pub vmlinux: Option<KernelSymbols>,
    pub modules: Vec<(String, KernelSymbols)>,
}

impl Placement {
    /// Where the kernel has `name`, used by a unit of `object`: a static of the unit
    /// (`local_in`: the unit's file name and statics) is in `object`; a global is in
    /// `object` when it defines it, else in a module it depends on that does, else in
    /// vmlinux.
    pub fn locate(
        &self,
        object: &str,
        name: &str,
        local_in: Option<(&str, &[String])>,
    ) -> Result<Located> {
        let at = |object: &str, table: Option<&KernelSymbols>, local| -> Result<Located> {
            Ok(Located {
                object: object.to_string(),
                name: name.to_string(),
                sympos: match table {
                    Some(t) => t.sympos(name, local)?,
                    None => 0,
                },
            })
        };
        if object == "vmlinux" {
            return at("vmlinux", self.vmlinux.as_ref(), local_in);
        }
        if local_in.is_some() {
            let own = self.modules.first().filter(|(m, _)| m == object);
            return at(object, own.map(|(_, t)| t), local_in);
        }
        match self.modules.iter().find(|(_, t)| t.has_global(name)) {
            Some((m, t)) => at(m, Some(t), None),
            None => at("vmlinux", self.vmlinux.as_ref(), None),
        }
    }
}

/// Takes the vmlinux out of `linux-image-<kver>-dbg` and writes its symbol list to `list`.
fn make_debian_list(dir: &Path, kver: &str, list: &Path) -> Result<()> {
    run::need_space(dir, 1600, "the kernel's debug image (its symbol table)")?;
    let work = dir.join(".dbg");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| io(work.display(), e))?;
    let made = (|| {
        run::checked(
            Command::new("apt-get")
                .args(["download", "-qq", &format!("linux-image-{kver}-dbg")])
                .current_dir(&work),
            "apt",
            &format!("downloading linux-image-{kver}-dbg (the unstripped vmlinux)"),
        )?;
        run::pipeline(
            &format!(
                "{{ dpkg-deb --fsys-tarfile linux-image-*-dbg_*.deb || true; }} | tar -x --occurrence=1 -O -f - ./usr/lib/debug/boot/vmlinux-{kver} > vmlinux"
            ),
            &work,
            &format!("taking vmlinux out of linux-image-{kver}-dbg"),
        )?;
        // tar stops at the file (dpkg-deb then dies of a closed pipe, hence `|| true`); a
        // short or missing file fails to parse below.
        let vmlinux = work.join("vmlinux");
        let data = std::fs::read(&vmlinux).map_err(|e| io(vmlinux.display(), e))?;
        let text = KernelSymbols::list_of_elf(&data, Order::Address)?;
        let tmp = list.with_extension("new");
        std::fs::write(&tmp, text).map_err(|e| io(tmp.display(), e))?;
        std::fs::rename(&tmp, list).map_err(|e| io(list.display(), e))
    })();
    let _ = std::fs::remove_dir_all(&work);
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "F consoles.c\n\
        ffffffff81410760 l c_start\n\
        ffffffff814105d0 l c_next\n\
        F cpu.c\n\
        ffffffff8104c960 l c_start\n\
        F core.c\n\
        ffffffff81000100 l helper\n\
        ffffffff81000200 l only_here\n\
        F core.c\n\
        ffffffff81000300 l helper\n\
        ffffffff81000400 l other\n\
        ffffffff81000500 g get_next_ino\n\
        ffffffff81000600 l get_next_ino\n";

    #[test]
    fn positions_count_in_address_order() {
        let k = KernelSymbols::parse(LIST).unwrap();
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            k.sympos("c_start", Some(("consoles.c", &own(&[]))))
                .unwrap(),
            2
        );
        assert_eq!(k.sympos("c_start", Some(("cpu.c", &own(&[])))).unwrap(), 1);
        assert_eq!(
            k.sympos("c_next", Some(("consoles.c", &own(&[])))).unwrap(),
            0
        );
        // Two core.c: told apart by the unit's other statics.
        assert_eq!(
            k.sympos("helper", Some(("core.c", &own(&["helper", "other"]))))
                .unwrap(),
            2
        );
        assert_eq!(
            k.sympos("helper", Some(("core.c", &own(&["helper", "only_here"]))))
                .unwrap(),
            1
        );
        let e = k
            .sympos("helper", Some(("core.c", &own(&["helper"]))))
            .unwrap_err();
        assert!(e.to_string().contains("do not tell which"), "{e}");
        // A global that a static elsewhere shares its name with.
        assert_eq!(k.sympos("get_next_ino", None).unwrap(), 1);
        assert!(k.sympos("nope", None).is_err());
        assert!(k.sympos("nope", Some(("core.c", &own(&[])))).is_err());
    }

    #[test]
    fn a_module_unit_names_its_module_its_dependencies_or_vmlinux() {
        let module = "F zram_drv.c\n\
            10 l num_devices\n\
            11 l max_comp_streams_show\n\
            F zcomp.c\n\
            20 l max_comp_streams_show\n\
            30 g zcomp_create\n";
        let dep = "40 g zs_unexported\n41 l twice\n42 l twice\n";
        let p = Placement {
            vmlinux: Some(KernelSymbols::parse(LIST).unwrap()),
            modules: vec![
                ("zram".into(), KernelSymbols::parse(module).unwrap()),
                ("zsmalloc".into(), KernelSymbols::parse(dep).unwrap()),
            ],
        };
        let statics = ["num_devices".to_string()];
        let local = Some(("zram_drv.c", &statics[..]));
        let at = |o: &str, n: &str, pos: u64| Located {
            object: o.into(),
            name: n.into(),
            sympos: pos,
        };
        assert_eq!(
            p.locate("zram", "max_comp_streams_show", local).unwrap(),
            at("zram", "max_comp_streams_show", 1)
        );
        assert_eq!(
            p.locate("zram", "num_devices", local).unwrap(),
            at("zram", "num_devices", 0)
        );
        assert_eq!(
            p.locate("zram", "zcomp_create", None).unwrap(),
            at("zram", "zcomp_create", 0)
        );
        assert_eq!(
            p.locate("zram", "zs_unexported", None).unwrap(),
            at("zsmalloc", "zs_unexported", 0)
        );
        assert_eq!(
            p.locate("zram", "get_next_ino", None).unwrap(),
            at("vmlinux", "get_next_ino", 1)
        );
        // A module without file symbols: its statics are one group.
        let dep = KernelSymbols::parse(dep).unwrap();
        let e = dep.sympos("twice", Some(("zs.c", &statics[..])));
        assert!(e.is_err(), "{e:?}");
        // Without the module's table: statics stay in the module, unplaced.
        let bare = Placement {
            vmlinux: None,
            modules: Vec::new(),
        };
        assert_eq!(
            bare.locate("zram", "num_devices", local).unwrap(),
            at("zram", "num_devices", 0)
        );
        assert_eq!(
            bare.locate("zram", "other", None).unwrap(),
            at("vmlinux", "other", 0)
        );
    }

    #[test]
    fn a_malformed_list_is_an_error() {
        assert!(KernelSymbols::parse("zz l x\n").is_err());
        assert!(KernelSymbols::parse("10 q x\n").is_err());
        assert!(KernelSymbols::parse("10\n").is_err());
    }
}
