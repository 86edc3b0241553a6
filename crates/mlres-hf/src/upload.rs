//! Multi-file commits the way `huggingface_hub`'s `create_commit` makes them when it does not
//! use `hf_xet` (`_commit_api.py`, `lfs.py`; see `research/api-contracts.md` §4.5–4.6):
//!
//! 1. `POST /api/{type}s/{id}/preupload/{rev}` with `{"files": [{path, sample, size}]}` (256
//!    files per request; `sample` is the base64 of the first 512 bytes): the Hub answers
//!    `regular` or `lfs` per file, whether to ignore it, and the remote oid. Empty files are
//!    always regular; an LFS file whose remote oid is its sha256 is unchanged and dropped.
//! 2. LFS files: `POST {endpoint}/{prefix}{id}.git/info/lfs/objects/batch` (git-lfs media type
//!    both ways, 256 objects per request) with `{"operation": "upload", "transfers": ["basic",
//!    "multipart"], "objects": [{oid, size}], "hash_algo": "sha256", "ref": {"name": rev}}`.
//!    An object without `actions` is already stored. Otherwise the bytes are `PUT` to the
//!    upload URL, or, when its header has a `chunk_size`, to the numbered part URLs followed
//!    by a completion `POST` of `{oid, parts: [{partNumber, etag}]}`. Upload URLs are presigned
//!    storage URLs: they never get the token (as in `huggingface_hub`). The optional verify
//!    action is `POST`ed `{oid, size}` with the token, and only to the Hub endpoint itself.
//! 3. One NDJSON commit: a header line, then per operation `file` (inline base64), `lfsFile`
//!    (`{path, algo: "sha256", oid, size}`) or `deletedFile`.
//!
//! Files are streamed from disk, never held whole in memory, except those committed inline.

use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use base64::Engine as _;
use serde::Serialize;
use sha2::Digest;

use crate::client::{Method, Resp, decode, seg};
use crate::hub::quote_all;
use crate::{CommitInfo, CommitOp, HfClient, HfError, RepoId, RepoType};

/// The git-lfs media type.
const LFS_MEDIA: &str = "application/vnd.git-lfs+json";
/// Files per preupload request and objects per LFS batch request (`huggingface_hub`: 256).
const CHUNK_FILES: usize = 256;
/// Bytes sent as a file's `sample`.
const SAMPLE_BYTES: usize = 512;
/// Largest file committed inline (the Hub sends larger files to LFS).
pub(crate) const MAX_INLINE_BYTES: u64 = 10 << 20;

/// How one file of a commit went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommittedFile {
    /// Path in the repo.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 hex (known for every LFS file, and for files the caller hashed).
    pub sha256: Option<String>,
    /// Stored through LFS (an `lfsFile` line) rather than inline.
    pub lfs: bool,
    /// Its bytes were uploaded to LFS storage by this commit (false: inline, or the Hub
    /// already had the object).
    pub uploaded: bool,
    /// Left out of the commit: `unchanged` (the Hub has this content at this path) or
    /// `ignored` (the Hub's `.gitignore` rules).
    pub skipped: Option<&'static str>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Regular,
    Lfs,
}

enum Source<'a> {
    Bytes(&'a [u8]),
    File {
        local: &'a Path,
        modified: Option<SystemTime>,
    },
}

struct Addition<'a> {
    index: usize,
    path: &'a str,
    size: u64,
    sample: Vec<u8>,
    sha256: Option<String>,
    source: Source<'a>,
    mode: Mode,
    skipped: Option<&'static str>,
    uploaded: bool,
}

fn upload_err(path: &str, reason: impl Into<String>) -> HfError {
    HfError::Upload {
        path: path.into(),
        reason: reason.into(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha2::Sha256::digest(bytes))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn open(path: &str, local: &Path) -> Result<std::fs::File, HfError> {
    std::fs::File::open(local)
        .map_err(|e| upload_err(path, format!("cannot read {}: {e}", local.display())))
}

impl<'a> Addition<'a> {
    fn new(index: usize, op: &'a CommitOp) -> Result<Option<Addition<'a>>, HfError> {
        Ok(Some(match op {
            CommitOp::Add { path, bytes } => Addition {
                index,
                path,
                size: bytes.len() as u64,
                sample: bytes[..bytes.len().min(SAMPLE_BYTES)].to_vec(),
                sha256: None,
                source: Source::Bytes(bytes),
                mode: Mode::Regular,
                skipped: None,
                uploaded: false,
            },
            CommitOp::AddFile {
                path,
                local,
                size,
                sha256,
            } => {
                let f = open(path, local)?;
                let meta = f.metadata().map_err(|e| {
                    upload_err(path, format!("cannot stat {}: {e}", local.display()))
                })?;
                if meta.len() != *size {
                    return Err(upload_err(
                        path,
                        format!(
                            "{} is {} bytes, not the {size} it had when it was hashed",
                            local.display(),
                            meta.len()
                        ),
                    ));
                }
                let mut sample = Vec::with_capacity(SAMPLE_BYTES);
                f.take(SAMPLE_BYTES as u64)
                    .read_to_end(&mut sample)
                    .map_err(|e| {
                        upload_err(path, format!("cannot read {}: {e}", local.display()))
                    })?;
                Addition {
                    index,
                    path,
                    size: *size,
                    sample,
                    sha256: Some(sha256.clone()),
                    source: Source::File {
                        local,
                        modified: meta.modified().ok(),
                    },
                    mode: Mode::Regular,
                    skipped: None,
                    uploaded: false,
                }
            }
            CommitOp::Delete { .. } => return Ok(None),
        }))
    }

    fn sha256(&mut self) -> String {
        if let Some(s) = &self.sha256 {
            return s.clone();
        }
        let s = match &self.source {
            Source::Bytes(b) => sha256_hex(b),
            // Always hashed by the caller (`CommitOp::AddFile` carries it).
            Source::File { .. } => String::new(),
        };
        self.sha256 = Some(s.clone());
        s
    }

    /// The whole content, for an inline commit line.
    fn bytes(&self) -> Result<Vec<u8>, HfError> {
        match &self.source {
            Source::Bytes(b) => Ok(b.to_vec()),
            Source::File { local, .. } => {
                if self.size > MAX_INLINE_BYTES {
                    return Err(HfError::TooLarge {
                        path: self.path.into(),
                        reason: format!(
                            "the Hub asked for it inline, and {} bytes is more than the {MAX_INLINE_BYTES} this client commits inline",
                            self.size
                        ),
                    });
                }
                let mut out = Vec::with_capacity(self.size as usize);
                open(self.path, local)?.read_to_end(&mut out).map_err(|e| {
                    upload_err(self.path, format!("cannot read {}: {e}", local.display()))
                })?;
                if out.len() as u64 != self.size {
                    return Err(upload_err(
                        self.path,
                        "the file changed while it was being committed",
                    ));
                }
                Ok(out)
            }
        }
    }

    /// A file on disk must still be what it was when the commit started.
    fn unchanged_on_disk(&self) -> Result<(), HfError> {
        if let Source::File { local, modified } = &self.source {
            let meta = std::fs::metadata(local).map_err(|e| {
                upload_err(self.path, format!("cannot stat {}: {e}", local.display()))
            })?;
            if meta.len() != self.size || meta.modified().ok() != *modified {
                return Err(upload_err(
                    self.path,
                    "the file changed while it was being uploaded; nothing was committed",
                ));
            }
        }
        Ok(())
    }

    /// A reader over `len` bytes from `offset`.
    fn reader(&self, offset: u64, len: u64) -> Result<Box<dyn Read + '_>, HfError> {
        match &self.source {
            Source::Bytes(b) => {
                let start = offset as usize;
                let end = (offset + len) as usize;
                Ok(Box::new(&b[start..end]))
            }
            Source::File { local, .. } => {
                use std::io::{Seek, SeekFrom};
                let mut f = open(self.path, local)?;
                f.seek(SeekFrom::Start(offset)).map_err(|e| {
                    upload_err(self.path, format!("cannot read {}: {e}", local.display()))
                })?;
                Ok(Box::new(f.take(len)))
            }
        }
    }
}

/// An action's `href` and `header`.
type Href = (String, serde_json::Map<String, serde_json::Value>);

/// One validated upload instruction of the LFS batch answer.
struct Action {
    oid: String,
    upload: Option<Href>,
    verify: Option<String>,
}

fn malformed(what: &str) -> HfError {
    HfError::Decode {
        what: "LFS batch".into(),
        detail: format!("malformed response: {what}"),
    }
}

fn href_of(v: &serde_json::Value, what: &str) -> Result<Option<Href>, HfError> {
    if v.is_null() {
        return Ok(None);
    }
    let href = v
        .get("href")
        .and_then(|h| h.as_str())
        .ok_or_else(|| malformed(&format!("{what} has no href")))?;
    let header = match v.get("header") {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(m)) => m.clone(),
        Some(_) => return Err(malformed(&format!("{what} header is not an object"))),
    };
    Ok(Some((href.to_string(), header)))
}

impl HfClient {
    /// One NDJSON commit of `ops` on `revision`, with LFS uploads for the files the Hub wants
    /// in LFS (see the module docs). Returns the commit and, per added file, how it went.
    pub fn commit_described(
        &self,
        repo: &RepoId,
        revision: &str,
        summary: &str,
        description: &str,
        ops: &[CommitOp],
    ) -> Result<CommitInfo, HfError> {
        let base = format!(
            "/api/{}/{}/{}",
            repo.kind.plural(),
            seg(&repo.namespace)?,
            seg(&repo.name)?
        );
        let mut adds: Vec<Addition<'_>> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if let Some(a) = Addition::new(i, op)? {
                adds.push(a);
            }
        }
        self.fetch_upload_modes(&base, revision, &mut adds)?;
        self.upload_lfs(repo, revision, &mut adds)?;
        for a in &adds {
            a.unchanged_on_disk()?;
        }
        let files: Vec<crate::CommittedFile> = adds
            .iter_mut()
            .map(|a| crate::CommittedFile {
                path: a.path.to_string(),
                size: a.size,
                sha256: if a.mode == Mode::Lfs {
                    Some(a.sha256())
                } else {
                    a.sha256.clone()
                },
                lfs: a.mode == Mode::Lfs,
                uploaded: a.uploaded,
                skipped: a.skipped,
            })
            .collect();
        let kept = ops.len() - adds.iter().filter(|a| a.skipped.is_some()).count();
        if kept == 0 {
            // Like `create_commit`: nothing changed, so no empty commit; the head stands.
            let mut info = self.head_commit(repo, revision)?;
            info.files = files;
            return Ok(info);
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut body = Vec::new();
        let mut line = |v: serde_json::Value| -> Result<(), HfError> {
            serde_json::to_writer(&mut body, &v).map_err(|e| decode("commit body", e))?;
            body.push(b'\n');
            Ok(())
        };
        line(
            serde_json::json!({"key": "header", "value": {"summary": summary, "description": description}}),
        )?;
        let mut by_index = adds
            .iter_mut()
            .map(|a| (a.index, a))
            .collect::<std::collections::BTreeMap<_, _>>();
        for (i, op) in ops.iter().enumerate() {
            match (op, by_index.get_mut(&i)) {
                (CommitOp::Delete { path }, _) => line(serde_json::json!({
                    "key": "deletedFile", "value": {"path": path}
                }))?,
                (_, Some(a)) if a.skipped.is_some() => {}
                (_, Some(a)) if a.mode == Mode::Lfs => {
                    let oid = a.sha256();
                    line(serde_json::json!({
                        "key": "lfsFile",
                        "value": {"path": a.path, "algo": "sha256", "oid": oid, "size": a.size}
                    }))?
                }
                (_, Some(a)) => line(serde_json::json!({
                    "key": "file",
                    "value": {"content": b64.encode(a.bytes()?), "path": a.path, "encoding": "base64"}
                }))?,
                (_, None) => {}
            }
        }
        let url = self
            .endpoint()
            .url(&format!("{base}/commit/{}", quote_all(revision)));
        let resp = self.check(self.send(
            Method::Post,
            &url,
            Some(("application/x-ndjson", &body)),
            true,
            false,
        )?)?;
        let mut info: CommitInfo =
            serde_json::from_slice(&resp.body).map_err(|e| decode("commit", e))?;
        info.files = files;
        Ok(info)
    }

    fn fetch_upload_modes(
        &self,
        base: &str,
        revision: &str,
        adds: &mut [Addition<'_>],
    ) -> Result<(), HfError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let url = self
            .endpoint()
            .url(&format!("{base}/preupload/{}", quote_all(revision)));
        for chunk in adds.chunks_mut(CHUNK_FILES) {
            let files: Vec<serde_json::Value> = chunk
                .iter()
                .map(|a| serde_json::json!({"path": a.path, "sample": b64.encode(&a.sample), "size": a.size}))
                .collect();
            let body = serde_json::to_vec(&serde_json::json!({ "files": files }))
                .map_err(|e| decode("preupload body", e))?;
            let resp = self.check(self.send(
                Method::Post,
                &url,
                Some(("application/json", &body)),
                true,
                true,
            )?)?;
            let v: serde_json::Value =
                serde_json::from_slice(&resp.body).map_err(|e| decode("preupload", e))?;
            let answers =
                v.get("files")
                    .and_then(|f| f.as_array())
                    .ok_or_else(|| HfError::Decode {
                        what: "preupload".into(),
                        detail: "`files` is not a list".into(),
                    })?;
            for a in chunk.iter_mut() {
                let ans = answers
                    .iter()
                    .find(|f| f.get("path").and_then(|p| p.as_str()) == Some(a.path))
                    .ok_or_else(|| HfError::Decode {
                        what: "preupload".into(),
                        detail: format!("no answer for {}", a.path),
                    })?;
                a.mode = match ans.get("uploadMode").and_then(|m| m.as_str()) {
                    Some("lfs") => Mode::Lfs,
                    Some("regular") => Mode::Regular,
                    other => {
                        return Err(HfError::Decode {
                            what: "preupload".into(),
                            detail: format!(
                                "uploadMode {other:?} for {} (expected lfs or regular)",
                                a.path
                            ),
                        });
                    }
                };
                // Empty files cannot go to LFS storage: always inline.
                if a.size == 0 {
                    a.mode = Mode::Regular;
                }
                if ans.get("shouldIgnore").and_then(|s| s.as_bool()) == Some(true) {
                    a.skipped = Some("ignored");
                } else if a.mode == Mode::Lfs
                    && let Some(remote) = ans.get("oid").and_then(|o| o.as_str())
                    && remote == a.sha256()
                {
                    a.skipped = Some("unchanged");
                }
            }
        }
        Ok(())
    }

    fn upload_lfs(
        &self,
        repo: &RepoId,
        revision: &str,
        adds: &mut [Addition<'_>],
    ) -> Result<(), HfError> {
        let mut todo: Vec<&mut Addition<'_>> = adds
            .iter_mut()
            .filter(|a| a.mode == Mode::Lfs && a.skipped.is_none())
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let prefix = match repo.kind {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
            RepoType::Space => "spaces/",
        };
        let url = self.endpoint().url(&format!(
            "/{prefix}{}/{}.git/info/lfs/objects/batch",
            seg(&repo.namespace)?,
            seg(&repo.name)?
        ));
        for chunk in todo.chunks_mut(CHUNK_FILES) {
            let objects: Vec<serde_json::Value> = chunk
                .iter_mut()
                .map(|a| serde_json::json!({"oid": a.sha256(), "size": a.size}))
                .collect();
            let body = serde_json::to_vec(&serde_json::json!({
                "operation": "upload",
                "transfers": ["basic", "multipart"],
                "objects": objects,
                "hash_algo": "sha256",
                "ref": {"name": revision},
            }))
            .map_err(|e| decode("LFS batch body", e))?;
            let resp = self.check(self.retrying(true, || {
                self.request(
                    "POST",
                    &url,
                    &[("accept", LFS_MEDIA), ("content-type", LFS_MEDIA)],
                    true,
                    Some(&body),
                )
            })?)?;
            let actions = parse_batch(&resp)?;
            for a in chunk.iter_mut() {
                let oid = a.sha256();
                let act = actions
                    .iter()
                    .find(|x| x.oid == oid)
                    .ok_or_else(|| malformed(&format!("no object for {}", a.path)))?;
                self.lfs_upload(a, act)?;
            }
        }
        Ok(())
    }

    fn lfs_upload(&self, a: &mut Addition<'_>, act: &Action) -> Result<(), HfError> {
        let Some((href, header)) = &act.upload else {
            // Already stored: nothing to send.
            return Ok(());
        };
        let href = self.storage_url(a.path, href)?;
        match header.get("chunk_size") {
            Some(cs) => {
                let chunk: u64 = cs
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .or_else(|| cs.as_u64())
                    .filter(|c| *c > 0)
                    .ok_or_else(|| malformed(&format!("chunk_size {cs} is not an integer")))?;
                self.multipart(a, &href, header, chunk)?;
            }
            None => {
                let resp = self.retrying(true, || {
                    let mut r = a.reader(0, a.size)?;
                    self.request_reader("PUT", &href, &[], &mut r, a.size)
                })?;
                self.check(resp)
                    .map_err(|e| upload_err(a.path, format!("upload failed: {e}")))?;
            }
        }
        a.uploaded = true;
        if let Some(verify) = &act.verify {
            let verify = self.fixed_href(verify);
            if !self.endpoint().same_origin(&verify) {
                return Err(upload_err(
                    a.path,
                    format!(
                        "the LFS verify URL leaves the Hub endpoint ({}); the token is never sent elsewhere",
                        verify.split('?').next().unwrap_or("")
                    ),
                ));
            }
            let body = serde_json::to_vec(&serde_json::json!({"oid": act.oid, "size": a.size}))
                .map_err(|e| decode("LFS verify body", e))?;
            self.check(self.retrying(true, || {
                self.request(
                    "POST",
                    &verify,
                    &[("content-type", "application/json")],
                    true,
                    Some(&body),
                )
            })?)
            .map_err(|e| upload_err(a.path, format!("LFS verify failed: {e}")))?;
        }
        Ok(())
    }

    fn multipart(
        &self,
        a: &Addition<'_>,
        complete: &str,
        header: &serde_json::Map<String, serde_json::Value>,
        chunk: u64,
    ) -> Result<(), HfError> {
        let mut parts: Vec<(u64, String)> = Vec::new();
        for (k, v) in header {
            if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) {
                let n: u64 = k.parse().map_err(|_| malformed("part number"))?;
                let url = v
                    .as_str()
                    .ok_or_else(|| malformed(&format!("part {k} is not a URL")))?;
                parts.push((n, self.storage_url(a.path, url)?));
            }
        }
        parts.sort_by_key(|(n, _)| *n);
        if parts.len() as u64 != a.size.div_ceil(chunk) {
            return Err(upload_err(
                a.path,
                format!(
                    "invalid server response to upload a large LFS file: {} part URLs for {} bytes in chunks of {chunk}",
                    parts.len(),
                    a.size
                ),
            ));
        }
        let mut etags = Vec::with_capacity(parts.len());
        for (i, (_, url)) in parts.iter().enumerate() {
            let offset = chunk * i as u64;
            let len = chunk.min(a.size - offset);
            let resp = self.retrying(true, || {
                let mut r = a.reader(offset, len)?;
                self.request_reader("PUT", url, &[], &mut r, len)
            })?;
            let resp = self
                .check(resp)
                .map_err(|e| upload_err(a.path, format!("upload of part {} failed: {e}", i + 1)))?;
            let etag = resp
                .header("etag")
                .filter(|e| !e.is_empty())
                .ok_or_else(|| {
                    upload_err(a.path, format!("part {} came back without an ETag", i + 1))
                })?;
            etags.push(serde_json::json!({"partNumber": i + 1, "etag": etag}));
        }
        let body = serde_json::to_vec(
            &serde_json::json!({"oid": a.sha256.clone().unwrap_or_default(), "parts": etags}),
        )
        .map_err(|e| decode("LFS completion body", e))?;
        self.check(self.retrying(true, || {
            self.request(
                "POST",
                complete,
                &[("accept", LFS_MEDIA), ("content-type", LFS_MEDIA)],
                false,
                Some(&body),
            )
        })?)
        .map_err(|e| {
            upload_err(
                a.path,
                format!("completing the multipart upload failed: {e}"),
            )
        })?;
        Ok(())
    }

    /// `fix_hf_endpoint_in_url`: the Hub writes its own URLs with the default endpoint; behind a
    /// custom endpoint they are rewritten to it.
    fn fixed_href(&self, href: &str) -> String {
        let base = self.endpoint().as_str();
        for default in [crate::DEFAULT_ENDPOINT, crate::endpoint::STAGING_ENDPOINT] {
            if base != crate::DEFAULT_ENDPOINT
                && base != crate::endpoint::STAGING_ENDPOINT
                && let Some(rest) = href.strip_prefix(default)
            {
                return format!("{base}{rest}");
            }
        }
        href.to_string()
    }

    /// A storage URL the bytes may go to (without the token): the Hub endpoint itself, or any
    /// https URL (the presigned storage URLs the Hub hands out).
    fn storage_url(&self, path: &str, href: &str) -> Result<String, HfError> {
        let href = self.fixed_href(href);
        if self.endpoint().same_origin(&href) || href.starts_with("https://") {
            Ok(href)
        } else {
            Err(upload_err(
                path,
                format!(
                    "refused LFS upload URL {}: neither the Hub endpoint nor https",
                    href.split('?').next().unwrap_or("")
                ),
            ))
        }
    }

    /// The head commit of `revision`, as `create_commit` reports a commit it did not need.
    fn head_commit(&self, repo: &RepoId, revision: &str) -> Result<CommitInfo, HfError> {
        let url = self.endpoint().url(&format!(
            "/api/{}/{}/{}/revision/{}",
            repo.kind.plural(),
            seg(&repo.namespace)?,
            seg(&repo.name)?,
            quote_all(revision)
        ));
        let resp = self.check(self.send(Method::Get, &url, None, true, true)?)?;
        let v: serde_json::Value =
            serde_json::from_slice(&resp.body).map_err(|e| decode("repo info", e))?;
        let sha = v
            .get("sha")
            .and_then(|s| s.as_str())
            .ok_or_else(|| HfError::Decode {
                what: "repo info".into(),
                detail: "no sha".into(),
            })?
            .to_string();
        let prefix = match repo.kind {
            RepoType::Model => String::new(),
            k => format!("/{}", k.plural()),
        };
        Ok(CommitInfo {
            commit_url: format!(
                "{}{prefix}/{}/commit/{sha}",
                self.endpoint().as_str(),
                repo.id()
            ),
            commit_oid: sha,
            files: Vec::new(),
        })
    }
}

fn parse_batch(resp: &Resp) -> Result<Vec<Action>, HfError> {
    let v: serde_json::Value =
        serde_json::from_slice(&resp.body).map_err(|e| decode("LFS batch", e))?;
    let objects = v
        .get("objects")
        .and_then(|o| o.as_array())
        .ok_or_else(|| malformed("`objects` is not a list"))?;
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for o in objects {
        let oid = o
            .get("oid")
            .and_then(|x| x.as_str())
            .ok_or_else(|| malformed("an object has no oid"))?;
        if o.get("size").and_then(|s| s.as_u64()).is_none() {
            return Err(malformed("an object has no integer size"));
        }
        if let Some(e) = o.get("error") {
            let msg = e.get("message").and_then(|m| m.as_str());
            let code = e.get("code").and_then(|c| c.as_i64());
            let (Some(msg), Some(code)) = (msg, code) else {
                return Err(malformed("an object error has no message or code"));
            };
            errors.push(format!(
                "Encountered error for file with OID {oid}: `{msg}` ({code})"
            ));
            continue;
        }
        let actions = o.get("actions").cloned().unwrap_or(serde_json::Value::Null);
        out.push(Action {
            oid: oid.to_string(),
            upload: href_of(
                actions.get("upload").unwrap_or(&serde_json::Value::Null),
                "upload",
            )?,
            verify: href_of(
                actions.get("verify").unwrap_or(&serde_json::Value::Null),
                "verify",
            )?
            .map(|(h, _)| h),
        });
    }
    if !errors.is_empty() {
        return Err(HfError::Upload {
            path: "(LFS batch)".into(),
            reason: format!("LFS batch API returned errors:\n{}", errors.join("\n")),
        });
    }
    Ok(out)
}
