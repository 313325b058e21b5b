// SPDX-License-Identifier: GPL-2.0-only
//! lpatch: the command-line tool of the lpatch live patching system.

fn main() {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = lpatch::cli::run(
        std::env::args_os(),
        &lpatch::ops::Real,
        &mut stdout.lock(),
        &mut stderr.lock(),
    );
    std::process::exit(code);
}
