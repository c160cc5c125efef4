//! Standard output for the CLI's own listings (`list`, `describe`, `plan`,
//! `validate`, `schema`, `lab`, `cleanup`). A reader that goes away early
//! (`runbook plan redis-cache | head -1`) ends the command quietly with exit
//! 141, as a shell reports SIGPIPE, instead of println!'s panic.

use std::io::Write;

use crate::exit;

/// Writes one line to standard output; a closed pipe becomes the quiet
/// [`exit::BROKEN_PIPE`] error.
pub fn line(args: std::fmt::Arguments) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Err(exit::CodedError { code: exit::BROKEN_PIPE, message: String::new() }.into())
        }
        other => Ok(other?),
    }
}

/// `println!` for the CLI: `outln!("{x}")?;` (see the module docs).
macro_rules! outln {
    () => {
        $crate::cli::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::out::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;
