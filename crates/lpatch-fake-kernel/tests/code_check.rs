// SPDX-License-Identifier: GPL-2.0-only
//! The old function's code a patch was built against (`struct lp_code`), on the host over
//! the fake kernel: the same code, masked fields aside, registers and enables; other code
//! is refused at register with ENOEXEC and a log line naming the function, and nothing is
//! left; a module's function is checked when the module comes.

use lpatch_fake_kernel::{patch_desc, Fake};
use lpatch_logic::code::{masked_hash, CodeCheck};
use lpatch_logic::core::{Core, ModuleEvent};
use lpatch_logic::error::Error;
use lpatch_logic::seam::PatchDesc;

const KEY: usize = 0xa000;
const CODE: [u8; 12] = [0xe8, 1, 2, 3, 4, 0x48, 0x89, 0xf8, 0xe8, 9, 9, 9];
/// The ftrace call site and one relocated field.
const MASKS: [(u32, u32); 2] = [(0, 5), (9, 3)];

fn check() -> CodeCheck {
    CodeCheck {
        size: CODE.len(),
        hash: masked_hash(&CODE, &MASKS),
        masks: MASKS.to_vec(),
    }
}

fn with_code<M>(mut d: PatchDesc<M>, c: CodeCheck) -> PatchDesc<M> {
    d.objects[0].funcs[0].old_code = Some(c);
    d
}

fn machine(running: &[u8]) -> (Fake, Core<Fake>, lpatch_fake_kernel::ModId) {
    let k = Fake::new();
    let f = k.vmlinux_fn("target");
    k.set_mem(f, running);
    let (pm, _) = k.module_live("patchmod", &[]);
    let c = k.core();
    (k, c, pm)
}

#[test]
fn the_same_code_with_other_masked_bytes_is_accepted() {
    let mut running = CODE;
    running[..5].copy_from_slice(&[0x0f, 0x1f, 0x44, 0x00, 0x00]);
    running[9] = 0x77;
    let (k, mut c, pm) = machine(&running);
    let d = with_code(
        patch_desc(KEY, pm, "p", &[(None, &[("target", 0, 0)])]),
        check(),
    );
    c.register(d).unwrap();
    c.enable(KEY).unwrap();
    k.check_invariants(&c, &[(pm, 1)]);
}

#[test]
fn other_code_is_refused_naming_the_function_and_leaving_nothing() {
    let mut running = CODE;
    running[6] = 0x8b;
    let (k, mut c, pm) = machine(&running);
    let d = with_code(
        patch_desc(KEY, pm, "p", &[(None, &[("target", 0, 0)])]),
        check(),
    );
    assert_eq!(c.register(d).err(), Some(Error::ENOEXEC));
    assert!(
        k.logged(&["patch p: function target in vmlinux: the running kernel's code differs from the code the patch was built against"]),
        "{:#?}",
        k.log()
    );
    assert_eq!(k.dirs(), ["lpatch"], "directories left");
    assert!(k.filter().is_empty());
    k.check_invariants(&c, &[]);
}

#[test]
fn a_modules_function_is_checked_when_the_module_comes() {
    let k = Fake::new();
    let (pm, _) = k.module_live("patchmod", &[]);
    let mut c = k.core();
    let d = with_code(
        patch_desc(KEY, pm, "p", &[(Some("late"), &[("mf", 0, 0)])]),
        check(),
    );
    c.register(d).unwrap();
    c.enable(KEY).unwrap();
    // The module comes with other code: its load is refused.
    let (m, fs) = k.module_coming("late", &["mf"]);
    let mut other = CODE;
    other[7] = 0;
    k.set_mem(fs[0], &other);
    assert_eq!(
        c.module_event(ModuleEvent::Coming, m),
        Err(Error::ENOEXEC),
        "{:#?}",
        k.log()
    );
    assert!(k.logged(&["patch p: function mf in late: the running kernel's code differs"]));
}
