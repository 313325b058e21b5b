// SPDX-License-Identifier: GPL-2.0-only
//! Extraction of a patched unit's changed and new code and data into the object a patch
//! module carries, on small C units compiled as the builder compiles kernel units.

mod cc;

use lpatch_build::extract::{extract, Extracted, Located, Request, NEW_PREFIX, RECORDS_SECTION};
use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};
use std::collections::HashSet;

const SRC: &str = r#"
extern int printk(const char *fmt, ...);
extern int kernel_global_unexported;
static int counter;
int added_global;
static int __attribute__((noinline)) helper(int x) { return x * 3 + counter; }
int __attribute__((noinline)) other(int x) { return x + 1; }
static int __attribute__((noinline)) added_fn(int x) { return x ^ 0x5a5a; }
int fixed(int x)
{
	static int calls;

	calls++;
	counter++;
	added_global += x;
	printk("%s: fixed %d\n", __func__, helper(x) + kernel_global_unexported);
	return added_fn(x) + other(x);
}
"#;

fn vmlinux(name: &str, sympos: u64) -> Located {
    Located {
        object: "vmlinux".into(),
        name: name.into(),
        sympos,
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Where the kernel has a name the extraction asks about (see `Request::locate`).
type Locate<'a> = &'a dyn Fn(&str, bool) -> Result<Located, String>;

/// Extracts `functions` of `obj` (no data, nothing exported), every symbol placed in
/// vmlinux, or by `locate` when given.
fn extract_functions(
    obj: &[u8],
    functions: &[&str],
    locate: Option<Locate<'_>>,
) -> Result<Extracted, String> {
    let functions = names(functions);
    extract(
        obj,
        &Request {
            functions: &functions,
            data: &[],
            exported: &HashSet::new(),
            locate: locate.unwrap_or(&|n, _| Ok(vmlinux(n, 0))),
        },
    )
}

/// The refusal of extracting `functions` of `src`.
fn refusal(src: &str, functions: &[&str]) -> String {
    let obj = cc::compile("x", src);
    extract_functions(&obj, functions, None)
        .err()
        .expect("refused")
}

#[test]
fn copies_only_what_is_asked_and_names_the_rest() {
    let obj = cc::compile("x", SRC);
    let exported: HashSet<String> = ["printk", "__fentry__", "__x86_return_thunk"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let functions = names(&["fixed", "added_fn"]);
    let data = names(&["added_global"]);
    // As the kernel would answer: the static local has another number there, `helper`
    // is the second of its name, the rest are unique; only statics are asked as such.
    let locate = |n: &str, local: bool| -> Result<Located, String> {
        match (n, local) {
            ("calls.1", true) => Ok(vmlinux("calls.7", 0)),
            ("helper", true) => Ok(vmlinux("helper", 2)),
            ("counter", true) | ("other", false) => Ok(vmlinux(n, 0)),
            // Defined by a module the unit's module depends on, say.
            ("kernel_global_unexported", false) => Ok(Located {
                object: "dep_mod".into(),
                name: n.into(),
                sympos: 0,
            }),
            _ => Err(format!("asked about {n} (local: {local})")),
        }
    };
    let out = extract(
        &obj,
        &Request {
            functions: &functions,
            data: &data,
            exported: &exported,
            locate: &locate,
        },
    )
    .unwrap_or_else(|e| panic!("extract: {e}"));
    assert_eq!(
        out.functions,
        vec![
            ("fixed".to_string(), format!("{NEW_PREFIX}fixed")),
            ("added_fn".to_string(), format!("{NEW_PREFIX}added_fn")),
        ]
    );
    // Statics and unexported globals of the kernel are named by record; the exported one not.
    assert_eq!(
        out.records,
        vec![
            Located {
                object: "dep_mod".into(),
                name: "kernel_global_unexported".into(),
                sympos: 0
            },
            vmlinux("calls.7", 0),
            vmlinux("counter", 0),
            vmlinux("helper", 2),
            vmlinux("other", 0),
        ]
    );
    let file = object::File::parse(&*out.bytes).expect("the output parses");
    let defined: Vec<String> = file
        .symbols()
        .filter(|s| !s.is_undefined() && s.kind() != object::SymbolKind::Section)
        .filter(|s| s.kind() != object::SymbolKind::File)
        .map(|s| s.name().unwrap().to_string())
        .collect();
    for want in [
        format!("{NEW_PREFIX}fixed"),
        format!("{NEW_PREFIX}added_fn"),
        "added_global".to_string(),
    ] {
        assert!(defined.contains(&want), "{want} not defined: {defined:?}");
    }
    for gone in ["helper", "counter", "other", "calls.1"] {
        assert!(
            !defined.iter().any(|d| d == gone),
            "{gone} copied: {defined:?}"
        );
    }
    let global = |n: &str| {
        file.symbols()
            .find(|s| s.name() == Ok(n))
            .unwrap_or_else(|| panic!("no symbol {n}"))
    };
    assert!(global(&format!("{NEW_PREFIX}fixed")).is_global());
    for undefined in [
        "calls.7",
        "helper",
        "counter",
        "other",
        "printk",
        "kernel_global_unexported",
    ] {
        assert!(
            global(undefined).is_undefined(),
            "{undefined} should be undefined"
        );
    }
    // The records section lists them for klp-convert.
    let rec = file.section_by_name(RECORDS_SECTION).expect("records");
    assert_eq!(
        rec.data().unwrap(),
        b"dep_mod kernel_global_unexported 0\0vmlinux calls.7 0\0vmlinux counter 0\0vmlinux helper 2\0vmlinux other 0\0"
    );
    // The string literals and __func__ came along; every relocation of the copied code
    // points at a symbol that is defined here or named.
    let text = file.section_by_name(".text.fixed").expect(".text.fixed");
    let mut targets = Vec::new();
    for (_, r) in text.relocations() {
        if let RelocationTarget::Symbol(i) = r.target() {
            let s = file.symbol_by_index(i).unwrap();
            targets.push(match s.kind() {
                object::SymbolKind::Section => file
                    .section_by_index(s.section_index().unwrap())
                    .unwrap()
                    .name()
                    .unwrap()
                    .to_string(),
                _ => s.name().unwrap().to_string(),
            });
        }
    }
    assert!(targets.iter().any(|t| t.contains(".str1.")), "{targets:?}");
    assert!(
        targets.iter().any(|t| t.contains("__func__")),
        "{targets:?}"
    );
    // ftrace call sites: only those of the copied functions.
    let mcount = file.section_by_name("__mcount_loc").expect("__mcount_loc");
    assert_eq!(
        mcount.size(),
        16,
        "two copied functions, one call site each"
    );
    assert_eq!(mcount.relocations().count(), 2);
}

#[test]
fn a_missing_function_is_named() {
    let e = refusal(SRC, &["no_such"]);
    assert!(e.contains("no_such: no such function"), "{e}");
}

#[test]
fn bug_table_entries_and_their_file_names_are_carried() {
    let src = r#"
int warned(int x)
{
	if (x > 3)
		asm volatile("1: ud2\n.pushsection __bug_table,\"aw\"\n2: .long 1b - .\n.long %c0 - .\n.word %c1, 0\n.org 2b + 12\n.popsection" : : "i"("lib/warned.c"), "i"(7));
	return x;
}
int other(int x)
{
	if (x > 4)
		asm volatile("1: ud2\n.pushsection __bug_table,\"aw\"\n2: .long 1b - .\n.long %c0 - .\n.word %c1, 0\n.org 2b + 12\n.popsection" : : "i"("lib/other.c"), "i"(9));
	return x;
}
"#;
    let obj = cc::compile("x", src);
    let out = extract_functions(&obj, &["warned"], None).unwrap_or_else(|e| panic!("extract: {e}"));
    let file = object::File::parse(&*out.bytes).expect("the output parses");
    let bugs = file.section_by_name("__bug_table").expect("__bug_table");
    assert_eq!(bugs.size(), 12, "the copied function's one entry");
    let data = bugs.data().unwrap();
    assert_eq!(u16::from_le_bytes([data[8], data[9]]), 7, "its line");
    // Its address and its file name, which came along.
    let mut targets: Vec<String> = Vec::new();
    for (_, r) in bugs.relocations() {
        if let RelocationTarget::Symbol(i) = r.target() {
            let s = file.symbol_by_index(i).unwrap();
            let sec = file
                .section_by_index(s.section_index().expect("defined"))
                .unwrap();
            let bytes = sec.data().unwrap();
            let at = (s.address() as i64 + r.addend()) as usize;
            targets.push(match sec.name().unwrap() {
                n if n.starts_with(".text") => n.to_string(),
                _ => String::from_utf8_lossy(&bytes[at..at + 12]).into_owned(),
            });
        }
    }
    assert_eq!(
        targets,
        vec![".text.warned".to_string(), "lib/warned.c".to_string()]
    );
}

#[test]
fn lock_prefixes_of_the_copied_code_are_carried() {
    let src = r#"
int counted;
static int kept_out;
int bumped(void)
{
	asm volatile("1: lock; incl %0\n.pushsection .smp_locks,\"a\"\n.long 1b - .\n.popsection" : "+m"(counted));
	return counted;
}
int other(void)
{
	asm volatile("1: lock; incl %0\n.pushsection .smp_locks,\"a\"\n.long 1b - .\n.popsection" : "+m"(kept_out));
	return kept_out;
}
"#;
    let obj = cc::compile("x", src);
    let out = extract_functions(&obj, &["bumped"], None).unwrap_or_else(|e| panic!("extract: {e}"));
    let file = object::File::parse(&*out.bytes).expect("the output parses");
    let locks = file.section_by_name(".smp_locks").expect(".smp_locks");
    assert_eq!(locks.size(), 4, "the copied function's one entry");
    let targets: Vec<String> = locks
        .relocations()
        .map(|(_, r)| match r.target() {
            RelocationTarget::Symbol(i) => {
                let s = file.symbol_by_index(i).unwrap();
                file.section_by_index(s.section_index().unwrap())
                    .unwrap()
                    .name()
                    .unwrap()
                    .to_string()
            }
            _ => String::new(),
        })
        .collect();
    assert_eq!(targets, vec![".text.bumped".to_string()]);
}

#[test]
fn a_table_entry_needing_a_module_symbol_is_refused() {
    let src = r#"
struct key { int enabled; };
static struct key mod_key;
int keyed(int x)
{
	asm goto("1: jmp %l[yes]\n.pushsection __jump_table,\"aw\"\n.balign 8\n.long 1b - ., %l[yes] - .\n.quad %c0 - .\n.popsection" : : "i"(&mod_key) : : yes);
	return x;
yes:
	return x + 1;
}
"#;
    let obj = cc::compile("x", src);
    let in_module = |n: &str, _| {
        Ok(Located {
            object: "some_mod".into(),
            name: n.into(),
            sympos: 0,
        })
    };
    let e = extract_functions(&obj, &["keyed"], Some(&in_module))
        .err()
        .expect("refused");
    assert!(
        e.contains("__jump_table") && e.contains("mod_key") && e.contains("module some_mod"),
        "{e}"
    );
    // The same key in vmlinux is carried.
    let out = extract_functions(&obj, &["keyed"], None).unwrap_or_else(|e| panic!("extract: {e}"));
    assert!(
        out.records.contains(&vmlinux("mod_key", 0)),
        "{:?}",
        out.records
    );
    let file = object::File::parse(&*out.bytes).expect("the output parses");
    assert_eq!(file.section_by_name("__jump_table").unwrap().size(), 16);
}
