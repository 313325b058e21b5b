//! The Rust target spec and codegen flags that match a kernel's configuration, in the
//! spirit of the kernel's own scripts/generate_rust_target.rs: the mitigations the kernel
//! was built with must be in every object it loads.

use crate::config::KConfig;

/// Kconfig names of each mitigation: 6.1 uses the first, later kernels the `MITIGATION_` one.
const RETPOLINE: &[&str] = &["RETPOLINE", "MITIGATION_RETPOLINE"];
const RETHUNK: &[&str] = &["RETHUNK", "MITIGATION_RETHUNK"];
const SLS: &[&str] = &["SLS", "MITIGATION_SLS"];

/// Errors that stop the derivation: a kernel we do not know how to match.
#[derive(Debug, PartialEq, Eq)]
pub enum Unsupported {
    NotX86_64,
    Ibt,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsupported::NotX86_64 => write!(f, "only x86_64 kernels are supported (CONFIG_X86_64 is not set)"),
            Unsupported::Ibt => write!(
                f,
                "CONFIG_X86_KERNEL_IBT is set: Rust objects would need ENDBR landing pads (-Zcf-protection=branch), not supported yet"
            ),
        }
    }
}

/// LLVM target features for this kernel.
pub fn features(c: &KConfig) -> String {
    let mut f: Vec<&str> = vec![
        "-mmx",
        "-sse",
        "-sse2",
        "-sse3",
        "-ssse3",
        "-sse4.1",
        "-sse4.2",
        "-avx",
        "-avx2",
        "+soft-float",
    ];
    if c.any_y(RETPOLINE) {
        f.extend([
            "+retpoline-external-thunk",
            "+retpoline-indirect-branches",
            "+retpoline-indirect-calls",
        ]);
    }
    if c.any_y(SLS) {
        f.extend(["+harden-sls-ijmp", "+harden-sls-ret"]);
    }
    f.join(",")
}

/// The JSON target spec (rustc 1.96's format: numeric pointer width, softfloat ABI).
pub fn target_spec(c: &KConfig) -> Result<String, Unsupported> {
    if !c.is_y("X86_64") {
        return Err(Unsupported::NotX86_64);
    }
    if c.is_y("X86_KERNEL_IBT") {
        return Err(Unsupported::Ibt);
    }
    Ok(format!(
        r#"{{
  "arch": "x86_64",
  "cpu": "x86-64",
  "code-model": "kernel",
  "data-layout": "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128",
  "disable-redzone": true,
  "emit-debug-gdb-scripts": false,
  "features": "{}",
  "frame-pointer": "{}",
  "llvm-target": "x86_64-linux-gnu",
  "max-atomic-width": 64,
  "panic-strategy": "abort",
  "relocation-model": "static",
  "rustc-abi": "softfloat",
  "stack-probes": {{ "kind": "none" }},
  "target-pointer-width": 64
}}
"#,
        features(c),
        if c.is_y("FRAME_POINTER") {
            "always"
        } else {
            "may-omit"
        }
    ))
}

/// Codegen flags that go with the spec.
pub fn rustflags(c: &KConfig) -> Vec<String> {
    let mut f: Vec<&str> = vec![
        "-Cforce-unwind-tables=n",
        "-Cpanic=abort",
        "-Zdwarf-version=4",
    ];
    if c.any_y(RETPOLINE) {
        // An indirect jump through a table would bypass the retpoline thunks.
        f.push("-Cjump-tables=no");
    }
    if c.any_y(RETHUNK) {
        // Every return goes through __x86_return_thunk, as in the kernel's C.
        f.push("-Zfunction-return=thunk-extern");
    }
    f.into_iter().map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_LIKE: &str = "CONFIG_X86_64=y\nCONFIG_RETPOLINE=y\nCONFIG_RETHUNK=y\nCONFIG_SLS=y\nCONFIG_UNWINDER_ORC=y\n";

    #[test]
    fn debian_kernel_gets_every_mitigation() {
        let c = KConfig::parse(DEBIAN_LIKE);
        let spec = target_spec(&c).unwrap();
        assert!(spec.contains("+retpoline-external-thunk"));
        assert!(spec.contains("+harden-sls-ret"));
        assert!(spec.contains(r#""frame-pointer": "may-omit""#));
        let flags = rustflags(&c);
        assert!(flags.contains(&"-Zfunction-return=thunk-extern".to_string()));
        assert!(flags.contains(&"-Cjump-tables=no".to_string()));
    }

    #[test]
    fn kernel_without_mitigations_gets_none() {
        let c = KConfig::parse("CONFIG_X86_64=y\n# CONFIG_RETPOLINE is not set\n");
        let spec = target_spec(&c).unwrap();
        assert!(!spec.contains("retpoline"));
        assert!(!spec.contains("sls"));
        assert!(!rustflags(&c)
            .iter()
            .any(|f| f.contains("function-return") || f.contains("jump-tables")));
    }

    #[test]
    fn later_kernels_mitigation_names_count_too() {
        let c = KConfig::parse(
            "CONFIG_X86_64=y\nCONFIG_MITIGATION_RETHUNK=y\nCONFIG_MITIGATION_SLS=y\n",
        );
        assert!(features(&c).contains("+harden-sls-ijmp"));
        assert!(rustflags(&c).contains(&"-Zfunction-return=thunk-extern".to_string()));
        assert!(!features(&c).contains("retpoline"));
    }

    #[test]
    fn frame_pointer_kernels_keep_frame_pointers() {
        let c = KConfig::parse("CONFIG_X86_64=y\nCONFIG_FRAME_POINTER=y\n");
        assert!(target_spec(&c)
            .unwrap()
            .contains(r#""frame-pointer": "always""#));
    }

    #[test]
    fn refuses_what_it_cannot_match() {
        assert_eq!(
            target_spec(&KConfig::parse("CONFIG_ARM64=y\n")),
            Err(Unsupported::NotX86_64)
        );
        assert_eq!(
            target_spec(&KConfig::parse(
                "CONFIG_X86_64=y\nCONFIG_X86_KERNEL_IBT=y\n"
            )),
            Err(Unsupported::Ibt)
        );
    }
}
