//! A kernel `.config`, read as kbuild writes it.

use std::collections::BTreeMap;

/// The value of one Kconfig symbol as `.config` records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Yes,
    Module,
    Other(String),
}

/// The symbols of a `.config` that are set (`# CONFIG_X is not set` lines are absent).
#[derive(Clone, Debug, Default)]
pub struct KConfig {
    set: BTreeMap<String, Value>,
}

impl KConfig {
    pub fn parse(text: &str) -> KConfig {
        let mut set = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let Some(name) = key.strip_prefix("CONFIG_") else {
                continue;
            };
            let value = match value {
                "y" => Value::Yes,
                "m" => Value::Module,
                "n" => continue,
                v => Value::Other(v.trim_matches('"').to_string()),
            };
            set.insert(name.to_string(), value);
        }
        KConfig { set }
    }

    /// Whether `CONFIG_<name>=y`.
    pub fn is_y(&self, name: &str) -> bool {
        self.set.get(name) == Some(&Value::Yes)
    }

    /// Whether any of the names is `=y` (Kconfig symbols get renamed across kernel versions).
    pub fn any_y(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.is_y(n))
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.set.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_y_m_strings_and_skips_unset() {
        let c = KConfig::parse(
            "# comment\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D=\"x y\"\nCONFIG_E=3\nCONFIG_F=n\n",
        );
        assert!(c.is_y("A"));
        assert!(!c.is_y("B"));
        assert_eq!(c.get("B"), Some(&Value::Module));
        assert_eq!(c.get("C"), None);
        assert_eq!(c.get("D"), Some(&Value::Other("x y".into())));
        assert_eq!(c.get("E"), Some(&Value::Other("3".into())));
        assert_eq!(c.get("F"), None);
        assert!(c.any_y(&["Z", "A"]));
    }
}
