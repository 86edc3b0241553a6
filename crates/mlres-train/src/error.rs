//! Typed errors.

use std::path::PathBuf;

/// What is wrong with one JSONL line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonlErrorKind {
    /// The line is not valid UTF-8 (offset of the first bad byte within the line).
    NotUtf8 {
        /// Offset of the first invalid byte in the line.
        byte_offset: usize,
    },
    /// The line is not valid JSON (parser message).
    InvalidJson(String),
    /// The JSON value is not an object.
    NotAnObject,
    /// A required field is missing.
    MissingField(String),
    /// A field has the wrong JSON type.
    WrongType {
        /// Field name.
        field: String,
        /// Expected JSON type.
        expected: &'static str,
    },
    /// A message role other than user/system/assistant.
    BadRole(String),
    /// A `messages` record whose last message is not from the assistant.
    NoFinalAssistant,
}

impl std::fmt::Display for JsonlErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonlErrorKind::NotUtf8 { byte_offset } => {
                write!(
                    f,
                    "line is not valid UTF-8 (bad byte at offset {byte_offset})"
                )
            }
            JsonlErrorKind::InvalidJson(m) => write!(f, "invalid JSON: {m}"),
            JsonlErrorKind::NotAnObject => write!(f, "record is not a JSON object"),
            JsonlErrorKind::MissingField(x) => write!(f, "missing field {x}"),
            JsonlErrorKind::WrongType { field, expected } => {
                write!(f, "field {field} must be a {expected}")
            }
            JsonlErrorKind::BadRole(r) => {
                write!(f, "unknown role {r:?} (use user, system or assistant)")
            }
            JsonlErrorKind::NoFinalAssistant => {
                write!(f, "messages must end with an assistant message")
            }
        }
    }
}

/// Errors from configuring, loading data, training or checkpointing.
#[derive(thiserror::Error, Debug)]
pub enum TrainError {
    /// A configuration value is zero, negative, non-finite or inconsistent.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// A JSONL line could not be used.
    #[error("{}:{line}: {kind}", path.display())]
    Jsonl {
        /// File.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        kind: JsonlErrorKind,
    },
    /// A data file has no records.
    #[error("{}: dataset is empty", path.display())]
    EmptyDataset {
        /// File.
        path: PathBuf,
    },
    /// No example has any loss token left (e.g. everything truncated away).
    #[error("no trainable examples: {0}")]
    NoTrainableExamples(String),
    /// Reading a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Writing metric lines to the output failed.
    #[error("writing metrics: {0}")]
    Output(#[source] std::io::Error),
    /// Writing or reading a checkpoint failed.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// File.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}
