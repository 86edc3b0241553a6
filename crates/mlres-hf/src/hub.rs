use serde::{Deserialize, Serialize};

/// Kind of Hub repo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoType {
    /// A model repo.
    Model,
    /// A dataset repo.
    Dataset,
    /// A Space.
    Space,
}

impl RepoType {
    /// `models`, `datasets` or `spaces` (API path segment).
    pub fn plural(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
        }
    }

    /// `model`, `dataset` or `space` (create body).
    pub fn singular(self) -> &'static str {
        match self {
            RepoType::Model => "model",
            RepoType::Dataset => "dataset",
            RepoType::Space => "space",
        }
    }

    /// Parse `model|dataset|space` (also the plurals).
    pub fn parse(s: &str) -> Option<RepoType> {
        match s {
            "model" | "models" => Some(RepoType::Model),
            "dataset" | "datasets" => Some(RepoType::Dataset),
            "space" | "spaces" => Some(RepoType::Space),
            _ => None,
        }
    }
}

/// A repo: kind plus `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct RepoId {
    /// Kind.
    pub kind: RepoType,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl RepoId {
    /// Parse `ns/name`, `datasets/ns/name`, `spaces/ns/name` or `models/ns/name`; `kind` is
    /// the default when there is no prefix. Each part must be `[A-Za-z0-9._-]{1,96}`, not
    /// `.`/`..`.
    pub fn parse(s: &str, kind: RepoType) -> Option<RepoId> {
        let parts: Vec<&str> = s.split('/').collect();
        let (kind, ns, name) = match parts.as_slice() {
            [ns, name] => (kind, *ns, *name),
            [k, ns, name] => (RepoType::parse(k)?, *ns, *name),
            _ => return None,
        };
        let ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 96
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        (ok(ns) && ok(name)).then(|| RepoId {
            kind,
            namespace: ns.into(),
            name: name.into(),
        })
    }

    /// `ns/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl std::fmt::Display for RepoId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            RepoType::Model => write!(f, "{}/{}", self.namespace, self.name),
            k => write!(f, "{}/{}/{}", k.plural(), self.namespace, self.name),
        }
    }
}

/// File or folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TreeEntryKind {
    /// A file.
    File,
    /// A folder.
    Directory,
}

/// LFS pointer info of a tree entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LfsInfo {
    /// sha256.
    pub oid: String,
    /// Size in bytes.
    pub size: u64,
}

/// One entry of `GET /api/{type}s/{id}/tree/{rev}/{path}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct TreeEntry {
    /// File or folder.
    #[serde(rename = "type")]
    pub kind: TreeEntryKind,
    /// Path from the repo root.
    pub path: String,
    /// Git blob (or tree) id.
    #[serde(default)]
    pub oid: String,
    /// Size in bytes (0 for folders).
    #[serde(default)]
    pub size: u64,
    /// Present for LFS files.
    #[serde(default)]
    pub lfs: Option<LfsInfo>,
}

/// A downloaded file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileContent {
    /// Bytes.
    pub bytes: Vec<u8>,
    /// `ETag` (quotes and `W/` stripped).
    pub etag: Option<String>,
    /// `X-Repo-Commit`.
    pub commit: Option<String>,
}

/// One operation of a commit.
#[derive(Clone, PartialEq, Eq)]
pub enum CommitOp {
    /// Add or replace a file from memory.
    Add {
        /// Path in the repo.
        path: String,
        /// Content.
        bytes: Vec<u8>,
    },
    /// Add or replace a file streamed from disk. The caller has hashed it: its size and
    /// sha256 are what the Hub is told, and the commit fails if the file changes meanwhile.
    AddFile {
        /// Path in the repo.
        path: String,
        /// The local file.
        local: std::path::PathBuf,
        /// Its size in bytes.
        size: u64,
        /// Its sha256, lower-case hex.
        sha256: String,
    },
    /// Delete a file.
    Delete {
        /// Path in the repo.
        path: String,
    },
}

impl std::fmt::Debug for CommitOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommitOp::Add { path, bytes } => write!(f, "Add({path}, {} bytes)", bytes.len()),
            CommitOp::AddFile {
                path, local, size, ..
            } => write!(f, "AddFile({path} <- {}, {size} bytes)", local.display()),
            CommitOp::Delete { path } => write!(f, "Delete({path})"),
        }
    }
}

impl CommitOp {
    /// The path it touches.
    pub fn path(&self) -> &str {
        match self {
            CommitOp::Add { path, .. }
            | CommitOp::AddFile { path, .. }
            | CommitOp::Delete { path } => path,
        }
    }
}

/// What a commit returned.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitInfo {
    /// New commit id.
    pub commit_oid: String,
    /// Web URL of the commit.
    #[serde(default)]
    pub commit_url: String,
    /// How each added file went (filled in by the client, not part of the Hub's answer).
    #[serde(skip)]
    pub files: Vec<crate::CommittedFile>,
}

/// Percent-encode everything except unreserved characters (Python's `quote(s, safe="")`).
pub(crate) fn quote_all(s: &str) -> String {
    quote(s, "")
}

/// Percent-encode, keeping unreserved characters and those in `safe`.
pub(crate) fn quote(s: &str, safe: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~') || safe.contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
