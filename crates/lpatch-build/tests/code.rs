// SPDX-License-Identifier: GPL-2.0-only
//! The record of an old function's code (`struct lp_code`): what its hash covers and what
//! its masks leave out, on a unit compiled as the builder compiles kernel units.

mod cc;

use lpatch_build::code::of_function;
use lpatch_logic::code::masked_hash;
use object::{Object, ObjectSection, ObjectSymbol};

const SRC: &str = r#"
extern int printk(const char *fmt, ...);
static int counter;
int checked(int x)
{
	counter += x;
	printk("checked %d\n", counter);
	return counter * 7;
}
"#;

/// The function's bytes as the object has them.
fn bytes_of(obj: &[u8], name: &str) -> Vec<u8> {
    let file = object::File::parse(obj).unwrap();
    let s = file.symbols().find(|s| s.name() == Ok(name)).unwrap();
    let sec = file.section_by_index(s.section_index().unwrap()).unwrap();
    let d = sec.data().unwrap();
    d[s.address() as usize..(s.address() + s.size()) as usize].to_vec()
}

#[test]
fn the_hash_covers_the_code_and_leaves_out_relocated_fields_and_the_ftrace_site() {
    let obj = cc::compile("c", SRC);
    let code = of_function(&obj, "checked").unwrap();
    let bytes = bytes_of(&obj, "checked");
    assert_eq!(code.size as usize, bytes.len());
    assert_eq!(code.hash, masked_hash(&bytes, &code.masks));
    // The ftrace call site (5 bytes at the start, after no endbr here) is masked whole:
    // ftrace turns it into a 5-byte nop.
    assert!(code.masks.contains(&(0, 5)), "{:?}", code.masks);
    // What a running kernel has there instead (nop, relocated fields filled) does not count.
    let mut running = bytes.clone();
    running[..5].copy_from_slice(&[0x0f, 0x1f, 0x44, 0x00, 0x00]);
    for &(off, len) in &code.masks {
        for b in running.iter_mut().skip(off as usize).take(len as usize) {
            *b = 0xcc;
        }
    }
    assert_eq!(masked_hash(&running, &code.masks), code.hash);
    // Any other byte does.
    let masked = |i: usize| {
        code.masks
            .iter()
            .any(|&(o, l)| i >= o as usize && i < (o + l) as usize)
    };
    let i = (0..bytes.len())
        .rev()
        .find(|&i| !masked(i))
        .expect("an unmasked byte");
    running[i] ^= 0x01;
    assert_ne!(masked_hash(&running, &code.masks), code.hash);
}

#[test]
fn an_unknown_function_is_named() {
    let obj = cc::compile("c", SRC);
    let e = of_function(&obj, "nope").unwrap_err();
    assert!(e.contains("nope: no such function"), "{e}");
}
