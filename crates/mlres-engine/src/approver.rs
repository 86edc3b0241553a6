//! Human-only approvals: the approver secret.
//!
//! A human sets an approval secret once (`mlres setup approver`); the ledger keeps only its
//! Argon2id hash. Every approval must present the secret: a flag, a faked terminal or an
//! agent's script is not enough without it. A wrong secret is recorded (`approval_refused`)
//! so repeated guessing shows in the audit trail. The one approval that needs no secret is the
//! built-in demo's, and only for the demo program byte for byte
//! ([`Engine::approve_builtin_demo`]).

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde_json::json;

use crate::EngineError;
use crate::run::Engine;

/// The shortest approval secret accepted.
pub const MIN_SECRET_CHARS: usize = 8;

/// How a human gave the approval secret (recorded with the approval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// Typed at the controlling terminal (`/dev/tty`, echo off).
    Terminal,
    /// Read from a file descriptor the human opened (`--secret-fd`).
    Fd,
    /// Read from a file the human controls (`--secret-file`).
    File,
}

impl SecretSource {
    /// The word recorded in the ledger.
    pub fn label(self) -> &'static str {
        match self {
            SecretSource::Terminal => "tty",
            SecretSource::Fd => "fd",
            SecretSource::File => "file",
        }
    }
}

/// Who approves, and their proof.
#[derive(Debug, Clone)]
pub struct HumanApprover {
    /// The user's name.
    pub user: String,
    /// Their uid.
    pub uid: u32,
    /// How the secret was given.
    pub source: SecretSource,
    /// The secret itself (checked, never stored).
    pub secret: String,
}

impl HumanApprover {
    /// What the ledger records as the approver.
    pub fn label(&self) -> String {
        format!("{} ({}, uid {})", self.user, self.source.label(), self.uid)
    }
}

/// Argon2id hash (PHC string) of `secret`, with a fresh random salt.
pub fn hash_secret(secret: &str) -> Result<String, EngineError> {
    check_strength(secret)?;
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| EngineError::Refused {
            code: "approval_secret".into(),
            message: format!("cannot hash the approval secret: {e}"),
        })
}

/// Whether `secret` matches `phc` (constant-time inside argon2). A malformed hash matches
/// nothing.
pub fn verify_secret(phc: &str, secret: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(secret.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

fn check_strength(secret: &str) -> Result<(), EngineError> {
    if secret.chars().count() < MIN_SECRET_CHARS {
        return Err(EngineError::Refused {
            code: "approval_secret".into(),
            message: format!(
                "the approval secret must be at least {MIN_SECRET_CHARS} characters; nothing was changed"
            ),
        });
    }
    if secret.trim() != secret || secret.contains('\n') {
        return Err(EngineError::Refused {
            code: "approval_secret".into(),
            message: "the approval secret must not begin or end with whitespace or contain a newline; nothing was changed".into(),
        });
    }
    Ok(())
}

/// Sets (or, given the current one, changes) the approval secret of the state dir `ledger`
/// lives in. Changing it needs the current secret (a wrong one is recorded); setting the first
/// one needs nothing but a human at setup.
pub fn set_approver_secret(
    ledger: &mut mlres_ledger::Ledger,
    new: &str,
    current: Option<&str>,
    set_by: &str,
) -> Result<(), EngineError> {
    if let Some(phc) = ledger.approver_secret()? {
        let ok = current.is_some_and(|c| verify_secret(&phc, c));
        if !ok {
            ledger.append_event(
                None,
                "approval_refused",
                &json!({"reason": "wrong current approval secret (changing it)", "by": set_by}),
            )?;
            return Err(EngineError::Refused {
                code: "approval_secret".into(),
                message: "an approval secret is already set; changing it needs the current one (it did not match); nothing was changed".into(),
            });
        }
    }
    let phc = hash_secret(new)?;
    ledger.set_approver_secret(&phc, set_by)?;
    Ok(())
}

impl Engine {
    /// Whether an approval secret has been set.
    pub fn approver_secret_is_set(&self) -> Result<bool, EngineError> {
        Ok(self.ledger.approver_secret()?.is_some())
    }

    /// Checks a human's approval secret. No secret set, or a wrong one, is a refusal (the
    /// wrong one is recorded).
    pub(crate) fn check_approver(&mut self, who: &HumanApprover) -> Result<(), EngineError> {
        let Some(phc) = self.ledger.approver_secret()? else {
            return Err(EngineError::Refused {
                code: "no_approval_secret".into(),
                message: "no approval secret is set. A human sets one once with \
                          `mlres setup approver` (in a terminal); approvals then need it. Nothing was approved"
                    .into(),
            });
        };
        if verify_secret(&phc, &who.secret) {
            return Ok(());
        }
        self.ledger.append_event(
            None,
            "approval_refused",
            &json!({
                "reason": "wrong approval secret",
                "by": who.label(),
                "project_root": self.project.root_str(),
            }),
        )?;
        Err(EngineError::Refused {
            code: "approval_secret".into(),
            message: "the approval secret did not match; nothing was approved".into(),
        })
    }
}
