// SPDX-License-Identifier: GPL-2.0-only
//! /proc/sys/kernel/tainted in words, after the kernel's
//! Documentation/admin-guide/tainted-kernels.rst.

use serde::Serialize;

/// (letter, words) for bits 0.. of the taint mask. Bit 0 reads P when set, G when clear.
const FLAGS: &[(char, &str)] = &[
    ('P', "proprietary module was loaded"),
    ('F', "module was force loaded"),
    ('S', "kernel running on an out of specification system"),
    ('R', "module was force unloaded"),
    ('M', "processor reported a Machine Check Exception (MCE)"),
    ('B', "bad page referenced or some unexpected page flags"),
    ('U', "taint requested by userspace application"),
    ('D', "kernel died recently, i.e. there was an OOPS or BUG"),
    ('A', "an ACPI table was overridden by user"),
    ('W', "kernel issued warning"),
    ('C', "staging driver was loaded"),
    ('I', "workaround for bug in platform firmware applied"),
    ('O', "externally-built (\"out-of-tree\") module was loaded"),
    ('E', "unsigned module was loaded"),
    ('L', "soft lockup occurred"),
    ('K', "kernel live patched"),
    ('X', "auxiliary taint, defined for and used by distros"),
    ('T', "kernel was built with the struct randomization plugin"),
    ('N', "an in-kernel test has been run"),
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    pub bit: u32,
    /// None for bits this tool has no letter for.
    pub letter: Option<char>,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Taint {
    pub value: u64,
    /// The kernel's compact form: "G" when untainted, else the letters of the set bits.
    pub letters: String,
    pub flags: Vec<Flag>,
}

pub fn decode(value: u64) -> Taint {
    let mut flags = Vec::new();
    let mut letters = String::new();
    for bit in 0..64u32 {
        if value & (1u64 << bit) == 0 {
            continue;
        }
        match FLAGS.get(bit as usize) {
            Some(&(letter, words)) => {
                letters.push(letter);
                flags.push(Flag {
                    bit,
                    letter: Some(letter),
                    description: words.to_string(),
                });
            }
            None => flags.push(Flag {
                bit,
                letter: None,
                description: format!("bit {bit}, unknown to this tool"),
            }),
        }
    }
    if value & 1 == 0 {
        letters.insert(0, 'G');
    }
    Taint {
        value,
        letters,
        flags,
    }
}

/// Parses the content of /proc/sys/kernel/tainted.
pub fn parse(text: &str) -> Option<Taint> {
    text.trim().parse::<u64>().ok().map(decode)
}

impl Flag {
    /// "K: kernel live patched".
    pub fn line(&self) -> String {
        match self.letter {
            Some(l) => format!("{l}: {}", self.description),
            None => format!("?: {}", self.description),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untainted() {
        let t = decode(0);
        assert_eq!(t.letters, "G");
        assert!(t.flags.is_empty());
    }

    #[test]
    fn live_patched_out_of_tree_unsigned() {
        // O (12), E (13), K (15)
        let t = parse("45056\n").unwrap();
        assert_eq!(t.value, 45056);
        assert_eq!(t.letters, "GOEK");
        let lines: Vec<String> = t.flags.iter().map(Flag::line).collect();
        assert_eq!(
            lines,
            vec![
                "O: externally-built (\"out-of-tree\") module was loaded",
                "E: unsigned module was loaded",
                "K: kernel live patched",
            ]
        );
    }

    #[test]
    fn proprietary_and_every_known_bit() {
        let t = decode((1 << 19) - 1);
        assert_eq!(t.letters, "PFSRMBUDAWCIOELKXTN");
        assert_eq!(t.flags.len(), 19);
        assert_eq!(
            t.flags[17].line(),
            "T: kernel was built with the struct randomization plugin"
        );
    }

    #[test]
    fn unknown_bits_and_garbage() {
        let t = decode(1 << 40);
        assert_eq!(t.flags[0].letter, None);
        assert!(t.flags[0].line().contains("bit 40"));
        assert_eq!(parse("not a number"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("-1"), None);
    }
}
