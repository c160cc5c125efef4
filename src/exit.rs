//! Exit codes: they separate "a check failed" from "the tool or cluster broke"
//! from "the input was wrong", so scripts and graders can tell them apart.

/// Everything passed.
pub const SUCCESS: u8 = 0;
/// At least one check failed (or, for `lab status`, no lab is running).
pub const CHECK_FAILED: u8 = 1;
/// Infrastructure problem: cluster unreachable, timeout, lab could not start.
pub const INFRASTRUCTURE: u8 = 2;
/// Invalid scenario, manifest or command-line usage.
pub const INVALID_INPUT: u8 = 3;
/// Interrupted by Ctrl-C (cleanup ran, reports were written), as shells report SIGINT.
pub const INTERRUPTED: u8 = 130;
/// Standard output was closed by its reader (`| head`): ended quietly, as a
/// shell reports SIGPIPE (128 + 13).
pub const BROKEN_PIPE: u8 = 141;

/// An error that knows its exit code. Errors without one are infrastructure
/// problems (exit 2): anything unexpected is the tool's fault, not a verdict.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CodedError {
    /// The process exit code.
    pub code: u8,
    /// What went wrong, for the user.
    pub message: String,
}

/// An invalid-input error (exit 3).
pub fn invalid(message: impl Into<String>) -> anyhow::Error {
    CodedError { code: INVALID_INPUT, message: message.into() }.into()
}

/// A check-failed outcome (exit 1).
pub fn check_failed(message: impl Into<String>) -> anyhow::Error {
    CodedError { code: CHECK_FAILED, message: message.into() }.into()
}

/// The exit code for an error.
pub fn process_exit_code(error: &anyhow::Error) -> u8 {
    error.downcast_ref::<CodedError>().map(|e| e.code).unwrap_or(INFRASTRUCTURE)
}
