//! Error types of the policy crate.

use serde::{Deserialize, Serialize};

/// A problem in `program.md`, located at a 1-based line and column of the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("line {line}, column {column}: {message}{}", help_suffix(.help))]
pub struct ProgramError {
    /// 1-based line in `program.md`.
    pub line: usize,
    /// 1-based column (in characters) in `program.md`.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we can tell.
    pub help: Option<String>,
}

fn help_suffix(help: &Option<String>) -> String {
    match help {
        Some(h) => format!("\n  help: {h}"),
        None => String::new(),
    }
}

impl ProgramError {
    /// Builds an error without a help hint.
    pub fn new(line: usize, column: usize, message: impl Into<String>) -> Self {
        ProgramError {
            line,
            column,
            message: message.into(),
            help: None,
        }
    }

    /// Adds a help hint.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Why a duration string was refused by [`crate::parse_duration`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string is empty.
    #[error("empty duration; write e.g. `30m`, `1.5h` or `3600`")]
    Empty,
    /// The string contains whitespace.
    #[error("duration `{0}` contains whitespace; write e.g. `30m`")]
    Whitespace(String),
    /// A leading `+` or `-`.
    #[error("duration `{0}` has a sign; durations are non-negative and unsigned, e.g. `1h`")]
    Sign(String),
    /// Several units, e.g. `2h30m`.
    #[error("compound duration `{0}` is not accepted; use one unit, e.g. `150m` or `2.5h`")]
    Compound(String),
    /// A decimal number without unit, e.g. `1.5`.
    #[error(
        "duration `{0}` has no unit; add s, m, h or d (a bare number must be whole seconds, e.g. `3600`)"
    )]
    NoUnit(String),
    /// Anything else that does not follow `<decimal><s|m|h|d>` or `<integer seconds>`.
    #[error(
        "`{0}` is not a duration; expected <number><s|m|h|d> such as `30m`, `1.5h`, `0.25d`, or whole seconds such as `3600`{1}"
    )]
    Invalid(String, &'static str),
    /// The value is not a whole number of seconds, e.g. `0.3s`.
    #[error("duration `{0}` is not a whole number of seconds")]
    NotWholeSeconds(String),
    /// The value does not fit in 64 bits of seconds.
    #[error("duration `{0}` is too large")]
    Overflow(String),
}

/// Why a size string (e.g. `2GiB`) was refused by [`crate::parse_size`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a size: {reason}")]
pub struct SizeError {
    /// The refused input.
    pub input: String,
    /// Why.
    pub reason: String,
}
