// SPDX-License-Identifier: GPL-2.0-only
//! The kernel a patch is built for, and the exact inputs that reproduce its code: Debian's
//! source at the image's own package version, the image's config, and the compiler whose
//! version string the config records.

use crate::error::{io, Error, Result};
use crate::run;
use lpatch_kbuild::config::{KConfig, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which kernel the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The kernel the project targets: the version `scripts/setup.sh` recorded.
    Default,
    /// Another Debian kernel, by ABI name (`6.1.0-57-amd64`).
    Debian(String),
    /// A tree the user built (its `.config` and objects there).
    Tree(std::path::PathBuf),
}

/// A Debian kernel, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The kernel release (`6.1.0-57-amd64`).
    pub kver: String,
    /// The source package version the image was built from (`6.1.192-3`).
    pub package_version: String,
    /// The source package holding it (`linux-source-6.1`).
    pub source_package: String,
    /// The image's config.
    pub config: PathBuf,
    /// The compiler to run (`gcc-12`), checked to print the config's version string.
    pub cc: String,
    /// That version string.
    pub cc_version: String,
}

/// A kernel release name as Debian spells them: no path separators or shell specials.
fn valid_kver(k: &str) -> bool {
    !k.is_empty()
        && k.len() < 64
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-+_~".contains(c))
}

/// The version set-up recorded as the project's target.
fn recorded_kver(cache: &Path) -> Result<String> {
    let f = cache.join("kernel/current/version");
    let v = std::fs::read_to_string(&f).map_err(|_| {
        Error::Target(format!(
            "no target kernel recorded in {}: run scripts/setup.sh (any make target does), or name one with --kernel KVER",
            f.display()
        ))
    })?;
    Ok(v.trim().to_string())
}

/// `6.1` from `6.1.0-57-amd64`.
fn series(kver: &str) -> Result<String> {
    let mut parts = kver.split(['.', '-']);
    match (parts.next(), parts.next()) {
        (Some(a), Some(b)) if a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok() => {
            Ok(format!("{a}.{b}"))
        }
        _ => Err(Error::Target(format!(
            "{kver} is not a Debian kernel release name"
        ))),
    }
}

/// From `apt-cache show linux-image-<kver>`: the version of the `linux` source package it was
/// built from (`Built-Using: linux (= 6.1.192-3)`, which the signed image packages carry),
/// else the image package's own version.
pub fn image_source_version(show: &str) -> Option<String> {
    // The first stanza is the highest version apt knows.
    let stanza = show.split("\n\n").next()?;
    let field = |name: &str| {
        stanza
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    if let Some(bu) = field("Built-Using:") {
        for item in bu.split(',') {
            let item = item.trim();
            if let Some(rest) = item.strip_prefix("linux (= ") {
                return rest.strip_suffix(')').map(str::to_string);
            }
        }
    }
    field("Version:")
}

/// The compiler that prints `text` as its version: the one the text names first (`gcc-12`),
/// then plain `gcc`.
fn find_compiler(text: &str) -> Result<String> {
    let named = text.split_whitespace().next().unwrap_or("gcc").to_string();
    let mut tried = Vec::new();
    for cc in [named.as_str(), "gcc"] {
        if tried.iter().any(|(c, _): &(String, String)| c == cc) {
            continue;
        }
        let got = match run::capture(Command::new(cc).arg("--version"), "gcc-12") {
            Ok(o) if o.ok => o.stdout.lines().next().unwrap_or("").trim().to_string(),
            _ => "(not installed)".to_string(),
        };
        if got == text {
            return Ok(cc.to_string());
        }
        tried.push((cc.to_string(), got));
    }
    let seen: Vec<String> = tried.iter().map(|(c, v)| format!("{c}: {v}")).collect();
    Err(Error::Tool(format!(
        "the kernel was built with \"{text}\", and no compiler here is that one ({}); install it (Debian 12: the gcc-12 package)",
        seen.join("; ")
    )))
}

/// The image's config: set-up's cached copy, else the builder's, else fetched from the image
/// package into the builder's cache.
fn image_config(cache: &Path, kver: &str) -> Result<PathBuf> {
    let setup = cache.join("kernel").join(kver).join("config");
    if setup.is_file() {
        return Ok(setup);
    }
    let dir = crate::tree::kernel_dir(cache, kver);
    let ours = dir.join("config");
    if ours.is_file() {
        return Ok(ours);
    }
    std::fs::create_dir_all(&dir).map_err(|e| io(dir.display(), e))?;
    let work = dir.join(".image");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| io(work.display(), e))?;
    run::checked(
        Command::new("apt-get")
            .args(["download", "-qq", &format!("linux-image-{kver}")])
            .current_dir(&work),
        "apt",
        &format!("downloading linux-image-{kver}"),
    )?;
    let script = format!(
        "dpkg-deb --fsys-tarfile linux-image-*.deb | tar -xO ./boot/config-{kver} > config.new && mv config.new {}",
        run::sh_quote(&ours.to_string_lossy())
    );
    let r = run::pipeline(
        &script,
        &work,
        &format!("taking the config out of linux-image-{kver}"),
    );
    let _ = std::fs::remove_dir_all(&work);
    r?;
    Ok(ours)
}

/// The compiler a kernel config was made with (its CONFIG_CC_VERSION_TEXT), found on this
/// machine: (command, version string).
pub fn compiler_of(config: &Path) -> Result<(String, String)> {
    let text = std::fs::read_to_string(config).map_err(|e| io(config.display(), e))?;
    let cc_version = match KConfig::parse(&text).get("CC_VERSION_TEXT") {
        Some(Value::Other(v)) => v.clone(),
        _ => {
            return Err(Error::Target(format!(
                "{} has no CONFIG_CC_VERSION_TEXT",
                config.display()
            )))
        }
    };
    Ok((find_compiler(&cc_version)?, cc_version))
}

/// Resolves the request to a kernel and checks that this machine can reproduce its code.
pub fn resolve(req: &Request, cache: &Path) -> Result<Target> {
    let kver = match req {
        Request::Default => recorded_kver(cache)?,
        Request::Debian(k) => k.clone(),
        Request::Tree(d) => {
            return Err(Error::Target(format!(
                "{} is a tree, not a Debian kernel: open it with tree::open_user",
                d.display()
            )))
        }
    };
    if !valid_kver(&kver) {
        return Err(Error::Target(format!(
            "{kver:?} is not a kernel release name"
        )));
    }
    let source_package = format!("linux-source-{}", series(&kver)?);
    let show = run::capture(
        Command::new("apt-cache").args(["show", &format!("linux-image-{kver}")]),
        "apt",
    )?;
    let package_version = match show.ok.then(|| image_source_version(&show.stdout)).flatten() {
        Some(v) => v,
        None => {
            return Err(Error::Target(format!(
                "apt knows no package linux-image-{kver}: is it a Debian kernel, and are the package lists current (apt-get update)?"
            )))
        }
    };
    let config = image_config(cache, &kver)?;
    let (cc, cc_version) = compiler_of(&config)?;
    Ok(Target {
        kver,
        package_version,
        source_package,
        config,
        cc,
        cc_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_version_from_built_using_then_version() {
        let signed = "Package: linux-image-6.1.0-57-amd64\nSource: linux-signed-amd64 (6.1.192+3)\nVersion: 6.1.192-3\nBuilt-Using: linux (= 6.1.192-3)\n\nPackage: x\nVersion: 1\n";
        assert_eq!(image_source_version(signed).as_deref(), Some("6.1.192-3"));
        let many = "Version: 9\nBuilt-Using: other (= 1), linux (= 6.1.100-1)\n";
        assert_eq!(image_source_version(many).as_deref(), Some("6.1.100-1"));
        assert_eq!(
            image_source_version("Version: 6.1.5-1\n").as_deref(),
            Some("6.1.5-1")
        );
        assert_eq!(image_source_version("Package: x\n"), None);
    }

    #[test]
    fn kernel_names() {
        assert!(valid_kver("6.1.0-57-amd64"));
        assert!(!valid_kver("../x"));
        assert!(!valid_kver("a b"));
        assert_eq!(series("6.1.0-57-amd64").unwrap(), "6.1");
        assert!(series("amd64").is_err());
    }

    #[test]
    fn a_compiler_nobody_has_is_refused_with_what_was_found() {
        let e = find_compiler("gcc-99 (Nowhere 99.0) 99.0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gcc-99 (Nowhere 99.0) 99.0"), "{e}");
        assert!(e.contains("gcc-99: (not installed)"), "{e}");
    }
}
