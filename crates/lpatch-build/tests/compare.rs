// SPDX-License-Identifier: GPL-2.0-only
//! `compare` on objects gcc-12 builds from small C sources with the kernel's flags.

mod cc;

use lpatch_build::compare::{compare, CloneChange, CompareError, ObjectDiff};
use object::{Object, ObjectSection, ObjectSymbol};

fn s(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Compiles both versions as `t.c` and compares them.
fn diff(before: &str, after: &str) -> ObjectDiff {
    diff_with(before, after, &[])
}

fn diff_with(before: &str, after: &str, extra: &[&str]) -> ObjectDiff {
    let b = cc::compile_with("t", before, extra);
    let a = cc::compile_with("t", after, extra);
    compare(&b, &a).unwrap_or_else(|e| panic!("compare: {e}"))
}

/// The names of an object's defined symbols.
fn defined_symbols(obj: &[u8]) -> Vec<String> {
    let file = object::File::parse(obj).expect("gcc's output parses");
    file.symbols()
        .filter(|s| !s.is_undefined())
        .filter_map(|s| s.name().ok().map(str::to_string))
        .collect()
}

/// A section's bytes.
fn section_bytes(obj: &[u8], name: &str) -> Vec<u8> {
    let file = object::File::parse(obj).expect("gcc's output parses");
    let section = file
        .section_by_name(name)
        .unwrap_or_else(|| panic!("no section {name}"));
    section.data().expect("section data").to_vec()
}

/// The one defined symbol whose name starts with `prefix`.
fn symbol_starting(obj: &[u8], prefix: &str) -> String {
    let found: Vec<String> = defined_symbols(obj)
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "symbols starting with {prefix}: {found:?}");
    found.into_iter().next().unwrap()
}

const HEADER: &str = "void printk(const char *, ...);\nint ext(int);\nvoid use(void *);\n";

#[test]
fn identical_sources_give_an_empty_diff() {
    let src = format!(
        "{HEADER}
int a(int x) {{ printk(\"a %d\\n\", x); return ext(x) + 1; }}
int b(int x) {{ static int n; n += x; use(&n); return n; }}
"
    );
    let d = diff(&src, &src);
    assert_eq!(d, ObjectDiff::default());
    assert!(d.is_empty());
}

#[test]
fn a_changed_function_alone_is_reported() {
    let before = format!(
        "{HEADER}
int a(int x) {{ return ext(x) + 1; }}
int b(int x) {{ return ext(x) * 2; }}
int c(int x) {{ return ext(x - 1); }}
"
    );
    let after = before.replace("ext(x) * 2", "ext(x) * 3");
    let d = diff(&before, &after);
    assert_eq!(
        d,
        ObjectDiff {
            changed: s(&["b"]),
            ..Default::default()
        }
    );
}

#[test]
fn a_changed_call_target_is_a_change() {
    let before = format!(
        "{HEADER}int other(int);
int a(int x) {{ return ext(x) + 1; }}
"
    );
    let after = before.replace("return ext(x)", "return other(x)");
    assert_eq!(diff(&before, &after).changed, s(&["a"]));
}

#[test]
fn new_functions_and_data() {
    let before = format!(
        "{HEADER}
int a(int x) {{ return ext(x) + 1; }}
"
    );
    let after = format!(
        "{before}
int counter_g = 5;
static int hidden_s[4];
int newfn(int i) {{ hidden_s[i & 3]++; use(hidden_s); return counter_g + hidden_s[0]; }}
"
    );
    let d = diff(&before, &after);
    assert_eq!(
        d,
        ObjectDiff {
            new_functions: s(&["newfn"]),
            new_data: s(&["counter_g", "hidden_s"]),
            ..Default::default()
        }
    );
    // And the other way round: a removed function is informational only.
    let d = diff(&after, &before);
    assert_eq!(
        d,
        ObjectDiff {
            removed_functions: s(&["newfn"]),
            ..Default::default()
        }
    );
}

#[test]
fn a_changed_static_inline_changes_its_callers_only() {
    let before = format!(
        "{HEADER}
static inline int helper(int x) {{ return ext(x) + 1; }}
int caller1(int x) {{ return helper(x) * 2; }}
int caller2(int x) {{ return helper(x + 3); }}
int unrelated(int x) {{ return ext(x - 1); }}
"
    );
    let after = before.replace("ext(x) + 1", "ext(x) + 2");
    let b = cc::compile("t", &before);
    assert!(
        !defined_symbols(&b).iter().any(|n| n.starts_with("helper")),
        "helper should have been inlined"
    );
    let d = diff(&before, &after);
    assert_eq!(
        d,
        ObjectDiff {
            changed: s(&["caller1", "caller2"]),
            ..Default::default()
        }
    );
}

const STRINGS: &str = "void printk(const char *, ...);
void s1(int x) { printk(\"one %d\\n\", x); printk(\"shared\\n\"); }
void s2(int x) { printk(\"two %d\\n\", x); printk(\"shared\\n\"); }
void s3(int x) { printk(\"shared\\n\"); printk(\"three %d\\n\", x); }
";

#[test]
fn a_string_added_in_one_function_leaves_the_others_alone() {
    let after = STRINGS.replace(
        "void s1(int x) { ",
        "void s1(int x) { printk(\"zero\\n\"); ",
    );
    let expected = ObjectDiff {
        changed: s(&["s1"]),
        ..Default::default()
    };
    assert_eq!(diff(STRINGS, &after), expected);
    // Without -fdata-sections all strings share one .rodata.str1.1, where the
    // new string moves every other.
    let b = cc::compile_with("t", STRINGS, &["-fno-data-sections"]);
    assert!(object::File::parse(&*b)
        .unwrap()
        .section_by_name(".rodata.str1.1")
        .is_some());
    assert_eq!(
        diff_with(STRINGS, &after, &["-fno-data-sections"]),
        expected
    );
    // A string changed in one function is a change of that function.
    let after = STRINGS.replace("two %d", "deux %d");
    assert_eq!(
        diff_with(STRINGS, &after, &["-fno-data-sections"]).changed,
        s(&["s2"])
    );
    assert_eq!(diff(STRINGS, &after).changed, s(&["s2"]));
}

#[test]
fn strings_in_plain_rodata_are_compared_by_content() {
    // KASAN kernels (and -fno-merge-constants) put string literals in plain .rodata, with no
    // symbols: a string grown in one function moves the others, which must not count.
    let flags = ["-fno-merge-constants", "-fno-data-sections"];
    let b = cc::compile_with("t", STRINGS, &flags);
    let file = object::File::parse(&*b).unwrap();
    assert!(
        file.section_by_name(".rodata.str1.1").is_none(),
        "strings are not in a mergeable section"
    );
    let after = STRINGS.replace("one", "one, and then some");
    assert_ne!(after, STRINGS);
    assert_eq!(diff_with(STRINGS, &after, &flags).changed, s(&["s1"]));
}

#[test]
fn a_static_local_added_in_one_function_leaves_the_others_alone() {
    let before = format!(
        "{HEADER}
void sl1(void) {{ static int a; use(&a); }}
void sl2(void) {{ static int b; use(&b); }}
void sl3(void) {{ static int cnt; cnt++; use(&cnt); }}
"
    );
    // GCC numbers static locals from the end of the file: one added in the
    // last function renumbers all the others.
    let after = before.replace(
        "void sl3(void) { static int cnt; cnt++; use(&cnt); }",
        "void sl3(void) { static int cnt; cnt++; use(&cnt); static int z; use(&z); }",
    );
    let b = cc::compile("t", &before);
    let a = cc::compile("t", &after);
    // The test is about renumbering: make sure GCC did renumber.
    assert_ne!(symbol_starting(&b, "a."), symbol_starting(&a, "a."));
    assert_ne!(symbol_starting(&b, "b."), symbol_starting(&a, "b."));
    let d = compare(&b, &a).unwrap();
    assert_eq!(
        d,
        ObjectDiff {
            changed: s(&["sl3"]),
            new_data: vec![symbol_starting(&a, "z.")],
            // Each renumbered local goes by the running kernel's (before's) name.
            kernel_names: ["a.", "b.", "cnt."]
                .iter()
                .map(|p| (symbol_starting(&a, p), symbol_starting(&b, p)))
                .collect(),
            ..Default::default()
        }
    );
}

#[test]
fn a_renumbered_static_array_referenced_off_its_start() {
    // GCC reaches `offsets[i - 1]`-like accesses through `.rodata.offsets.N-1`:
    // a reference outside the object, by section.
    let before = format!(
        "{HEADER}
int tab(int n) {{
	static const unsigned char offsets[] = {{ 3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5 }};
	int s = 0;
	for (int i = 0; i < n && i < 11; i++)
		s += ext(offsets[i]);
	return s;
}}
int last(int x) {{ static int cnt; cnt += x; return ext(cnt); }}
"
    );
    let after = before.replace(
        "return ext(cnt); }",
        "static int more; more++; return ext(cnt + more); }",
    );
    let b = cc::compile("t", &before);
    let a = cc::compile("t", &after);
    assert_ne!(
        symbol_starting(&b, "offsets."),
        symbol_starting(&a, "offsets.")
    );
    let d = compare(&b, &a).unwrap();
    assert_eq!(
        d,
        ObjectDiff {
            changed: s(&["last"]),
            new_data: vec![symbol_starting(&a, "more.")],
            kernel_names: ["cnt.", "offsets."]
                .iter()
                .map(|p| (symbol_starting(&a, p), symbol_starting(&b, p)))
                .collect(),
            ..Default::default()
        }
    );
    // The array's contents are part of the function that reads it.
    let after = before.replace("{ 3, 1, 4,", "{ 3, 1, 7,");
    assert_eq!(diff(&before, &after).changed, s(&["tab"]));
}

#[test]
fn static_locals_of_one_name_in_two_functions() {
    let before = format!(
        "{HEADER}
void k1(void) {{ static int __key; use(&__key); }}
void k2(void) {{ static int __key; use(&__key); }}
void k3(void) {{ static int __key; use(&__key); }}
"
    );
    let after = before.replace(
        "void k1(void) { static int __key; use(&__key); }",
        "void k1(void) { { static int __key; use(&__key); } { static int __key; ext(0); use(&__key); } }",
    );
    let b = cc::compile("t", &before);
    let a = cc::compile("t", &after);
    let d = compare(&b, &a).unwrap();
    assert_eq!(d.changed, s(&["k1"]));
    assert_eq!(d.new_data.len(), 1, "{d:?}");
    assert!(d.new_data[0].starts_with("__key."), "{d:?}");
    assert!(d.new_functions.is_empty() && d.clones.is_empty(), "{d:?}");
}

const CLONE: &str = "void printk(const char *, ...);
static __attribute__((noinline)) int cl(int a, int b) { printk(\"cl %d %d\\n\", a, b); return a * b + 7; }
int c1(int x) { return cl(x, 3); }
int c2(int x) { return cl(x + 1, 3); }
";

#[test]
fn a_changed_clone_is_reported_with_its_original() {
    let after = CLONE.replace("a * b + 7", "a * b + 8");
    let b = cc::compile("t", CLONE);
    let a = cc::compile("t", &after);
    for obj in [&b, &a] {
        let names = defined_symbols(obj);
        assert!(
            names.iter().any(|n| n == "cl.constprop.0") && !names.iter().any(|n| n == "cl"),
            "gcc-12 did not make the clone this test is about: {names:?}"
        );
    }
    let d = compare(&b, &a).unwrap();
    assert_eq!(
        d,
        ObjectDiff {
            clones: vec![CloneChange {
                clone: "cl.constprop.0".into(),
                original: "cl".into(),
                new: false,
            }],
            ..Default::default()
        }
    );
}

#[test]
fn a_new_clone_is_reported_new() {
    // Before, cl is called with different constants: no clone.
    let before = CLONE.replace("cl(x + 1, 3)", "cl(x + 1, 4)");
    let b = cc::compile("t", &before);
    let a = cc::compile("t", CLONE);
    assert!(defined_symbols(&b).iter().any(|n| n == "cl"));
    assert!(defined_symbols(&a).iter().any(|n| n == "cl.constprop.0"));
    let d = compare(&b, &a).unwrap();
    assert_eq!(
        d,
        ObjectDiff {
            changed: s(&["c1", "c2"]),
            clones: vec![CloneChange {
                clone: "cl.constprop.0".into(),
                original: "cl".into(),
                new: true,
            }],
            removed_functions: s(&["cl"]),
            ..Default::default()
        }
    );
}

const COLD: &str = "void printk(const char *, ...);
void __attribute__((cold)) report(int);
int work(int);
int hc(int *p, int n) {
	int s = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < 0) {
			report(i);
			printk(\"negative %d at %d\\n\", p[i], i);
			s -= work(p[i]);
			continue;
		}
		s += p[i];
	}
	return s;
}
";

#[test]
fn a_change_in_the_cold_part_changes_the_function() {
    let after = COLD.replace("negative %d at %d", "negative value %d at %d");
    let b = cc::compile("t", COLD);
    let a = cc::compile("t", &after);
    for obj in [&b, &a] {
        assert!(
            defined_symbols(obj).iter().any(|n| n == "hc.cold"),
            "gcc-12 did not split hc.cold off hc: {:?}",
            defined_symbols(obj)
        );
    }
    // Only the cold part's bytes or relocations changed.
    assert_eq!(section_bytes(&b, ".text.hc"), section_bytes(&a, ".text.hc"));
    let d = compare(&b, &a).unwrap();
    assert_eq!(
        d,
        ObjectDiff {
            changed: s(&["hc"]),
            clones: vec![CloneChange {
                clone: "hc.cold".into(),
                original: "hc".into(),
                new: false,
            }],
            ..Default::default()
        }
    );
}

const MIGHT_SLEEP: &str = "void __might_sleep(const char *, int);
int ext(int);
#define might_sleep() __might_sleep(__FILE__, __LINE__)
int ms(int x) { might_sleep(); return ext(x) + 1; }
int ms2(int x) {
	might_sleep();
	x = ext(x);
	might_sleep();
	return x * 5;
}
int plain(int x) { return ext(x) - 1; }
";

#[test]
fn a_line_shift_before_might_sleep_is_no_change() {
    let after = format!("\n\n/* moved down */\n{MIGHT_SLEEP}");
    let b = cc::compile("t", MIGHT_SLEEP);
    let a = cc::compile("t", &after);
    // The line numbers are in the code: the bytes do differ.
    assert_ne!(section_bytes(&b, ".text.ms"), section_bytes(&a, ".text.ms"));
    assert_ne!(
        section_bytes(&b, ".text.ms2"),
        section_bytes(&a, ".text.ms2")
    );
    assert_eq!(compare(&b, &a).unwrap(), ObjectDiff::default());
    // Lines inserted inside ms2, between its two might_sleep() calls.
    let inside = MIGHT_SLEEP.replace("\tx = ext(x);\n", "\tx = ext(x);\n\n\n\n");
    let a = cc::compile("t", &inside);
    assert_ne!(
        section_bytes(&b, ".text.ms2"),
        section_bytes(&a, ".text.ms2")
    );
    assert_eq!(compare(&b, &a).unwrap(), ObjectDiff::default());
}

#[test]
fn a_line_shift_with_a_real_change_is_a_change() {
    let after = format!("\n\n{}", MIGHT_SLEEP.replace("ext(x) + 1", "ext(x) + 2"));
    assert_eq!(diff(MIGHT_SLEEP, &after).changed, s(&["ms"]));
    // Limit of the rule: a constant passed as the line that looks like a line
    // number can't be told from one. Out of range (0 here), it is a change.
    let before = "void __might_sleep(const char *, int);\nint f(void) { __might_sleep(\"x\", 10); return 0; }\n";
    let after = before.replace("10)", "11)");
    assert_eq!(diff(before, &after), ObjectDiff::default());
    let after = before.replace("__might_sleep(\"x\", 10)", "__might_sleep(\"x\", 0)");
    assert_eq!(diff(before, &after).changed, s(&["f"]));
}

const WARN_ON: &str = "int ext(int);
#define WARN_ON(c) ({ int __c = !!(c); if (__c) asm volatile(\"1: ud2\\n .pushsection __bug_table,\\\"aw\\\"\\n .long 1b - .\\n .long %c0 - .\\n .word %c1\\n .popsection\" :: \"i\"(__FILE__), \"i\"(__LINE__)); __c; })
int w(int x) { WARN_ON(x > 5); return ext(x); }
int w2(int x) { if (WARN_ON(x < 0)) return -1; return x; }
";

#[test]
fn a_line_shift_of_a_warn_on_is_no_change() {
    let after = format!("\n\n\n{WARN_ON}");
    let b = cc::compile("t", WARN_ON);
    let a = cc::compile("t", &after);
    // The line numbers are in __bug_table, which does change.
    assert_ne!(
        section_bytes(&b, "__bug_table"),
        section_bytes(&a, "__bug_table")
    );
    assert_eq!(compare(&b, &a).unwrap(), ObjectDiff::default());
    // A real change next to it still shows.
    let after = format!("\n\n\n{}", WARN_ON.replace("x > 5", "x > 6"));
    assert_eq!(diff(WARN_ON, &after).changed, s(&["w"]));
}

#[test]
fn garbage_is_an_error() {
    let good = cc::compile("t", "int f(int x) { return x; }\n");
    for bad in [
        &b""[..],
        b"garbage",
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x01\0>\0",
        &good[..good.len() / 3],
    ] {
        match compare(bad, &good) {
            Err(e @ CompareError::NotX86_64Relocatable(_))
            | Err(e @ CompareError::Malformed(..)) => {
                assert!(e.to_string().starts_with("before: "), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert!(compare(&good, bad).is_err());
    }
    let e = compare(b"garbage", &good).unwrap_err();
    assert_eq!(
        e.to_string(),
        "before: not an x86-64 ELF relocatable object"
    );
    // Flipping bytes anywhere must never panic.
    for i in 0..good.len() {
        for pattern in [0xff, 0x80, 0x01] {
            let mut bad = good.clone();
            bad[i] ^= pattern;
            let _ = compare(&good, &bad);
            let _ = compare(&bad, &good);
        }
    }
}

#[test]
fn objects_without_function_sections_are_refused() {
    let b = cc::compile_with(
        "t",
        "int f(int x) { return x; }\n",
        &["-fno-function-sections"],
    );
    let e = compare(&b, &b).unwrap_err();
    assert_eq!(
        e.to_string(),
        "before: no per-function sections: compile with -ffunction-sections"
    );
}

/// Compares two real objects: `LPATCH_COMPARE_BEFORE=a.o LPATCH_COMPARE_AFTER=b.o
/// cargo test -p lpatch-build --test compare -- --ignored --nocapture`.
#[test]
#[ignore = "needs LPATCH_COMPARE_BEFORE and LPATCH_COMPARE_AFTER"]
fn compare_objects_from_the_environment() {
    let read = |var: &str| {
        let path = std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let d = compare(
        &read("LPATCH_COMPARE_BEFORE"),
        &read("LPATCH_COMPARE_AFTER"),
    );
    println!("{d:#?}");
}

// ---------------------------------------------------------------------------
// What a live patch cannot carry (issue 23): the facts `refuse` turns into refusals.

#[test]
fn a_changed_initial_value_of_existing_data_is_reported() {
    let before = format!(
        "{HEADER}
int limit = 10;
int use_int(int);
static int quiet;
static const int table[3] = {{ 1, 2, 3 }};
static int (*hook)(int) = ext;
int a(int x) {{ use(&quiet); use(&hook); return x > limit ? table[x % 3] : 0; }}
"
    );
    let after = before
        .replace("int limit = 10;", "int limit = 12;")
        .replace("static int quiet;", "static int quiet = 1;")
        .replace("{ 1, 2, 3 }", "{ 1, 2, 4 }");
    let d = diff(&before, &after);
    assert_eq!(d.changed_data, s(&["limit", "quiet", "table"]), "{d:?}");
    // A pointer's target is its value too.
    let after = before.replace("= ext;", "= use_int;");
    assert_eq!(diff(&before, &after).changed_data, s(&["hook"]));
    // Unchanged data, changed code: no data reported.
    let after = before.replace("return x > limit", "return x >= limit");
    let d = diff(&before, &after);
    assert!(d.changed_data.is_empty(), "{d:?}");
    assert_eq!(d.changed, s(&["a"]));
}

#[test]
fn changed_init_exit_and_notrace_functions_are_reported() {
    let before = format!(
        "{HEADER}
__attribute__((section(\".init.text\"))) int setup(int x) {{ return ext(x) + 1; }}
__attribute__((section(\".exit.text\"))) void teardown(int x) {{ ext(x + 1); }}
__attribute__((no_instrument_function)) int fast(int x) {{ return ext(x) * 2; }}
int traced(int x) {{ return ext(x) - 3; }}
"
    );
    let after = before
        .replace("ext(x) + 1", "ext(x) + 5")
        .replace("ext(x + 1)", "ext(x + 5)")
        .replace("ext(x) * 2", "ext(x) * 5")
        .replace("ext(x) - 3", "ext(x) - 5");
    let d = diff(&before, &after);
    assert_eq!(
        d.changed,
        s(&["fast", "setup", "teardown", "traced"]),
        "{d:?}"
    );
    assert_eq!(
        d.init_exit,
        vec![
            ("setup".to_string(), ".init.text".to_string()),
            ("teardown".to_string(), ".exit.text".to_string())
        ]
    );
    // The init and exit functions here have __fentry__ calls (no __init's notrace here).
    assert_eq!(d.untraced, s(&["fast"]));
}

#[test]
fn an_unknown_section_about_a_changed_function_is_named() {
    let before = format!(
        "{HEADER}
int a(int x) {{ return ext(x) + 1; }}
int b(int x) {{ return ext(x) + 2; }}
struct entry {{ int (*f)(int); }};
static const struct entry entries[] __attribute__((used, section(\"__lpatch_unknown\"))) = {{ {{ a }} }};
"
    );
    let after = before.replace("ext(x) + 1", "ext(x) + 9");
    let d = diff(&before, &after);
    assert_eq!(d.changed, s(&["a"]));
    assert_eq!(
        d.unknown_sections,
        vec![("__lpatch_unknown".to_string(), "a".to_string())]
    );
    // A change to b, which no such entry names, is not about that section.
    let after = before.replace("ext(x) + 2", "ext(x) + 9");
    let d = diff(&before, &after);
    assert_eq!(d.changed, s(&["b"]));
    assert!(d.unknown_sections.is_empty(), "{d:?}");
}
