//! The `.<object>.cmd` files kbuild writes: the exact compiler and objtool commands it used
//! for a C object of our module. We take bindgen's and objtool's arguments from them, so the
//! Rust side is built for the same kernel in the same way as the C side.

/// Splits a command line as /bin/sh would for the quoting kbuild uses ('…', "…", \x).
pub fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                cur.push(n);
                            }
                        }
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// The command line recorded for the object (`cmd_<obj> := …`).
pub fn command_line(cmd_file: &str) -> Option<&str> {
    cmd_file.lines().find_map(|l| {
        l.strip_prefix("cmd_")
            .and_then(|r| r.split_once(" := "))
            .map(|(_, c)| c)
    })
}

/// The compiler's invocation: the first `;`-separated part of the command.
fn compile_part(cmd: &str) -> &str {
    cmd.split(" ; ").next().unwrap_or(cmd)
}

/// Compiler flags bindgen (clang) needs to parse the kernel headers as gcc did: include paths,
/// forced includes, defines, and the ABI-relevant -m flags. gcc-only flags are dropped.
pub fn bindgen_args(cmd_file: &str) -> Option<Vec<String>> {
    let words = shell_words(compile_part(command_line(cmd_file)?));
    let mut out = Vec::new();
    let mut it = words.iter().skip(1);
    while let Some(w) = it.next() {
        match w.as_str() {
            "-include" | "-I" | "-isystem" => {
                out.push(w.clone());
                out.push(it.next()?.clone());
            }
            "-nostdinc" | "-m64" | "-mno-red-zone" | "-mcmodel=kernel" | "-fno-PIE"
            | "-mno-sse" | "-mno-mmx" | "-mno-sse2" | "-mno-3dnow" | "-mno-avx" | "-mno-80387" => {
                out.push(w.clone())
            }
            w if w.starts_with("-std=") => out.push(w.to_string()),
            w if w.starts_with("-I") => out.push(w.to_string()),
            w if w.starts_with("-D")
                && !w.starts_with("-DKBUILD_")
                && !w.starts_with("-D__KBUILD_") =>
            {
                out.push(w.to_string())
            }
            _ => {}
        }
    }
    Some(out)
}

/// objtool's arguments for a module object, without the object path; None when kbuild did
/// not run objtool (a kernel built without it).
pub fn objtool_args(cmd_file: &str) -> Option<Vec<String>> {
    let cmd = command_line(cmd_file)?;
    let part = cmd
        .split(" ; ")
        .find(|p| p.trim_start().contains("objtool/objtool"))?;
    let mut words = shell_words(part);
    if words.is_empty() {
        return None;
    }
    words.remove(0);
    // The last word is the object itself.
    if words.last().is_some_and(|w| w.ends_with(".o")) {
        words.pop();
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "cmd_/tmp/p/probe.o :=  gcc-12 -Wp,-MMD,/tmp/p/.probe.o.d -nostdinc -I/src/arch/x86/include -I./include -include /src/include/linux/kconfig.h -D__KERNEL__ -Wall -std=gnu11 -mno-sse -m64 -mcmodel=kernel -fno-PIE -mindirect-branch=thunk-extern -pg -DMODULE  -DKBUILD_BASENAME='\"probe\"' -DKBUILD_MODNAME='\"probe\"' -D__KBUILD_MODNAME=kmod_probe -c -o /tmp/p/probe.o /tmp/p/probe.c   ; ./tools/objtool/objtool --hacks=jump_label --orc --retpoline --rethunk --sls   --module /tmp/p/probe.o\n\nsource_/tmp/p/probe.o := /tmp/p/probe.c\n";

    #[test]
    fn splits_like_sh() {
        assert_eq!(
            shell_words(r#"a 'b c' "d\"e" f\ g -D'"x"'"#),
            vec!["a", "b c", "d\"e", "f g", "-D\"x\""]
        );
        assert!(shell_words("   ").is_empty());
    }

    #[test]
    fn bindgen_keeps_includes_defines_and_abi_flags() {
        let a = bindgen_args(SAMPLE).unwrap();
        assert_eq!(
            a,
            vec![
                "-nostdinc",
                "-I/src/arch/x86/include",
                "-I./include",
                "-include",
                "/src/include/linux/kconfig.h",
                "-D__KERNEL__",
                "-std=gnu11",
                "-mno-sse",
                "-m64",
                "-mcmodel=kernel",
                "-fno-PIE",
                "-DMODULE"
            ]
        );
    }

    #[test]
    fn objtool_args_without_the_object() {
        assert_eq!(
            objtool_args(SAMPLE).unwrap(),
            vec![
                "--hacks=jump_label",
                "--orc",
                "--retpoline",
                "--rethunk",
                "--sls",
                "--module"
            ]
        );
    }

    #[test]
    fn no_objtool_no_args() {
        assert_eq!(objtool_args("cmd_x.o := gcc -c -o x.o x.c\n"), None);
        assert_eq!(bindgen_args("nothing here"), None);
    }
}
