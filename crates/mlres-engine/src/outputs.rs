//! A finished local job's outputs: the files and directories the approved job template
//! declares in `outputs:` (relative to the job's work dir), found, checked and brought into
//! the project (`mlres exp artifacts`) or handed to a Hub upload (`mlres hub push`).
//!
//! What comes back is only what was declared and approved, and only from inside the work dir:
//! a symlink is followed only while it stays there (a declared output that leads outside is
//! refused, one below it is skipped and reported), FIFOs, sockets and devices are skipped, and
//! the walk is capped in files and bytes before anything is read. Text files (UTF-8, no NUL
//! byte, at most 64 MiB) have the values of the secrets granted to the job and secret-shaped
//! strings (provider tokens, private keys, JWTs, high-entropy `key = value` assignments)
//! replaced by `[REDACTED:<kind>]`. Other files cannot be redacted without corrupting them:
//! they are scanned for the same secrets, and one that holds any is refused, with nothing
//! copied or uploaded.
//!
//! Copies land in the project (default `artifacts/e<id>/`), never in `runs/`, a hidden
//! directory (`.git`, `.claude`, …) or the state directory, and never replace a file unless
//! asked to: every file is first written under a temporary name, and only when all of them
//! are written are they put in place (without `force`, by a link that fails if the name is
//! taken). Each copy is recorded in the ledger as an `artifacts_copied` event.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use mlres_data::audit::secrets::{ByteScanner, Class, Scanner};
use mlres_ledger::{Experiment, state};
use serde::Serialize;
use serde_json::json;
use sha2::Digest;

use crate::EngineError;
use crate::project::require_approval;
use crate::run::Engine;

/// Default cap on the total size of the outputs copied or uploaded at once.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 4 << 30;
/// Most files one experiment's outputs may hold.
pub const MAX_OUTPUT_FILES: usize = 10_000;
/// Largest file treated (and redacted) as text.
const MAX_TEXT_BYTES: u64 = 64 << 20;
/// Bytes read at a time from a file that is not text.
const CHUNK: usize = 4 << 20;
/// How much of the previous chunk a scan keeps, so a secret across two chunks is found.
const OVERLAP: usize = 64 << 10;
/// Where copies go by default, under the project.
pub const ARTIFACTS_DIR: &str = "artifacts";

/// One file of an experiment's outputs.
#[derive(Debug, Clone, Serialize)]
pub struct OutputFile {
    /// Path relative to the work dir (and to the destination).
    pub path: String,
    /// Where it is read from (canonical, inside the work dir).
    #[serde(skip)]
    pub source: PathBuf,
    /// Size in bytes.
    pub size: u64,
}

/// Something below a declared output that is not brought back.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedOutput {
    pub path: String,
    pub reason: String,
}

/// A finished experiment's outputs, found and capped, not yet read.
#[derive(Debug)]
pub struct Outputs {
    pub exp: Experiment,
    /// The attempt's work dir (canonical).
    pub work_dir: PathBuf,
    /// The declared outputs these files come from.
    pub declared: Vec<String>,
    /// Every file, by path.
    pub files: Vec<OutputFile>,
    pub skipped: Vec<SkippedOutput>,
    /// Total size of `files`.
    pub bytes: u64,
    /// `(name, value)` of the secrets the job was granted.
    secrets: Vec<(String, String)>,
    /// Secret shapes in text, and in other files (with the granted values).
    text_scanner: Scanner,
    byte_scanner: ByteScanner,
}

/// A file's content as it may leave the work dir.
#[derive(Debug, Clone)]
pub enum Content {
    /// Text, redacted: these bytes are what is copied or uploaded.
    Text(Vec<u8>),
    /// Not text: the file itself, scanned and found clean.
    Binary,
}

/// One output file, checked.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub content: Content,
    /// sha256 of what is copied or uploaded (the redacted text, or the file).
    pub sha256: String,
    /// Size of what is copied or uploaded.
    pub size: u64,
    /// Kinds of what was redacted (`huggingface_token`, a granted secret's name, …), one per
    /// redaction.
    pub redacted: Vec<String>,
}

/// One file copied into the project.
#[derive(Debug, Clone, Serialize)]
pub struct CopiedFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redacted: Vec<String>,
    /// An existing file was replaced (`force`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replaced: bool,
}

/// What `mlres exp artifacts` did.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactsReport {
    pub exp_id: i64,
    pub attempt: u32,
    /// How the experiment's job ended.
    pub status: Option<String>,
    pub decision: Option<String>,
    /// Where the files are.
    pub dest: PathBuf,
    pub files: Vec<CopiedFile>,
    pub skipped: Vec<SkippedOutput>,
    pub bytes: u64,
}

fn refused(code: &str, message: String) -> EngineError {
    EngineError::Refused {
        code: code.into(),
        message,
    }
}

fn unavailable(code: &str, message: String) -> EngineError {
    EngineError::Outputs {
        code: code.into(),
        message,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Walks the declared outputs below the (canonical) work dir.
struct Walk<'a> {
    root: &'a Path,
    files: Vec<OutputFile>,
    skipped: Vec<SkippedOutput>,
    bytes: u64,
    max_bytes: u64,
}

impl Walk<'_> {
    fn entry(&mut self, exp: i64, entry: &str) -> Result<(), EngineError> {
        let path = self.root.join(entry);
        if let Err(e) = std::fs::symlink_metadata(&path) {
            return Err(unavailable(
                "output_missing",
                if e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "experiment {exp}'s job did not write `{entry}` (declared in `outputs:`) in its work dir; nothing was copied"
                    )
                } else {
                    format!("experiment {exp}'s output `{entry}` cannot be read: {e}")
                },
            ));
        }
        let real = std::fs::canonicalize(&path).map_err(|e| {
            unavailable(
                "output_missing",
                format!(
                    "experiment {exp}'s output `{entry}` cannot be resolved (a broken symlink?): {e}"
                ),
            )
        })?;
        if !real.starts_with(self.root) {
            return Err(refused(
                "output_outside_workdir",
                format!(
                    "experiment {exp}'s output `{entry}` is a symlink that leads outside the job's \
                     work dir; it is not followed and nothing was copied"
                ),
            ));
        }
        self.visit(entry.to_string(), real, &mut Vec::new())
    }

    fn skip(&mut self, path: String, reason: impl Into<String>) {
        self.skipped.push(SkippedOutput {
            path,
            reason: reason.into(),
        });
    }

    fn visit(
        &mut self,
        rel: String,
        real: PathBuf,
        stack: &mut Vec<PathBuf>,
    ) -> Result<(), EngineError> {
        if self.bytes > self.max_bytes {
            // Over the cap already: the total is refused, the rest need not be walked.
            return Ok(());
        }
        let meta = match std::fs::metadata(&real) {
            Ok(m) => m,
            Err(e) => {
                self.skip(rel, format!("cannot be read: {e}"));
                return Ok(());
            }
        };
        if meta.is_file() {
            self.bytes += meta.len();
            self.files.push(OutputFile {
                path: rel,
                source: real,
                size: meta.len(),
            });
            if self.files.len() > MAX_OUTPUT_FILES {
                return Err(refused(
                    "outputs_too_large",
                    format!(
                        "the outputs hold more than {MAX_OUTPUT_FILES} files (at `{}`); nothing was copied",
                        self.files[MAX_OUTPUT_FILES].path
                    ),
                ));
            }
            return Ok(());
        }
        if !meta.is_dir() {
            self.skip(
                rel,
                "not a regular file or directory (a FIFO, socket or device)",
            );
            return Ok(());
        }
        if stack.contains(&real) {
            self.skip(rel, "a symlink loop");
            return Ok(());
        }
        let mut names: Vec<std::ffi::OsString> = match std::fs::read_dir(&real) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect(),
            Err(e) => {
                self.skip(rel, format!("cannot be listed: {e}"));
                return Ok(());
            }
        };
        names.sort();
        stack.push(real.clone());
        for name in names {
            let Some(n) = name.to_str() else {
                self.skip(
                    format!("{rel}/{}", name.to_string_lossy()),
                    "its name is not UTF-8",
                );
                continue;
            };
            let child_rel = format!("{rel}/{n}");
            let child = real.join(&name);
            let child_real = match std::fs::canonicalize(&child) {
                Ok(r) => r,
                Err(_) => {
                    self.skip(child_rel, "a broken symlink");
                    continue;
                }
            };
            if !child_real.starts_with(self.root) {
                self.skip(
                    child_rel,
                    "a symlink that leads outside the job's work dir (not followed)",
                );
                continue;
            }
            self.visit(child_rel, child_real, stack)?;
            if self.files.len() > MAX_OUTPUT_FILES {
                break;
            }
        }
        stack.pop();
        Ok(())
    }
}

impl Engine {
    /// `(name, value)` of the secrets granted to a job (`secrets:` in `## Job`): the values
    /// from the attempt's own spec (what the job was really given) and from this process's
    /// environment. Values shorter than 6 characters are left out: they would match ordinary
    /// text and protect nothing.
    pub fn granted_secrets(&self, attempt_dir: &Path) -> Vec<(String, String)> {
        let Some(job) = &self.project.program.job else {
            return Vec::new();
        };
        let spec_env = mlres_backends::read_spec(attempt_dir)
            .map(|s| s.env)
            .unwrap_or_default();
        let mut out: Vec<(String, String)> = Vec::new();
        for name in &job.secrets {
            for v in [spec_env.get(name), self.cfg.parent_env.get(name)]
                .into_iter()
                .flatten()
            {
                if v.len() >= 6 && !out.iter().any(|(_, x)| x == v) {
                    out.push((name.clone(), v.clone()));
                }
            }
        }
        // Longest first, so a value that contains another is replaced whole.
        out.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        out
    }

    /// Finds experiment `exp_id`'s outputs: the approved template's `outputs:` (or the subset
    /// `only` of them), in its finished local attempt's work dir. Refuses what was not
    /// declared, an unapproved program and totals above `max_bytes`; says plainly why there
    /// is nothing to copy (not finished, never ran, remote, removed by retention, missing).
    pub fn outputs(
        &mut self,
        exp_id: i64,
        only: &[String],
        max_bytes: u64,
    ) -> Result<Outputs, EngineError> {
        let exp = self.experiment_status(exp_id)?;
        require_approval(&self.ledger, &self.project)?;
        let job = self.project.program.job.clone().ok_or_else(|| {
            refused(
                "no_outputs",
                "program.md has no `## Job`, so no outputs are declared".into(),
            )
        })?;
        if job.outputs.is_empty() {
            return Err(refused(
                "no_outputs",
                "the approved job template declares no `outputs:`, so nothing of a job's work dir \
                 may leave it. A human adds them to `## Job` (e.g. `outputs: [checkpoint/, \
                 eval_results.json]`, relative to the job's work dir) and runs `mlres approve`"
                    .into(),
            ));
        }
        let mut declared = Vec::new();
        for o in only {
            let n = mlres_policy::normalize_output_path(o)
                .map_err(|(msg, _)| refused("not_an_output", msg))?;
            if !job.outputs.contains(&n) {
                return Err(refused(
                    "not_an_output",
                    format!(
                        "`{o}` is not one of the approved outputs ({})",
                        job.outputs.join(", ")
                    ),
                ));
            }
            if !declared.contains(&n) {
                declared.push(n);
            }
        }
        if declared.is_empty() {
            declared = job.outputs.clone();
        }
        match exp.state.as_str() {
            state::FINISHED | state::EVALUATED => {}
            state::RELEASED => {
                return Err(unavailable(
                    "never_ran",
                    format!(
                        "experiment {exp_id} never ran (its reservation was released{}); it has no outputs",
                        exp.error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ),
                ));
            }
            s => {
                return Err(unavailable(
                    "not_finished",
                    format!(
                        "experiment {exp_id} is {s}: its job has not finished, so its outputs are \
                         not final. Wait for it (`mlres exp wait {exp_id}`), then copy them"
                    ),
                ));
            }
        }
        // A Slurm job's work dir is its attempt's (on a file system the nodes share): its
        // outputs are there like a local job's.
        if exp.backend == mlres_policy::Backend::HfJobs.as_str() {
            return Err(unavailable(
                "remote_outputs",
                format!(
                    "experiment {exp_id} ran on {}: its files stayed in the job's container and \
                     mlres does not bring them back. Have the job upload what it keeps to a repo \
                     in `output_repos`",
                    exp.backend
                ),
            ));
        }
        let Some(handle) = exp.handle.clone() else {
            return Err(unavailable(
                "never_ran",
                format!("experiment {exp_id} never started a job; it has no outputs"),
            ));
        };
        let attempt_dir = PathBuf::from(&handle);
        if !attempt_dir.exists() {
            let why = if exp.decision.as_deref() == Some("keep") {
                "its attempt directory is missing (kept experiments keep theirs: it was removed \
                 outside mlres)"
                    .to_string()
            } else {
                format!(
                    "it was not kept, and the retention rule removed its attempt directory (every \
                     kept experiment, and the {} most recent settled ones, keep theirs; set \
                     MLRES_KEEP_ATTEMPTS to keep more). Its metric, decision and error are still \
                     in the ledger: `mlres exp status {exp_id}`",
                    self.cfg.keep_attempts
                )
            };
            return Err(unavailable(
                "pruned",
                format!("experiment {exp_id}'s outputs are gone: {why}"),
            ));
        }
        let work_dir = std::fs::canonicalize(attempt_dir.join("work")).map_err(|e| {
            unavailable(
                "output_missing",
                format!("experiment {exp_id}'s work dir cannot be read: {e}"),
            )
        })?;
        let mut walk = Walk {
            root: &work_dir,
            files: Vec::new(),
            skipped: Vec::new(),
            bytes: 0,
            max_bytes,
        };
        for d in &declared {
            walk.entry(exp_id, d)?;
        }
        let (mut files, skipped, bytes) = (walk.files, walk.skipped, walk.bytes);
        if bytes > max_bytes {
            files.sort_by_key(|f| std::cmp::Reverse(f.size));
            let largest: Vec<String> = files
                .iter()
                .take(5)
                .map(|f| format!("{} ({})", f.path, mlres_policy::human_size(f.size)))
                .collect();
            return Err(refused(
                "outputs_too_large",
                format!(
                    "experiment {exp_id}'s outputs hold {} (or more), over the {} cap; nothing was \
                     copied. Largest: {}. Name fewer outputs, or raise the cap with --max-size",
                    mlres_policy::human_size(bytes),
                    mlres_policy::human_size(max_bytes),
                    largest.join(", ")
                ),
            ));
        }
        // Two declared outputs may reach the same file through a symlink: keep one.
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
        let secrets = self.granted_secrets(&attempt_dir);
        let byte_scanner =
            ByteScanner::new().with_literals(secrets.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        Ok(Outputs {
            exp,
            work_dir,
            declared,
            files,
            skipped,
            bytes,
            secrets,
            text_scanner: Scanner::new(),
            byte_scanner,
        })
    }

    /// Reads one output file and checks it: text is redacted (see the module docs), anything
    /// else is scanned and refused if it holds a secret. With `sink`, what may leave the work
    /// dir is also written there (in one pass for large files).
    pub fn prepare_output(
        &self,
        outs: &Outputs,
        f: &OutputFile,
        mut sink: Option<&mut dyn Write>,
    ) -> Result<Prepared, EngineError> {
        let exp = outs.exp.id;
        let read_err = |e: std::io::Error| {
            unavailable(
                "output_unreadable",
                format!("experiment {exp}'s output `{}` cannot be read: {e}", f.path),
            )
        };
        let mut file = std::fs::File::open(&f.source).map_err(read_err)?;
        if f.size <= MAX_TEXT_BYTES {
            let mut bytes = Vec::with_capacity(f.size as usize);
            (&mut file)
                .take(MAX_TEXT_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(read_err)?;
            if !bytes.contains(&0)
                && let Ok(text) = std::str::from_utf8(&bytes)
            {
                let (text, redacted) = redact_text(text, &outs.secrets, &outs.text_scanner);
                let out = text.into_bytes();
                if let Some(w) = sink.as_deref_mut() {
                    w.write_all(&out).map_err(|e| write_err(f, e))?;
                }
                return Ok(Prepared {
                    sha256: hex(&sha2::Sha256::digest(&out)),
                    size: out.len() as u64,
                    content: Content::Text(out),
                    redacted,
                });
            }
            // Not text: scan what was read, as one chunk.
            if let Some((kind, at)) = outs.byte_scanner.find(&bytes) {
                return Err(secret_in_binary(exp, f, &kind, at.start as u64));
            }
            if let Some(w) = sink.as_deref_mut() {
                w.write_all(&bytes).map_err(|e| write_err(f, e))?;
            }
            return Ok(Prepared {
                sha256: hex(&sha2::Sha256::digest(&bytes)),
                size: bytes.len() as u64,
                content: Content::Binary,
                redacted: Vec::new(),
            });
        }
        let scanner = &outs.byte_scanner;
        let overlap = OVERLAP.max(scanner.longest_literal());
        let mut hasher = sha2::Sha256::new();
        let mut window: Vec<u8> = Vec::with_capacity(CHUNK + overlap);
        let mut buf = vec![0u8; CHUNK];
        // Absolute offset of window[0].
        let mut base = 0u64;
        let mut total = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(read_err)?;
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            hasher.update(chunk);
            total += n as u64;
            window.extend_from_slice(chunk);
            if let Some((kind, at)) = scanner.find(&window) {
                return Err(secret_in_binary(exp, f, &kind, base + at.start as u64));
            }
            if let Some(w) = sink.as_deref_mut() {
                w.write_all(chunk).map_err(|e| write_err(f, e))?;
            }
            if window.len() > overlap {
                let cut = window.len() - overlap;
                window.drain(..cut);
                base += cut as u64;
            }
        }
        if total != f.size {
            return Err(unavailable(
                "output_unreadable",
                format!(
                    "experiment {exp}'s output `{}` changed while it was read ({} bytes, then {total})",
                    f.path, f.size
                ),
            ));
        }
        Ok(Prepared {
            content: Content::Binary,
            sha256: hex(&hasher.finalize()),
            size: total,
            redacted: Vec::new(),
        })
    }

    /// `mlres exp artifacts`: copies experiment `exp_id`'s outputs into the project (`dest`,
    /// absolute, or `artifacts/e<id>/`), redacted, all or nothing; `force` replaces existing
    /// files. Records an `artifacts_copied` event with every file and its sha256.
    pub fn copy_artifacts(
        &mut self,
        exp_id: i64,
        dest: Option<&Path>,
        force: bool,
        max_bytes: u64,
    ) -> Result<ArtifactsReport, EngineError> {
        let outs = self.outputs(exp_id, &[], max_bytes)?;
        let dest = self.artifacts_dest(exp_id, dest)?;
        // Every target, checked before anything is written.
        let mut existing = Vec::new();
        for f in &outs.files {
            let target = dest.join(&f.path);
            match std::fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => {
                    return Err(unavailable(
                        "target_exists",
                        format!(
                            "{} is a directory where the output file `{}` would go; nothing was copied",
                            target.display(),
                            f.path
                        ),
                    ));
                }
                Ok(_) => existing.push(f.path.clone()),
                Err(_) => {}
            }
        }
        if !existing.is_empty() && !force {
            let shown: Vec<&str> = existing.iter().take(10).map(String::as_str).collect();
            return Err(unavailable(
                "target_exists",
                format!(
                    "{} file(s) already exist in {} ({}{}); nothing was copied. Pass --force to \
                     replace them, or --to another directory",
                    existing.len(),
                    dest.display(),
                    shown.join(", "),
                    if existing.len() > 10 { ", …" } else { "" }
                ),
            ));
        }
        let mut staged = Staged::default();
        let result = self.stage_all(&outs, &dest, &mut staged);
        let copied = match result.and_then(|copied| staged.place(force).map(|()| copied)) {
            Ok(c) => c,
            Err(e) => {
                staged.abort();
                return Err(e);
            }
        };
        let files: Vec<CopiedFile> = copied
            .into_iter()
            .map(|(f, p)| CopiedFile {
                replaced: existing.contains(&f.path),
                path: f.path,
                bytes: p.size,
                sha256: p.sha256,
                redacted: p.redacted,
            })
            .collect();
        let bytes = files.iter().map(|f| f.bytes).sum();
        let shown_dest = dest
            .strip_prefix(&self.project.root)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| dest.clone());
        self.ledger.append_event(
            Some(&outs.exp.campaign),
            "artifacts_copied",
            &json!({
                "exp_id": exp_id,
                "attempt": outs.exp.attempt,
                "dest": shown_dest,
                "outputs": outs.declared,
                "files": files.iter().map(|f| json!({
                    "path": f.path, "bytes": f.bytes, "sha256": f.sha256,
                    "redactions": f.redacted.len(), "replaced": f.replaced,
                })).collect::<Vec<_>>(),
                "skipped": outs.skipped,
                "bytes": bytes,
            }),
        )?;
        Ok(ArtifactsReport {
            exp_id,
            attempt: outs.exp.attempt,
            status: outs.exp.status.clone(),
            decision: outs.exp.decision.clone(),
            dest,
            files,
            skipped: outs.skipped,
            bytes,
        })
    }

    fn stage_all(
        &self,
        outs: &Outputs,
        dest: &Path,
        staged: &mut Staged,
    ) -> Result<Vec<(OutputFile, Prepared)>, EngineError> {
        let mut copied = Vec::with_capacity(outs.files.len());
        for f in &outs.files {
            let parent = match Path::new(&f.path).parent() {
                Some(p) => dest.join(p),
                None => dest.to_path_buf(),
            };
            staged.make_dirs(&self.project.root, &parent)?;
            let tmp = staged.temp_file(&parent, f)?;
            // O_EXCL: never follows or reuses whatever is at that name.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(|e| write_err(f, e))?;
            staged.files.push((tmp, dest.join(&f.path)));
            let prepared = self.prepare_output(outs, f, Some(&mut file))?;
            file.sync_all().map_err(|e| write_err(f, e))?;
            copied.push((f.clone(), prepared));
        }
        Ok(copied)
    }

    /// Where copies of experiment `exp_id`'s outputs may go: inside the project, not the
    /// project itself, not `runs/` (mlres' exports), no hidden directory (`.git`, `.claude`:
    /// hooks and settings live there), not the state directory. No `..`.
    fn artifacts_dest(&self, exp_id: i64, dest: Option<&Path>) -> Result<PathBuf, EngineError> {
        let root = std::fs::canonicalize(&self.project.root).map_err(EngineError::io(format!(
            "cannot resolve {}",
            self.project.root.display()
        )))?;
        let wanted = match dest {
            Some(d) => d.to_path_buf(),
            None => root.join(ARTIFACTS_DIR).join(format!("e{exp_id}")),
        };
        let not_here = |why: String| {
            refused(
                "artifacts_destination",
                format!(
                    "{} cannot receive artifacts: {why}; nothing was copied",
                    wanted.display()
                ),
            )
        };
        if !wanted.is_absolute() {
            return Err(not_here("not an absolute path".into()));
        }
        if wanted
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return Err(not_here("give it without `.` or `..`".into()));
        }
        // The deepest existing ancestor, resolved; the rest is created.
        let mut existing = wanted.clone();
        let mut rest: Vec<std::ffi::OsString> = Vec::new();
        while std::fs::symlink_metadata(&existing).is_err() {
            match (existing.file_name(), existing.parent()) {
                (Some(n), Some(p)) => {
                    rest.push(n.to_os_string());
                    existing = p.to_path_buf();
                }
                _ => return Err(not_here("no part of it exists".into())),
            }
        }
        let mut resolved = std::fs::canonicalize(&existing)
            .map_err(|e| not_here(format!("cannot resolve {}: {e}", existing.display())))?;
        for n in rest.iter().rev() {
            resolved.push(n);
        }
        let Ok(rel) = resolved.strip_prefix(&root) else {
            return Err(not_here(format!(
                "it is outside the project ({})",
                root.display()
            )));
        };
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.is_empty() {
            return Err(not_here(
                "it is the project itself; name a directory in it, e.g. artifacts/e<id>".into(),
            ));
        }
        if parts[0] == mlres_policy::RUNS_DIR {
            return Err(not_here(format!(
                "`{}/` holds mlres' exports, which it regenerates",
                mlres_policy::RUNS_DIR
            )));
        }
        if let Some(h) = parts.iter().find(|p| p.starts_with('.')) {
            return Err(not_here(format!(
                "`{h}` is a hidden directory (settings, hooks and credentials live in such places)"
            )));
        }
        let state = std::fs::canonicalize(&self.cfg.state_dir)
            .unwrap_or_else(|_| self.cfg.state_dir.clone());
        if resolved.starts_with(&state) || state.starts_with(&resolved) {
            return Err(not_here(format!(
                "it is or holds the mlres state directory ({})",
                state.display()
            )));
        }
        Ok(resolved)
    }
}

fn write_err(f: &OutputFile, e: std::io::Error) -> EngineError {
    unavailable(
        "artifacts_write",
        format!("cannot write the copy of `{}`: {e}", f.path),
    )
}

fn secret_in_binary(exp: i64, f: &OutputFile, kind: &str, at: u64) -> EngineError {
    refused(
        "secret_in_output",
        format!(
            "experiment {exp}'s output `{}` holds a secret ({kind}, at byte {at}) and is not text, \
             so it cannot be redacted without corrupting it; nothing was copied or uploaded. Keep \
             secrets out of what the job writes there",
            f.path
        ),
    )
}

/// Granted values first (`[REDACTED:NAME]`), then every secret-shaped string
/// (`[REDACTED:<kind>]`). Returns the text and one entry per redaction.
pub(crate) fn redact_text(
    text: &str,
    secrets: &[(String, String)],
    scanner: &Scanner,
) -> (String, Vec<String>) {
    let mut out = text.to_string();
    let mut kinds = Vec::new();
    for (name, value) in secrets {
        let n = out.matches(value.as_str()).count();
        if n > 0 {
            out = out.replace(value.as_str(), &format!("[REDACTED:{name}]"));
            kinds.extend(std::iter::repeat_n(name.clone(), n));
        }
    }
    let hits: Vec<_> = scanner
        .scan(&out)
        .into_iter()
        .filter(|h| h.class == Class::Secret)
        .collect();
    if hits.is_empty() {
        return (out, kinds);
    }
    let mut red = String::with_capacity(out.len());
    let mut at = 0;
    for h in hits {
        red.push_str(&out[at..h.start]);
        red.push_str(&format!("[REDACTED:{}]", h.kind));
        kinds.push(h.kind.to_string());
        at = h.end;
    }
    red.push_str(&out[at..]);
    (red, kinds)
}

/// Files written under temporary names and directories created, until they are put in place
/// (or removed again).
#[derive(Default)]
struct Staged {
    /// (temporary, final).
    files: Vec<(PathBuf, PathBuf)>,
    /// Directories this copy created, outermost first.
    dirs: Vec<PathBuf>,
    n: u64,
}

impl Staged {
    /// Creates `dir` and its missing parents. An existing component must be a real directory
    /// (not a symlink), and the result must still resolve inside the project.
    fn make_dirs(&mut self, project: &Path, dir: &Path) -> Result<(), EngineError> {
        let mut missing = Vec::new();
        let mut p = dir.to_path_buf();
        loop {
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => break,
                Ok(_) => {
                    return Err(unavailable(
                        "target_exists",
                        format!(
                            "{} exists and is not a directory (a file or a symlink); nothing was copied",
                            p.display()
                        ),
                    ));
                }
                Err(_) => {
                    missing.push(p.clone());
                    match p.parent() {
                        Some(parent) => p = parent.to_path_buf(),
                        None => break,
                    }
                }
            }
        }
        for d in missing.into_iter().rev() {
            std::fs::create_dir(&d)
                .map_err(EngineError::io(format!("cannot create {}", d.display())))?;
            self.dirs.push(d);
        }
        let project = std::fs::canonicalize(project).unwrap_or_else(|_| project.to_path_buf());
        match std::fs::canonicalize(dir) {
            Ok(r) if r.starts_with(&project) => Ok(()),
            _ => Err(refused(
                "artifacts_destination",
                format!(
                    "{} no longer resolves inside the project; nothing was copied",
                    dir.display()
                ),
            )),
        }
    }

    fn temp_file(&mut self, dir: &Path, f: &OutputFile) -> Result<PathBuf, EngineError> {
        self.n += 1;
        let name = Path::new(&f.path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(dir.join(format!(
            ".{name}.mlres-{}-{}.part",
            std::process::id(),
            self.n
        )))
    }

    /// Puts every staged file in place: without `force` by a hard link that fails if the
    /// name was taken meanwhile, with `force` by a rename over it.
    fn place(&mut self, force: bool) -> Result<(), EngineError> {
        let mut placed = Vec::new();
        for (tmp, target) in &self.files {
            let r = if force {
                std::fs::rename(tmp, target)
            } else {
                std::fs::hard_link(tmp, target).and_then(|()| std::fs::remove_file(tmp))
            };
            if let Err(e) = r {
                // Undo what this copy already placed (without force nothing was replaced).
                if !force {
                    for t in &placed {
                        let _ = std::fs::remove_file(t);
                    }
                }
                return Err(unavailable(
                    "target_exists",
                    format!(
                        "cannot put {} in place: {e}; nothing was copied",
                        target.display()
                    ),
                ));
            }
            placed.push(target.clone());
        }
        self.files.clear();
        self.dirs.clear();
        Ok(())
    }

    /// Removes what was staged and the directories this copy created.
    fn abort(&mut self) {
        for (tmp, _) in &self.files {
            let _ = std::fs::remove_file(tmp);
        }
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        self.files.clear();
        self.dirs.clear();
    }
}
