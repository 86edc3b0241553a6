//! Content manifests: per-file sha256, size, row count and schema of a dataset, so the
//! ledger can pin what a human approved and the loop can refuse when it changed.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::read::{self, Format, ReadError};

/// One data file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the manifest root when inside it, else absolute.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    /// Rows read (`None` for files in a format mlres does not read).
    pub rows: Option<u64>,
    /// Rows that could not be parsed.
    pub skipped: u64,
    /// Sorted column names seen.
    pub schema: Vec<String>,
}

/// The content manifest of a set of files and directories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: Vec<FileEntry>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
    move |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Expands directories to the files below them (sorted, hidden entries skipped; symlinks
/// followed, each directory walked once so a symlink loop ends).
fn expand(
    path: &Path,
    out: &mut Vec<PathBuf>,
    seen: &mut std::collections::HashSet<PathBuf>,
) -> Result<(), ReadError> {
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    if let Some(kind) = read::special_kind(&meta) {
        return Err(read::not_regular(path, kind));
    }
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    if !seen.insert(std::fs::canonicalize(path).map_err(io_err(path))?) {
        return Ok(());
    }
    let mut children: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io_err(path))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    children.sort();
    for c in children {
        expand(&c, out, seen)?;
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<(String, u64), ReadError> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io_err(path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, n))
}

/// Computes the manifest of `paths` (files, or directories expanded to their files);
/// paths inside `root` are recorded relative to it.
pub fn compute(paths: &[PathBuf], root: &Path) -> Result<Manifest, ReadError> {
    compute_with(paths, root, true)
}

/// Like [`compute`]; with `rows: false` only paths, sizes and hashes are computed (rows are
/// `None`, schemas empty), which is enough for [`same_content`] and much faster.
pub fn compute_with(paths: &[PathBuf], root: &Path, rows: bool) -> Result<Manifest, ReadError> {
    let mut files = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in paths {
        expand(p, &mut files, &mut seen)?;
    }
    let mut out = Vec::new();
    for f in files {
        let (sha256, bytes) = sha256_file(&f)?;
        let (rows, skipped, schema) = if rows && Format::from_path(&f).is_some() {
            let mut rows = 0u64;
            let mut skipped = 0u64;
            let mut cols = BTreeSet::new();
            for row in read::open(&f)? {
                match row {
                    Ok(r) => {
                        rows += 1;
                        for k in r.keys() {
                            if !cols.contains(k) {
                                cols.insert(k.clone());
                            }
                        }
                    }
                    Err(_) => skipped += 1,
                }
            }
            (Some(rows), skipped, cols.into_iter().collect())
        } else {
            (None, 0, Vec::new())
        };
        let path = f
            .strip_prefix(root)
            .unwrap_or(&f)
            .to_string_lossy()
            .into_owned();
        out.push(FileEntry {
            path,
            sha256,
            bytes,
            rows,
            skipped,
            schema,
        });
    }
    Ok(Manifest { files: out })
}

/// Whether two manifests list the same files with the same sizes and hashes (rows and
/// schemas are derived from the content, so they need not be compared).
pub fn same_content(a: &Manifest, b: &Manifest) -> bool {
    a.files.len() == b.files.len()
        && a.files
            .iter()
            .zip(&b.files)
            .all(|(x, y)| x.path == y.path && x.sha256 == y.sha256 && x.bytes == y.bytes)
}

/// Human-readable differences from `old` to `new` (empty when equal).
pub fn diff(old: &Manifest, new: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    for n in &new.files {
        match old.files.iter().find(|o| o.path == n.path) {
            None => out.push(format!("{}: added", n.path)),
            Some(o) if o != n => {
                let mut parts = Vec::new();
                if o.sha256 != n.sha256 {
                    // Char-wise: a manifest read back from the ledger may hold anything.
                    let short = |h: &str| h.chars().take(12).collect::<String>();
                    parts.push(format!(
                        "content changed (sha256 {}… → {}…)",
                        short(&o.sha256),
                        short(&n.sha256)
                    ));
                }
                if o.bytes != n.bytes {
                    parts.push(format!("size {} → {} bytes", o.bytes, n.bytes));
                }
                if o.rows != n.rows {
                    let show = |r: Option<u64>| r.map_or("?".to_string(), |r| r.to_string());
                    parts.push(format!("rows {} → {}", show(o.rows), show(n.rows)));
                }
                if o.schema != n.schema {
                    parts.push(format!(
                        "columns [{}] → [{}]",
                        o.schema.join(", "),
                        n.schema.join(", ")
                    ));
                }
                if parts.is_empty() {
                    parts.push("changed".into());
                }
                out.push(format!("{}: {}", n.path, parts.join(", ")));
            }
            Some(_) => {}
        }
    }
    for o in &old.files {
        if !new.files.iter().any(|n| n.path == o.path) {
            out.push(format!("{}: removed", o.path));
        }
    }
    out
}
