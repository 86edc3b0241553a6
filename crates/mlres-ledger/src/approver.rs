//! The human approver's secret, as stored by the ledger.
//!
//! The ledger never sees the secret, only a password hash string (Argon2id, PHC format, made
//! by the engine). It keeps that string in `approver.phc` (0600) in the state directory, not in
//! an event: events are printed by `mlres ledger events`, and a hash an agent can read is a
//! hash it can attack offline. What the chain holds is the file's sha256, in an
//! `approver_secret_set` event, so a replaced or deleted file is noticed (`Tampered`) instead
//! of silently accepting someone else's secret or none.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;

use serde_json::json;

use crate::{Ledger, LedgerError, crypto};

const FILE: &str = "approver.phc";
const KIND: &str = "approver_secret_set";

impl Ledger {
    /// Records `phc` (a password hash string) as the approver secret's hash, replacing any
    /// earlier one; `set_by` says who set it (user, uid). The file is written before the
    /// event, so a crash in between leaves the old secret in force (the file no longer matches
    /// the chain, which [`Ledger::approver_secret`] reports as tampering until it is set again).
    pub fn set_approver_secret(&mut self, phc: &str, set_by: &str) -> Result<(), LedgerError> {
        if phc.is_empty() || phc.contains('\n') {
            return Err(LedgerError::Invalid(
                "approver secret hash must be one non-empty line".into(),
            ));
        }
        let path = self.dir.join(FILE);
        let tmp = self.dir.join(format!(".{FILE}.tmp.{}", std::process::id()));
        let res = (|| -> std::io::Result<()> {
            let _ = fs::remove_file(&tmp);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(phc.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.map_err(|e| LedgerError::io(format!("writing {}", path.display()), e))?;
        self.append_event(
            None,
            KIND,
            &json!({"sha256": crypto::sha256_hex(phc.as_bytes()), "set_by": set_by}),
        )?;
        Ok(())
    }

    /// The approver secret's hash string, if one was ever set. `Tampered` when the file is
    /// missing or differs from what the chain recorded last.
    pub fn approver_secret(&self) -> Result<Option<String>, LedgerError> {
        let recorded: Option<String> = self
            .latest_event_of_kind(KIND)?
            .and_then(|p| p.get("sha256").and_then(|s| s.as_str()).map(String::from));
        let path = self.dir.join(FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(LedgerError::io(format!("reading {}", path.display()), e)),
        };
        match (recorded, text) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(LedgerError::Tampered(format!(
                "{} exists but the ledger never recorded an approver secret",
                path.display()
            ))),
            (Some(_), None) => Err(LedgerError::Tampered(format!(
                "the approver secret's hash file {} is missing",
                path.display()
            ))),
            (Some(sha), Some(text)) => {
                let phc = text.trim_end_matches('\n');
                if crypto::sha256_hex(phc.as_bytes()) == sha {
                    Ok(Some(phc.to_string()))
                } else {
                    Err(LedgerError::Tampered(format!(
                        "{} differs from the approver secret the ledger recorded",
                        path.display()
                    )))
                }
            }
        }
    }
}
