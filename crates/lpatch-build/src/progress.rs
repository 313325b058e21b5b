// SPDX-License-Identifier: GPL-2.0-only
//! Progress of the long steps (download, unpack, prepare, compile, compare) on a terminal,
//! with `indicatif`; silent when standard error is not a terminal (CI, pipes, tests).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

pub struct Progress {
    shown: bool,
}

/// One step under way; `done()` ends it with its time.
pub struct Step {
    bar: Option<ProgressBar>,
    name: String,
}

impl Progress {
    /// Shown when standard error is a terminal.
    pub fn auto() -> Progress {
        Progress {
            shown: std::io::stderr().is_terminal(),
        }
    }

    pub fn hidden() -> Progress {
        Progress { shown: false }
    }

    pub fn step(&self, name: &str) -> Step {
        let bar = self.shown.then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .expect("a valid template"),
            );
            b.set_message(name.to_string());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Step {
            bar,
            name: name.to_string(),
        }
    }

    /// A line worth saying even when progress is hidden (something unusual happened).
    pub fn note(&self, text: &str) {
        eprintln!("lpatch build: {text}");
    }
}

impl Step {
    pub fn done(self) {
        if let Some(b) = &self.bar {
            b.finish_with_message(format!("{} done", self.name));
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            if !b.is_finished() {
                b.abandon_with_message(format!("{} stopped", self.name));
            }
        }
    }
}
