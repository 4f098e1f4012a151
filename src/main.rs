//! Thin: parse → run → exit code. See `lib.rs` for the tour.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let argv = ostree_finalize::cli::normalize_argv(std::env::args_os().collect());
    let cli = match ostree_finalize::cli::Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version are successes; usage errors are exit 2.
            return std::process::ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    ostree_finalize::commands::main(cli)
}
