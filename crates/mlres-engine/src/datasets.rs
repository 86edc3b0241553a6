//! Dataset pinning: the content manifest of every dataset the envelope declares is recorded
//! with the approval, and every submit recomputes it and refuses (`dataset_changed`) when a
//! file was swapped, edited, added or removed since a human approved the campaign.
//!
//! Local entries (a file or directory, relative to the project root or absolute) are hashed
//! file by file with row counts and schemas; entries that name a Hub dataset (`hf:owner/name`,
//! `datasets/owner/name`, or `owner/name` that is not a local path) are recorded as remote;
//! a declared local path that does not exist is recorded as missing, so creating it later is
//! a change too.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::EngineError;
use crate::project::Project;

/// How one `datasets:` entry resolves.
enum Entry {
    Local(PathBuf),
    Remote,
    Missing,
}

fn resolve(root: &Path, entry: &str) -> Entry {
    if entry.starts_with("hf:") || entry.starts_with("datasets/") {
        return Entry::Remote;
    }
    let p = Path::new(entry);
    let path = if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    };
    if path.exists() {
        return Entry::Local(path);
    }
    let looks_like_repo = entry.split('/').count() == 2
        && !entry.starts_with('.')
        && p.extension().is_none()
        && !p.is_absolute();
    if looks_like_repo {
        Entry::Remote
    } else {
        Entry::Missing
    }
}

/// The envelope's local datasets (files or directories, also as their resolved real paths):
/// a local job may read them, read-only, in its sandbox.
pub(crate) fn local_paths(project: &Project) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for name in &project.program.envelope.datasets {
        if let Entry::Local(p) = resolve(&project.root, name) {
            if let Ok(real) = std::fs::canonicalize(&p)
                && real != p
            {
                out.push(real);
            }
            out.push(p);
        }
    }
    out
}

/// The envelope's local datasets as declared (resolved against the project root), for a
/// caller that must check who may read them (the broker checks its client could).
pub fn local_dataset_paths(project: &Project) -> Vec<PathBuf> {
    local_paths(project)
}

/// The manifest of the envelope's datasets as they are now; `None` when none are declared.
pub(crate) fn current(project: &Project) -> Result<Option<Value>, EngineError> {
    current_with(project, true)
}

/// Whether the datasets still have exactly the pinned files and hashes (hashing only, no
/// row parsing: the check every submit runs).
pub(crate) fn unchanged(project: &Project, pinned: &Value) -> Result<bool, EngineError> {
    let Some(now) = current_with(project, false)? else {
        return Ok(pinned.is_null());
    };
    let list = |v: &Value| v["entries"].as_array().cloned().unwrap_or_default();
    let (old, new) = (list(pinned), list(&now));
    if old.len() != new.len() {
        return Ok(false);
    }
    for (o, n) in old.iter().zip(&new) {
        if o["name"] != n["name"] || o["kind"] != n["kind"] {
            return Ok(false);
        }
        if n["kind"] == "local" {
            let parse = |v: &Value| {
                serde_json::from_value::<mlres_data::manifest::Manifest>(v["manifest"].clone())
            };
            match (parse(o), parse(n)) {
                (Ok(a), Ok(b)) if mlres_data::manifest::same_content(&a, &b) => {}
                _ => return Ok(false),
            }
        }
    }
    Ok(true)
}

fn current_with(project: &Project, rows: bool) -> Result<Option<Value>, EngineError> {
    let names = &project.program.envelope.datasets;
    if names.is_empty() {
        return Ok(None);
    }
    let mut entries = Vec::new();
    for name in names {
        let e = match resolve(&project.root, name) {
            Entry::Remote => json!({"name": name, "kind": "remote"}),
            Entry::Missing => json!({"name": name, "kind": "missing"}),
            Entry::Local(path) => {
                let m = mlres_data::manifest::compute_with(
                    std::slice::from_ref(&path),
                    &project.root,
                    rows,
                )
                .map_err(|e| EngineError::Refused {
                    code: "dataset_unreadable".into(),
                    message: format!("dataset `{name}` cannot be read: {e}"),
                })?;
                let m = serde_json::to_value(&m).map_err(|e| EngineError::Refused {
                    code: "dataset_unreadable".into(),
                    message: format!("dataset `{name}`: {e}"),
                })?;
                json!({"name": name, "kind": "local", "manifest": m})
            }
        };
        entries.push(e);
    }
    Ok(Some(json!({ "entries": entries })))
}

/// Human-readable differences between the pinned and the current manifest (empty if equal).
pub(crate) fn differences(pinned: &Value, now: &Value) -> Vec<String> {
    let list = |v: &Value| v["entries"].as_array().cloned().unwrap_or_default();
    let (old, new) = (list(pinned), list(now));
    let mut out = Vec::new();
    for n in &new {
        let name = n["name"].as_str().unwrap_or("?");
        let Some(o) = old.iter().find(|o| o["name"] == n["name"]) else {
            out.push(format!("dataset `{name}` was not pinned at approval"));
            continue;
        };
        if o == n {
            continue;
        }
        match (o["kind"].as_str(), n["kind"].as_str()) {
            (Some("local"), Some("local")) => {
                let parse = |v: &Value| {
                    serde_json::from_value::<mlres_data::manifest::Manifest>(v["manifest"].clone())
                };
                match (parse(o), parse(n)) {
                    (Ok(a), Ok(b)) => {
                        let d = mlres_data::manifest::diff(&a, &b);
                        if d.is_empty() {
                            out.push(format!("dataset `{name}` changed"));
                        }
                        out.extend(d.into_iter().map(|l| format!("dataset `{name}`: {l}")));
                    }
                    _ => out.push(format!("dataset `{name}` changed")),
                }
            }
            (a, b) => out.push(format!(
                "dataset `{name}` was {} at approval and is {} now",
                a.unwrap_or("?"),
                b.unwrap_or("?")
            )),
        }
    }
    for o in old
        .iter()
        .filter(|o| !new.iter().any(|n| n["name"] == o["name"]))
    {
        out.push(format!(
            "dataset `{}` is no longer declared",
            o["name"].as_str().unwrap_or("?")
        ));
    }
    out
}
