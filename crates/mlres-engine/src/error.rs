use std::path::PathBuf;

/// Everything that can go wrong in the engine, typed so the binary can choose exit codes.
#[derive(thiserror::Error, Debug)]
pub enum EngineError {
    #[error("no program.md in {0}: run `mlres init` or write one (see `mlres check --help`)")]
    NoProgram(PathBuf),
    #[error("{path}:{err}")]
    Program {
        path: PathBuf,
        err: mlres_policy::ProgramError,
    },
    #[error("program.md has no `## {0}` section; the loop needs it")]
    MissingSection(&'static str),
    #[error(
        "this campaign has never been approved.\nA human must run `mlres approve` (in a terminal) before anything is spent."
    )]
    NotApproved,
    #[error(
        "the approved campaign has changed since it was approved; nothing will be spent until a human runs `mlres approve` again.\n{diff}"
    )]
    ApprovalChanged { diff: String },
    #[error("refused ({code}): {message}")]
    Refused { code: String, message: String },
    #[error(
        "refused (code_changed): the job's code changed since it was approved; nothing was spent. \
         Review the change below; a human must run `mlres approve` again before anything more is \
         spent.\n{0}"
    )]
    CodeChanged(Box<crate::code::CodeChange>),
    /// A finished experiment's outputs cannot be copied or uploaded for a reason that is not a
    /// policy decision (not finished, never ran, removed by retention, missing, a write that
    /// failed).
    #[error("{message}")]
    Outputs { code: String, message: String },
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("no experiment {0} in this campaign")]
    UnknownExperiment(i64),
    #[error("no campaign yet for {0}: run `mlres loop run` or `mlres exp submit` first")]
    NoCampaign(PathBuf),
    #[error("another `mlres loop run` holds the loop lock for this campaign ({0})")]
    LoopBusy(String),
    #[error("timed out waiting for experiment {0}")]
    WaitTimeout(i64),
    #[error(
        "the loop was interrupted; campaign {campaign} is still active with {} experiment(s) in flight",
        in_flight.len()
    )]
    Interrupted {
        campaign: String,
        in_flight: Vec<i64>,
    },
    #[error(
        "this project's history (runs/) was written by another ledger ({}, latest campaign {}, state dir {}), \
         but the state dir in use ({state_dir}) holds no record of it: the state dir was deleted, moved or \
         replaced, or another one is pointed at. Nothing was approved or spent. Restore the state dir, or, to \
         start over with a fresh budget, a human runs `mlres approve --acknowledge-reset`",
        previous.ledger_id,
        previous.campaign,
        previous.state_dir
    )]
    LedgerReplaced {
        previous: crate::identity::LedgerMarker,
        state_dir: String,
    },
    #[error(
        "stop requested for campaign {campaign} and {cancelled} job(s) cancelled, but the hf-jobs \
         namespace {namespace} could not be checked for jobs that must not run: {error}. Jobs \
         there may still be running and spending. The campaign stays active with its stop \
         requested: run `mlres loop stop` again to retry (a running loop retries at every sweep)"
    )]
    StopIncomplete {
        campaign: String,
        cancelled: u32,
        namespace: String,
        error: String,
    },
    #[error(transparent)]
    Ledger(#[from] mlres_ledger::LedgerError),
    #[error(transparent)]
    Backend(#[from] mlres_backends::BackendError),
    #[error("Hugging Face API: {0}")]
    Hf(#[from] mlres_hf::HfError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl EngineError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
        let context = context.into();
        move |source| EngineError::Io { context, source }
    }

    /// True when the error is a policy decision (refusal, approval) rather than a fault.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            EngineError::NotApproved
                | EngineError::ApprovalChanged { .. }
                | EngineError::Refused { .. }
                | EngineError::CodeChanged(_)
                | EngineError::InvalidConfig(_)
        ) || matches!(
            self,
            EngineError::Ledger(mlres_ledger::LedgerError::Refused { .. })
        )
    }

    /// Whether the ledger found its stored state edited outside mlres (its tables disagree
    /// with their seals or the chain): nothing may be spent until a human looks.
    pub fn is_tampered(&self) -> bool {
        matches!(
            self,
            EngineError::Ledger(
                mlres_ledger::LedgerError::Tampered(_) | mlres_ledger::LedgerError::StateGone(_)
            ) | EngineError::LedgerReplaced { .. }
        )
    }
}
