//! Retention of finished attempt directories.
//!
//! Every attempt leaves a directory in the state dir (spec, status, captured logs, the job's
//! work dir). Once an experiment is evaluated its metric, decision and error tail are in the
//! ledger, so a long campaign need not keep thousands of these. The rule: keep every attempt
//! of a kept experiment, of anything still in flight, and of the `keep` most recently settled
//! experiments; remove the rest, recording which in one `attempts_pruned` event per pass.
//! A per-campaign cursor file (`.retention`) makes each pass start where the last one ended,
//! so a pass costs what it removes, not what the campaign holds.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::EngineError;
use crate::run::Engine;

/// Default number of settled, not-kept experiments whose attempt dirs are kept per campaign.
pub const DEFAULT_KEEP_ATTEMPTS: usize = 100;
/// The smallest retention a caller may ask for: the last few logs are what a human reads.
pub const MIN_KEEP_ATTEMPTS: usize = 10;
/// Experiments handled per pass (the rest wait for the next pass).
const BATCH: usize = 500;
const CURSOR: &str = ".retention";

/// What one retention pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Experiments whose attempt directories were removed.
    pub experiments: Vec<i64>,
    /// Bytes freed (as counted while removing).
    pub bytes: u64,
}

impl Engine {
    /// Removes the attempt directories of `campaign`'s settled, not-kept experiments older
    /// than its `cfg.keep_attempts` most recent ones. Never touches kept or in-flight
    /// experiments; records what it removed in the ledger.
    pub fn prune_attempts(&mut self, campaign: &str) -> Result<Pruned, EngineError> {
        let keep = self.cfg.keep_attempts.max(MIN_KEEP_ATTEMPTS);
        let dir = self.cfg.state_dir.join("jobs").join(campaign);
        let cursor_path = dir.join(CURSOR);
        let after = read_cursor(&cursor_path);
        let candidates = self
            .ledger
            .retention_candidates(campaign, after, keep, BATCH)?;
        if candidates.is_empty() {
            return Ok(Pruned::default());
        }
        let mut out = Pruned::default();
        for exp in &candidates {
            let mut removed = false;
            for attempt in 1..=exp.attempt.max(1) {
                let d = dir.join(format!("e{}-a{attempt}", exp.id));
                match remove_tree(&d) {
                    Ok(Some(bytes)) => {
                        out.bytes += bytes;
                        removed = true;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        return Err(EngineError::io(format!(
                            "retention: cannot remove {}",
                            d.display()
                        ))(e));
                    }
                }
            }
            if removed {
                out.experiments.push(exp.id);
            }
        }
        // The cursor never passes an experiment still in flight: it may settle later and
        // become a candidate then.
        let last = candidates.last().map_or(after, |e| e.id);
        let next = match self.ledger.oldest_open_experiment(campaign)? {
            Some(open) if open <= last => open - 1,
            _ => last,
        };
        if !out.experiments.is_empty() {
            self.ledger.append_event(
                Some(campaign),
                "attempts_pruned",
                &json!({
                    "exp_ids": out.experiments,
                    "bytes": out.bytes,
                    "keep": keep,
                }),
            )?;
        }
        if next > after {
            write_cursor(&cursor_path, next)?;
        }
        Ok(out)
    }
}

fn read_cursor(path: &Path) -> i64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn write_cursor(path: &Path, id: i64) -> Result<(), EngineError> {
    let tmp: PathBuf = path.with_extension("tmp");
    fs::write(&tmp, format!("{id}\n"))
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(EngineError::io(format!(
            "retention cursor {}",
            path.display()
        )))
}

/// Removes `dir` and everything under it; `None` when it did not exist. A job may have left
/// directories without write permission (its own files, same uid): they are made writable
/// first. Symlinks are removed, never followed.
fn remove_tree(dir: &Path) -> std::io::Result<Option<u64>> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        fs::remove_file(dir)?;
        return Ok(Some(meta.len()));
    }
    let mut bytes = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let m = fs::symlink_metadata(&d)?;
        if m.permissions().mode() & 0o700 != 0o700 {
            let mut p = m.permissions();
            p.set_mode(m.permissions().mode() | 0o700);
            fs::set_permissions(&d, p)?;
        }
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else {
                bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    fs::remove_dir_all(dir)?;
    Ok(Some(bytes))
}
