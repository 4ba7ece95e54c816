//! One module per subcommand. Each returns a [`Failure`] carrying its exit code, so `main` stays a
//! thin dispatcher.

pub mod forecast;
pub mod pipeline;
pub mod produce;
pub mod score;
pub mod simulate;
pub mod validate;

use std::fmt;

/// Exit code of invalid config or rules (sysexits' EX_CONFIG), distinct from runtime errors.
pub const EXIT_CONFIG: u8 = 78;
/// Exit code of runtime errors.
pub const EXIT_RUNTIME: u8 = 1;
/// Exit code of a malformed command line (as clap's own usage errors).
pub const EXIT_USAGE: u8 = 2;

/// Why a command failed, and with which exit code.
#[derive(Debug)]
pub struct Failure {
    /// Process exit code.
    pub code: u8,
    /// What to print.
    pub message: String,
}

impl Failure {
    /// A configuration error (exit 78).
    pub fn config(message: impl fmt::Display) -> Self {
        Failure {
            code: EXIT_CONFIG,
            message: message.to_string(),
        }
    }

    /// A malformed command line (exit 2).
    pub fn usage(message: impl fmt::Display) -> Self {
        Failure {
            code: EXIT_USAGE,
            message: message.to_string(),
        }
    }

    /// A runtime error (exit 1).
    pub fn runtime(message: impl fmt::Display) -> Self {
        Failure {
            code: EXIT_RUNTIME,
            message: message.to_string(),
        }
    }
}

/// Result of a command.
pub type Outcome = Result<(), Failure>;
