//! `runbook`: parse the command line, run it, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use runbook::cli::{self, Cli};
use runbook::exit;

fn main() -> ExitCode {
    let mut argv = std::env::args_os().skip(1);
    if argv.next().is_some_and(|first| first == cli::SANDBOX_COMMAND) {
        let Some(spec) = argv.next() else {
            eprintln!("error: usage: runbook {} SPEC", cli::SANDBOX_COMMAND);
            return ExitCode::from(exit::INVALID_INPUT);
        };
        return finish(cli::run_sandbox(std::path::Path::new(&spec)));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors are invalid input (3), not clap's default 2, which
            // means "infrastructure" here.
            return ExitCode::from(if e.use_stderr() { exit::INVALID_INPUT } else { exit::SUCCESS });
        }
    };
    finish(cli::run(cli))
}

/// The exit code of a command's outcome, its error printed.
fn finish(outcome: anyhow::Result<u8>) -> ExitCode {
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = exit::process_exit_code(&e);
            // A closed stdout (`| head`) is not worth a message.
            if code != exit::BROKEN_PIPE {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(code)
        }
    }
}
