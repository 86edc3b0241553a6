//! The job's code manifest: which files a job template's `code:` covers, their hashes, the one
//! manifest hash recorded with the approval, and how two manifests differ. The engine walks
//! the project and hashes the files; this module only decides on the resulting lists.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::approval::format_size;

/// First line of the text the manifest hash is computed over.
pub const CODE_MANIFEST_FORMAT: &str = "mlres-code/1";

/// Most bytes a code snapshot may hold: code, not checkpoints or data.
pub const MAX_CODE_BYTES: u64 = 64 << 20;

/// Most files a code snapshot may hold.
pub const MAX_CODE_FILES: usize = 10_000;

/// One file of the job's code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeFile {
    /// Project-relative path with `/` separators, as reached through the `code:` entry.
    pub path: String,
    /// sha256 of the content, lowercase hex.
    pub sha256: String,
    pub size: u64,
    /// Whether the owner may execute it (kept in the snapshot, so `{code}/run.sh` works).
    pub executable: bool,
}

/// The files of the job's code, sorted by path, and the hash that pins them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeManifest {
    /// [`CodeManifest::hash_of`] the files.
    pub sha256: String,
    pub files: Vec<CodeFile>,
}

impl CodeManifest {
    /// The manifest of `files` (sorted by path here).
    pub fn new(mut files: Vec<CodeFile>) -> CodeManifest {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        CodeManifest {
            sha256: CodeManifest::hash_of(&files),
            files,
        }
    }

    /// sha256 over `mlres-code/1` and one line per file in path order: content hash, size,
    /// `x` or `-`, and the path as a JSON string (so no file name can forge a line break).
    pub fn hash_of(files: &[CodeFile]) -> String {
        let mut h = Sha256::new();
        h.update(CODE_MANIFEST_FORMAT.as_bytes());
        h.update(b"\n");
        for f in files {
            let path = serde_json::to_string(&f.path).unwrap_or_default();
            let line = format!(
                "{} {} {} {path}\n",
                f.sha256,
                f.size,
                if f.executable { "x" } else { "-" }
            );
            h.update(line.as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether the recorded hash is the hash of the recorded files, in sorted order without
    /// duplicates (a manifest read back from storage is checked before it is trusted).
    pub fn is_consistent(&self) -> bool {
        self.files.windows(2).all(|w| w[0].path < w[1].path)
            && self.sha256 == CodeManifest::hash_of(&self.files)
    }

    /// Total size of the files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    pub fn file(&self, path: &str) -> Option<&CodeFile> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }
}

/// Refuses a code snapshot over [`MAX_CODE_BYTES`] or [`MAX_CODE_FILES`], naming the largest
/// files so a checkpoint or dataset pinned as "code" is easy to spot.
pub fn check_code_size(files: &[CodeFile]) -> Result<(), String> {
    let total: u64 = files.iter().map(|f| f.size).sum();
    if total <= MAX_CODE_BYTES && files.len() <= MAX_CODE_FILES {
        return Ok(());
    }
    let mut largest: Vec<&CodeFile> = files.iter().collect();
    largest.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    let names: Vec<String> = largest
        .iter()
        .take(5)
        .map(|f| format!("{} ({})", f.path, human_size(f.size)))
        .collect();
    let what = if total > MAX_CODE_BYTES {
        format!(
            "{} in {} files, over the {} a code snapshot may hold",
            human_size(total),
            files.len(),
            format_size(MAX_CODE_BYTES)
        )
    } else {
        format!(
            "{} files, over the {MAX_CODE_FILES} a code snapshot may hold",
            files.len()
        )
    };
    Err(format!(
        "the job's code is {what}; largest: {}. `code` is what the job runs: keep checkpoints, \
         data and environments out of it (declare datasets under the envelope's `datasets`)",
        names.join(", ")
    ))
}

/// sha256 of `data`, lowercase hex (the content hash of one code file).
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A size for people: `512 B`, `3.2 KiB`, `68.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut v = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// How the code now differs from the approved manifest, by path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeChanges {
    /// Files that were not part of the approved code.
    pub added: Vec<String>,
    /// Approved files that are gone.
    pub removed: Vec<String>,
    /// Approved files whose content or executable bit changed.
    pub changed: Vec<String>,
}

impl CodeChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// One line per file, in path order: `changed: train.py`, `added: src/new.py`, …
    pub fn lines(&self) -> Vec<String> {
        let mut all: Vec<(&str, &str)> = self
            .added
            .iter()
            .map(|p| (p.as_str(), "added"))
            .chain(self.removed.iter().map(|p| (p.as_str(), "removed")))
            .chain(self.changed.iter().map(|p| (p.as_str(), "changed")))
            .collect();
        all.sort();
        all.into_iter()
            .map(|(p, what)| format!("{what}: {p}"))
            .collect()
    }
}

/// Files added, removed and changed from `approved` to `now`.
pub fn code_changes(approved: &CodeManifest, now: &CodeManifest) -> CodeChanges {
    let mut c = CodeChanges::default();
    for f in &now.files {
        match approved.file(&f.path) {
            None => c.added.push(f.path.clone()),
            Some(o) if o.sha256 != f.sha256 || o.executable != f.executable => {
                c.changed.push(f.path.clone());
            }
            Some(_) => {}
        }
    }
    for f in &approved.files {
        if now.file(&f.path).is_none() {
            c.removed.push(f.path.clone());
        }
    }
    c
}
