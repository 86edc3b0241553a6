//! Code pinning: the files a job template's `code:` names are hashed at approval, copied into a
//! read-only, content-addressed snapshot in the state directory (`<state>/code/<sha256>/`),
//! and their manifest is recorded with the approval. Every submit hashes the project's files
//! again and refuses (`code_changed`, with the difference) when they no longer match; jobs run
//! the snapshot (`{code}`), never the project's files, so what ran is what a human approved.
//!
//! The pure parts (entry syntax, manifest hash, size cap, differences, unified diffs) are in
//! `mlres-policy`; this module does the IO: it walks the project (symlinks followed only while
//! they stay in it, never into the state directory or `runs/`), reads, copies and compares.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mlres_policy::{CodeChanges, CodeFile, CodeManifest, MAX_CODE_FILES};
use serde::Serialize;

use crate::EngineError;
use crate::project::Project;

/// Largest file shown as a text diff in a refusal.
const MAX_DIFF_FILE_BYTES: usize = 1 << 20;
/// Most lines of diff a refusal shows (the file list is always complete).
const MAX_DIFF_LINES: usize = 200;
/// Most bytes of diff a refusal shows.
const MAX_DIFF_BYTES: usize = 24 * 1024;
/// Context lines around each change.
const DIFF_CONTEXT: usize = 3;

/// An approved code snapshot a job may run.
#[derive(Debug, Clone)]
pub struct PinnedCode {
    pub manifest: CodeManifest,
    /// `<state>/code/<sha256>`: what `{code}` names.
    pub dir: PathBuf,
}

/// The job's code differs from what was approved: the refusal, as data.
#[derive(Debug, Clone, Serialize)]
pub struct CodeChange {
    /// Manifest hash pinned with the approval.
    pub approved_sha256: String,
    /// Manifest hash of the project's files now.
    pub current_sha256: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    /// Unified diff of text files (approved snapshot vs project), secrets redacted.
    pub diff: String,
    /// The diff was cut at [`MAX_DIFF_LINES`] lines or [`MAX_DIFF_BYTES`].
    pub diff_truncated: bool,
}

impl std::fmt::Display for CodeChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let changes = CodeChanges {
            added: self.added.clone(),
            removed: self.removed.clone(),
            changed: self.changed.clone(),
        };
        let mut lines: Vec<String> = changes.lines().iter().map(|l| format!("  {l}")).collect();
        lines.extend(self.diff.lines().map(str::to_string));
        if self.diff_truncated {
            lines.push(format!(
                "[diff cut at {MAX_DIFF_LINES} lines or {} KiB; the file list above is complete]",
                MAX_DIFF_BYTES / 1024
            ));
        }
        f.write_str(&lines.join("\n"))
    }
}

fn refused(code: &str, message: String) -> EngineError {
    EngineError::Refused {
        code: code.into(),
        message,
    }
}

/// What must never be pinned as code: the state directory and the exports in `runs/`.
struct Walk<'a> {
    root: &'a Path,
    state: PathBuf,
    runs: PathBuf,
    files: Vec<Found>,
    /// Declared entries that do not exist.
    missing: Vec<String>,
}

/// One file found under a `code:` entry.
struct Found {
    rel: String,
    real: PathBuf,
    size: u64,
    executable: bool,
}

impl Walk<'_> {
    fn entry(&mut self, entry: &str) -> Result<(), EngineError> {
        let path = self.root.join(entry);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => self.visit(entry.to_string(), &path, &mut Vec::new()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.missing.push(entry.to_string());
                Ok(())
            }
            Err(e) => Err(refused(
                "code_unreadable",
                format!("code `{entry}` cannot be read: {e}"),
            )),
        }
    }

    fn visit(
        &mut self,
        rel: String,
        path: &Path,
        stack: &mut Vec<PathBuf>,
    ) -> Result<(), EngineError> {
        let real = std::fs::canonicalize(path).map_err(|e| {
            refused(
                "code_unreadable",
                format!("code `{rel}` cannot be resolved (a broken symlink?): {e}"),
            )
        })?;
        if !real.starts_with(self.root) {
            return Err(refused(
                "code_outside_project",
                format!(
                    "code `{rel}` leads outside the project (to {}): code must live in the project",
                    real.display()
                ),
            ));
        }
        if real.starts_with(&self.state) || self.state.starts_with(&real) {
            return Err(refused(
                "code_in_state_dir",
                format!(
                    "code `{rel}` is or holds the mlres state directory ({}), which is not code",
                    self.state.display()
                ),
            ));
        }
        if real.starts_with(&self.runs) || self.runs.starts_with(&real) {
            return Err(refused(
                "code_in_runs",
                format!("code `{rel}` is or holds `runs/`, where mlres writes its exports"),
            ));
        }
        let meta = std::fs::metadata(&real).map_err(|e| {
            refused(
                "code_unreadable",
                format!("code `{rel}` cannot be read: {e}"),
            )
        })?;
        if meta.is_file() {
            self.files.push(Found {
                rel,
                real,
                size: meta.len(),
                executable: meta.permissions().mode() & 0o100 != 0,
            });
            if self.files.len() > MAX_CODE_FILES {
                return Err(refused(
                    "code_too_large",
                    format!(
                        "the job's code has more than {MAX_CODE_FILES} files (at `{}`): `code` is \
                         what the job runs; keep environments, data and checkpoints out of it",
                        self.files[MAX_CODE_FILES].rel
                    ),
                ));
            }
            return Ok(());
        }
        if !meta.is_dir() {
            return Err(refused(
                "code_unreadable",
                format!(
                    "code `{rel}` is not a regular file or directory (a FIFO, socket or device)"
                ),
            ));
        }
        if stack.contains(&real) {
            return Err(refused(
                "code_unreadable",
                format!("code `{rel}` is a symlink loop"),
            ));
        }
        let mut names = Vec::new();
        for e in std::fs::read_dir(&real).map_err(|e| {
            refused(
                "code_unreadable",
                format!("code `{rel}` cannot be listed: {e}"),
            )
        })? {
            let e = e.map_err(|e| {
                refused(
                    "code_unreadable",
                    format!("code `{rel}` cannot be listed: {e}"),
                )
            })?;
            let name = e.file_name().into_string().map_err(|n| {
                refused(
                    "code_unreadable",
                    format!(
                        "code `{rel}` holds a file whose name is not UTF-8 ({}); rename it",
                        n.to_string_lossy()
                    ),
                )
            })?;
            names.push(name);
        }
        names.sort();
        stack.push(real.clone());
        for name in names {
            self.visit(format!("{rel}/{name}"), &real.join(&name), stack)?;
        }
        stack.pop();
        Ok(())
    }
}

/// The files of the job's `code:` list as they are now (not read yet), and the declared
/// entries that do not exist. Sizes are checked against the cap before anything is read.
fn walk(project: &Project, state_dir: &Path) -> Result<(Vec<Found>, Vec<String>), EngineError> {
    let entries = project
        .program
        .job
        .as_ref()
        .map(|j| j.code.clone())
        .unwrap_or_default();
    let state = std::fs::canonicalize(state_dir)
        .or_else(|_| std::path::absolute(state_dir))
        .unwrap_or_else(|_| state_dir.to_path_buf());
    let mut w = Walk {
        root: &project.root,
        state,
        runs: project.root.join(mlres_policy::RUNS_DIR),
        files: Vec::new(),
        missing: Vec::new(),
    };
    for e in &entries {
        w.entry(e)?;
    }
    let sized: Vec<CodeFile> = w
        .files
        .iter()
        .map(|f| CodeFile {
            path: f.rel.clone(),
            sha256: String::new(),
            size: f.size,
            executable: f.executable,
        })
        .collect();
    mlres_policy::check_code_size(&sized).map_err(|m| refused("code_too_large", m))?;
    Ok((w.files, w.missing))
}

fn read(f: &Found) -> Result<Vec<u8>, EngineError> {
    std::fs::read(&f.real).map_err(|e| {
        refused(
            "code_unreadable",
            format!("code file `{}` cannot be read: {e}", f.rel),
        )
    })
}

/// Reads and hashes the found files; `keep` keeps their bytes (to snapshot exactly what was
/// hashed).
fn manifest_of(
    found: &[Found],
    keep: bool,
) -> Result<(CodeManifest, BTreeMap<String, Vec<u8>>), EngineError> {
    let mut files = Vec::with_capacity(found.len());
    let mut bytes = BTreeMap::new();
    for f in found {
        let data = read(f)?;
        files.push(CodeFile {
            path: f.rel.clone(),
            sha256: mlres_policy::sha256_hex(&data),
            size: data.len() as u64,
            executable: f.executable,
        });
        if keep {
            bytes.insert(f.rel.clone(), data);
        }
    }
    // Sizes as read (a file may have grown since it was listed).
    mlres_policy::check_code_size(&files).map_err(|m| refused("code_too_large", m))?;
    Ok((CodeManifest::new(files), bytes))
}

/// Whether the job template declares code.
pub(crate) fn declared(project: &Project) -> bool {
    project
        .program
        .job
        .as_ref()
        .is_some_and(|j| !j.code.is_empty())
}

/// The manifest of the declared code as it is now (`None` without `code:`); a declared entry
/// that does not exist is an error, as at approval.
pub(crate) fn current(
    project: &Project,
    state_dir: &Path,
) -> Result<Option<CodeManifest>, EngineError> {
    if !declared(project) {
        return Ok(None);
    }
    let (found, missing) = walk(project, state_dir)?;
    if let Some(m) = missing.first() {
        return Err(refused(
            "code_missing",
            format!(
                "code `{m}` does not exist in the project ({})",
                project.root.display()
            ),
        ));
    }
    Ok(Some(manifest_of(&found, false)?.0))
}

/// At approval: hashes the declared code and stores exactly those bytes as the read-only
/// snapshot `<state>/code/<sha256>/` (`None` without `code:`). Nothing is recorded if a
/// declared entry is missing, unreadable, outside the project or over the cap.
pub(crate) fn pin(project: &Project, state_dir: &Path) -> Result<Option<PinnedCode>, EngineError> {
    if !declared(project) {
        return Ok(None);
    }
    let (found, missing) = walk(project, state_dir)?;
    if let Some(m) = missing.first() {
        return Err(refused(
            "code_missing",
            format!(
                "code `{m}` does not exist in the project ({}); nothing was approved",
                project.root.display()
            ),
        ));
    }
    let (manifest, bytes) = manifest_of(&found, true)?;
    let dir = write_snapshot(state_dir, &manifest, &bytes)?;
    Ok(Some(PinnedCode { manifest, dir }))
}

/// Where the snapshot of `sha256` lives.
pub(crate) fn snapshot_dir(state_dir: &Path, sha256: &str) -> PathBuf {
    state_dir.join("code").join(sha256)
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> EngineError {
    EngineError::io(context)
}

fn write_snapshot(
    state_dir: &Path,
    manifest: &CodeManifest,
    bytes: &BTreeMap<String, Vec<u8>>,
) -> Result<PathBuf, EngineError> {
    let parent = state_dir.join("code");
    std::fs::create_dir_all(&parent).map_err(io(format!("cannot create {}", parent.display())))?;
    let dir = snapshot_dir(state_dir, &manifest.sha256);
    if dir.exists() {
        if verify_snapshot(&dir, manifest).is_ok() {
            return Ok(dir);
        }
        // Damaged (or half-written by a crash): replaced by a fresh copy.
        remove_snapshot(&dir)?;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = parent.join(format!(
        ".tmp-{}-{}-{nanos}",
        &manifest.sha256[..16],
        std::process::id()
    ));
    std::fs::create_dir(&tmp).map_err(io(format!("cannot create {}", tmp.display())))?;
    let result = fill_snapshot(&tmp, manifest, bytes).and_then(|()| {
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => Ok(()),
            // Another approval wrote the same snapshot first.
            Err(_) if verify_snapshot(&dir, manifest).is_ok() => remove_snapshot(&tmp),
            Err(e) => Err(EngineError::Io {
                context: format!("cannot move the code snapshot to {}", dir.display()),
                source: e,
            }),
        }
    });
    if result.is_err() {
        let _ = remove_snapshot(&tmp);
    }
    result?;
    Ok(dir)
}

fn fill_snapshot(
    tmp: &Path,
    manifest: &CodeManifest,
    bytes: &BTreeMap<String, Vec<u8>>,
) -> Result<(), EngineError> {
    let mut dirs = vec![tmp.to_path_buf()];
    for f in &manifest.files {
        let dest = tmp.join(&f.path);
        if let Some(p) = dest.parent() {
            std::fs::create_dir_all(p).map_err(io(format!("cannot create {}", p.display())))?;
            let mut d = p.to_path_buf();
            while d != tmp && !dirs.contains(&d) {
                dirs.push(d.clone());
                if !d.pop() {
                    break;
                }
            }
        }
        let data = bytes.get(&f.path).map(Vec::as_slice).unwrap_or_default();
        std::fs::write(&dest, data).map_err(io(format!("cannot write {}", dest.display())))?;
        let mode = if f.executable { 0o555 } else { 0o444 };
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))
            .map_err(io(format!("cannot make {} read-only", dest.display())))?;
    }
    // Deepest first, so a parent is made read-only after its children are written.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o555))
            .map_err(io(format!("cannot make {} read-only", d.display())))?;
    }
    Ok(())
}

/// Removes a snapshot directory (made writable first: its directories are read-only).
fn remove_snapshot(dir: &Path) -> Result<(), EngineError> {
    fn writable(p: &Path) {
        if let Ok(m) = std::fs::symlink_metadata(p)
            && m.is_dir()
        {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    writable(&e.path());
                }
            }
        }
    }
    writable(dir);
    std::fs::remove_dir_all(dir).map_err(io(format!("cannot remove {}", dir.display())))
}

/// Lists every regular file under a snapshot directory (anything else is damage).
fn snapshot_files(
    dir: &Path,
    rel: &str,
    out: &mut Vec<(String, PathBuf, bool)>,
) -> Result<(), String> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let r = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let t = e
            .file_type()
            .map_err(|err| format!("cannot read {}: {err}", e.path().display()))?;
        if t.is_dir() {
            snapshot_files(&e.path(), &r, out)?;
        } else if t.is_file() {
            let mode = e
                .metadata()
                .map_err(|err| format!("cannot read {}: {err}", e.path().display()))?
                .permissions()
                .mode();
            out.push((r, e.path(), mode & 0o100 != 0));
        } else {
            return Err(format!("{r} in the snapshot is not a regular file"));
        }
        if out.len() > MAX_CODE_FILES {
            return Err("too many files in the snapshot".into());
        }
    }
    Ok(())
}

/// Whether `dir` holds exactly the files of `manifest` (re-hashed). Modes are not compared
/// but restored: without bubblewrap a job running as the snapshot's owner can chmod it (Landlock
/// does not cover chmod), though it can never write it.
pub(crate) fn verify_snapshot(dir: &Path, manifest: &CodeManifest) -> Result<(), String> {
    let mut listed = Vec::new();
    snapshot_files(dir, "", &mut listed)?;
    let mut files = Vec::with_capacity(listed.len());
    for (rel, path, found_exec) in listed {
        let executable = manifest.file(&rel).map_or(found_exec, |f| f.executable);
        let data = std::fs::read(&path).map_err(|e| format!("cannot read {rel}: {e}"))?;
        files.push(CodeFile {
            path: rel,
            sha256: mlres_policy::sha256_hex(&data),
            size: data.len() as u64,
            executable,
        });
    }
    let found = CodeManifest::new(files);
    if found.sha256 == manifest.sha256 {
        restore_modes(dir, manifest);
        Ok(())
    } else {
        let c = mlres_policy::code_changes(manifest, &found);
        Err(format!(
            "it differs from the approved code ({})",
            c.lines().join(", ")
        ))
    }
}

/// Sets the snapshot's files and directories back to their read-only modes (best effort).
fn restore_modes(dir: &Path, manifest: &CodeManifest) {
    let set = |p: &Path, mode: u32| {
        if std::fs::symlink_metadata(p).is_ok_and(|m| m.permissions().mode() & 0o7777 != mode) {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
        }
    };
    set(dir, 0o555);
    for f in &manifest.files {
        let mut parent = Path::new(&f.path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            set(&dir.join(p), 0o555);
            parent = p.parent();
        }
        set(&dir.join(&f.path), if f.executable { 0o555 } else { 0o444 });
    }
}

/// The pinned manifest read back from the ledger, checked for consistency.
pub(crate) fn parse_pinned(v: &serde_json::Value) -> Result<CodeManifest, EngineError> {
    serde_json::from_value::<CodeManifest>(v.clone())
        .ok()
        .filter(CodeManifest::is_consistent)
        .ok_or_else(|| {
            refused(
                "code_not_pinned",
                "the code manifest recorded with the approval is unreadable; a human runs \
                 `mlres approve` again"
                    .into(),
            )
        })
}

/// The approved snapshot, verified, for a job to run.
pub(crate) fn snapshot(
    state_dir: &Path,
    manifest: &CodeManifest,
) -> Result<PinnedCode, EngineError> {
    let dir = snapshot_dir(state_dir, &manifest.sha256);
    verify_snapshot(&dir, manifest).map_err(|why| {
        refused(
            "code_snapshot_damaged",
            format!(
                "the approved code snapshot {} cannot be used: {why}. Nothing was spent; a human \
                 runs `mlres approve` again to rebuild it",
                dir.display()
            ),
        )
    })?;
    Ok(PinnedCode {
        manifest: manifest.clone(),
        dir,
    })
}

/// How the project's code differs from the approved snapshot, with a capped unified diff of
/// text files (secrets redacted).
pub(crate) fn describe(
    project: &Project,
    state_dir: &Path,
    pinned: &CodeManifest,
    now: &CodeManifest,
) -> CodeChange {
    let changes = mlres_policy::code_changes(pinned, now);
    let snap = snapshot_dir(state_dir, &pinned.sha256);
    let mut paths: Vec<&String> = changes
        .added
        .iter()
        .chain(&changes.removed)
        .chain(&changes.changed)
        .collect();
    paths.sort();
    let mut diff = String::new();
    for p in paths {
        let old = pinned.file(p).map(|_| std::fs::read(snap.join(p)).ok());
        let new = now
            .file(p)
            .map(|_| std::fs::read(project.root.join(p)).ok());
        diff.push_str(&file_diff(
            p,
            pinned.file(p),
            now.file(p),
            old.flatten(),
            new.flatten(),
        ));
    }
    let scanner = mlres_data::audit::secrets::Scanner::new();
    let mut out = String::new();
    let mut truncated = false;
    for (i, line) in diff.lines().enumerate() {
        let line = scanner.redact_all(line);
        if i >= MAX_DIFF_LINES || out.len() + line.len() + 1 > MAX_DIFF_BYTES {
            truncated = true;
            break;
        }
        out.push_str(&line);
        out.push('\n');
    }
    CodeChange {
        approved_sha256: pinned.sha256.clone(),
        current_sha256: now.sha256.clone(),
        added: changes.added,
        removed: changes.removed,
        changed: changes.changed,
        diff: out,
        diff_truncated: truncated,
    }
}

fn text(b: &[u8]) -> Option<&str> {
    if b.len() > MAX_DIFF_FILE_BYTES || b.contains(&0) {
        return None;
    }
    std::str::from_utf8(b).ok()
}

fn file_diff(
    path: &str,
    old_file: Option<&CodeFile>,
    new_file: Option<&CodeFile>,
    old: Option<Vec<u8>>,
    new: Option<Vec<u8>>,
) -> String {
    let old_label = if old_file.is_some() {
        format!("approved/{path}")
    } else {
        "/dev/null".into()
    };
    let new_label = if new_file.is_some() {
        format!("current/{path}")
    } else {
        "/dev/null".into()
    };
    let old_b = old.unwrap_or_default();
    let new_b = new.unwrap_or_default();
    let mut out = String::new();
    if let (Some(o), Some(n)) = (old_file, new_file)
        && o.executable != n.executable
    {
        out.push_str(&format!(
            "mode of {path}: {} -> {}\n",
            if o.executable {
                "executable"
            } else {
                "not executable"
            },
            if n.executable {
                "executable"
            } else {
                "not executable"
            }
        ));
        if o.sha256 == n.sha256 {
            return out;
        }
    }
    match (text(&old_b), text(&new_b)) {
        (Some(a), Some(b)) => {
            out.push_str(&mlres_policy::unified_diff(
                a,
                b,
                &old_label,
                &new_label,
                DIFF_CONTEXT,
            ));
        }
        _ => out.push_str(&format!(
            "Binary or large files {old_label} and {new_label} differ ({} -> {})\n",
            old_file.map_or("none".into(), |f| mlres_policy::human_size(f.size)),
            new_file.map_or("none".into(), |f| mlres_policy::human_size(f.size)),
        )),
    }
    out
}

/// A declared entry that is missing now counts as its files removed: the current manifest
/// for the submit check (no error for missing entries, unlike [`current`]).
pub(crate) fn current_lenient(
    project: &Project,
    state_dir: &Path,
) -> Result<CodeManifest, EngineError> {
    let (found, _missing) = walk(project, state_dir)?;
    Ok(manifest_of(&found, false)?.0)
}
