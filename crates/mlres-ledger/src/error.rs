//! The ledger's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the ledger.
#[derive(thiserror::Error, Debug)]
pub enum LedgerError {
    /// The budget check (or the campaign state) refused a reservation. A `spend_refused` event
    /// was committed before this was returned.
    #[error("refused ({code}): {message}")]
    Refused {
        /// Machine-readable reason, chosen by the caller's check closure (or
        /// `campaign_not_active` / `stop_requested` from the ledger itself).
        code: String,
        /// Human-readable explanation.
        message: String,
    },
    /// The campaign already has an experiment for this proposal index.
    #[error("proposal already reserved as experiment {existing}")]
    DuplicateProposal {
        /// Id of the experiment that holds the proposal.
        existing: i64,
    },
    /// The experiment is not in a state that allows the requested transition.
    #[error("experiment {exp_id}: invalid transition {from} -> {to}")]
    InvalidTransition {
        /// The experiment.
        exp_id: i64,
        /// Its current state.
        from: String,
        /// The requested state.
        to: String,
    },
    /// The attempt number does not fit the experiment's current attempt.
    #[error("experiment {exp_id}: attempt {given} does not fit current attempt {current}")]
    StaleAttempt {
        /// The experiment.
        exp_id: i64,
        /// Attempt recorded in the ledger.
        current: u32,
        /// Attempt passed by the caller.
        given: u32,
    },
    /// The campaign is not in a state that allows the requested change.
    #[error("campaign {campaign}: invalid transition {from} -> {to}")]
    InvalidCampaignTransition {
        /// The campaign.
        campaign: String,
        /// Its current status.
        from: String,
        /// The requested status.
        to: String,
    },
    /// A campaign or experiment does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The key file is missing, malformed or has unsafe permissions.
    #[error("ledger key file {path}: {reason}")]
    KeyFile {
        /// Path of the key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The stored state does not match its MACs or the chain head; the ledger refuses to
    /// build on it (run `verify` for the full report).
    #[error("ledger tampered: {0}")]
    Tampered(String),
    /// A caller-supplied value is out of range or not one of the allowed words.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The database was written by a newer schema version.
    #[error("ledger schema version {found} is not supported (this build knows {supported})")]
    SchemaVersion {
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// The version this build writes.
        supported: i64,
    },
    /// The state directory this handle opened was deleted, moved or replaced while it was in
    /// use: nothing more may be written through it.
    #[error("the mlres state directory is gone: {0}")]
    StateGone(String),
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file operation in the state directory failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (includes the path).
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Stored JSON could not be parsed or produced.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl LedgerError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LedgerError::Io {
            context: context.into(),
            source,
        }
    }
}
