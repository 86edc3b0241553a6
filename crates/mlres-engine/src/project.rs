//! Loading `program.md` and checking it against the human-pinned approval.

use std::path::{Path, PathBuf};

use mlres_ledger::{Approval, Ledger};
use mlres_policy::Program;

use crate::EngineError;

/// A project directory with its parsed `program.md` and the document a human approves.
#[derive(Debug, Clone)]
pub struct Project {
    /// Canonical project root (the directory that holds `program.md`).
    pub root: PathBuf,
    pub program_path: PathBuf,
    pub program: Program,
    /// Canonical rendering of the authorised parts (envelope, scope, objective, job, search space).
    pub document: String,
    /// sha256 of `document`.
    pub hash: String,
}

impl Project {
    /// Reads and strictly parses `<root>/program.md`.
    pub fn load(root: &Path) -> Result<Project, EngineError> {
        let root = root.canonicalize().map_err(EngineError::io(format!(
            "cannot open project {}",
            root.display()
        )))?;
        let program_path = root.join("program.md");
        if !program_path.is_file() {
            return Err(EngineError::NoProgram(root));
        }
        let src = std::fs::read_to_string(&program_path).map_err(EngineError::io(format!(
            "cannot read {}",
            program_path.display()
        )))?;
        let program = mlres_policy::parse_program(&src).map_err(|err| EngineError::Program {
            path: program_path.clone(),
            err,
        })?;
        let document = mlres_policy::approval_document(&program);
        let hash = mlres_policy::approval_hash(&document);
        Ok(Project {
            root,
            program_path,
            program,
            document,
            hash,
        })
    }

    pub fn root_str(&self) -> String {
        self.root.to_string_lossy().into_owned()
    }

    /// Where mlres writes its human-readable exports inside the project.
    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }
}

/// How the current `program.md` relates to the last human approval.
#[derive(Debug, Clone)]
pub enum ApprovalStatus {
    Approved(Approval),
    Missing,
    Changed { approved: Approval, diff: String },
}

impl ApprovalStatus {
    pub fn label(&self) -> &'static str {
        match self {
            ApprovalStatus::Approved(_) => "approved",
            ApprovalStatus::Missing => "not approved",
            ApprovalStatus::Changed { .. } => "changed since approval",
        }
    }
}

pub fn approval_status(ledger: &Ledger, project: &Project) -> Result<ApprovalStatus, EngineError> {
    match ledger.latest_approval(&project.root_str())? {
        None => Ok(ApprovalStatus::Missing),
        Some(a) if a.hash == project.hash => Ok(ApprovalStatus::Approved(a)),
        Some(a) => {
            let diff = mlres_policy::diff_documents(&a.document, &project.document);
            Ok(ApprovalStatus::Changed { approved: a, diff })
        }
    }
}

/// Fails unless the current program is exactly what a human approved.
pub fn require_approval(ledger: &Ledger, project: &Project) -> Result<Approval, EngineError> {
    // First: a replaced ledger has no approval, but "approve it" is the wrong advice.
    crate::identity::require_own_history(ledger, project)?;
    match approval_status(ledger, project)? {
        ApprovalStatus::Approved(a) => Ok(a),
        ApprovalStatus::Missing => Err(EngineError::NotApproved),
        ApprovalStatus::Changed { diff, .. } => Err(EngineError::ApprovalChanged { diff }),
    }
}
