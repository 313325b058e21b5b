//! `lpatch-kbuild`: prints what the kernel-side build needs, derived from a kernel tree.
//!
//!   lpatch-kbuild target-spec <.config>       JSON target spec for rustc
//!   lpatch-kbuild rustflags <.config>         codegen flags, one per line
//!   lpatch-kbuild bindgen-args <.obj.o.cmd>   clang flags for bindgen, one per line
//!   lpatch-kbuild objtool-args <.obj.o.cmd>   objtool flags, one per line (empty: no objtool)
use lpatch_kbuild::{cmdfile, config::KConfig, target};
use std::process::ExitCode;

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

fn run(args: &[String]) -> Result<Vec<String>, String> {
    let [verb, path] = args else {
        return Err(
            "usage: lpatch-kbuild target-spec|rustflags|bindgen-args|objtool-args FILE".into(),
        );
    };
    let text = read(path)?;
    match verb.as_str() {
        "target-spec" => target::target_spec(&KConfig::parse(&text))
            .map(|s| vec![s])
            .map_err(|e| e.to_string()),
        "rustflags" => Ok(target::rustflags(&KConfig::parse(&text))),
        "bindgen-args" => {
            cmdfile::bindgen_args(&text).ok_or_else(|| format!("{path}: no compiler command found"))
        }
        "objtool-args" => Ok(cmdfile::objtool_args(&text).unwrap_or_default()),
        v => Err(format!("unknown verb {v}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(lines) => {
            for l in lines {
                if l.ends_with('\n') {
                    print!("{l}");
                } else {
                    println!("{l}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lpatch-kbuild: {e}");
            ExitCode::from(2)
        }
    }
}
