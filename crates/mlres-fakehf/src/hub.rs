//! Hub endpoints: repo create, repo info, tree (cursor pagination, `%2F`, LFS info), resolve,
//! preupload (regular or lfs, decided like the Hub) and NDJSON commits (`file`, `lfsFile`,
//! `deletedFile`, `deletedFolder`). The LFS store itself is in `lfs.rs`.

use base64::Engine as _;

use crate::http::{Request, Response};
use crate::jobs::enc;
use crate::state::{RepoFile, State, TokenConfig, can_read, can_write, new_repo, sha256_hex};
use crate::{caller, require_caller};

/// `""` for models, `datasets/` or `spaces/`: how repo URLs outside `/api` start.
pub(crate) fn url_prefix(kind: &str) -> &'static str {
    match kind {
        "datasets" => "datasets/",
        "spaces" => "spaces/",
        _ => "",
    }
}

/// Extensions the `.gitattributes` of a new Hub repo sends to LFS.
const LFS_EXTENSIONS: &[&str] = &[
    "7z",
    "arrow",
    "bin",
    "bz2",
    "ckpt",
    "ftz",
    "gz",
    "h5",
    "joblib",
    "mlmodel",
    "model",
    "msgpack",
    "npy",
    "npz",
    "onnx",
    "ot",
    "parquet",
    "pb",
    "pickle",
    "pkl",
    "pt",
    "pth",
    "rar",
    "safetensors",
    "tar",
    "tflite",
    "tgz",
    "wasm",
    "xz",
    "zip",
    "zst",
];

/// Whether the Hub wants a file in LFS: matched by the default `.gitattributes` patterns
/// (extensions above, `*.lfs.*`, `*.tar.*`, `*tfevents*`, `saved_model/**/*`), binary (a NUL
/// byte in its sample), or at least `threshold` bytes. Empty files are always regular.
fn wants_lfs(path: &str, sample: &[u8], size: u64, threshold: u64) -> bool {
    if size == 0 {
        return false;
    }
    let base = path.rsplit('/').next().unwrap_or(path);
    let ext = base.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    LFS_EXTENSIONS.contains(&ext)
        || base.contains(".lfs.")
        || base.contains(".tar.")
        || base.contains("tfevents")
        || path.starts_with("saved_model/")
        || sample.contains(&0)
        || size >= threshold
}

fn preupload(req: &Request, state: &State, kind: &str, id: &str) -> Response {
    let b64 = base64::engine::general_purpose::STANDARD;
    let v: serde_json::Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return Response::error(400, None, &format!("Invalid JSON: {e}")),
    };
    let Some(files) = v["files"].as_array() else {
        return Response::error(400, None, "files must be a list");
    };
    if files.len() > 256 {
        return Response::error(400, None, "at most 256 files per preupload request");
    }
    let g = state.lock();
    let threshold = g.lfs_threshold;
    let repo = &g.repos[&(kind.to_string(), id.to_string())];
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let (Some(path), Some(size), Some(sample)) =
            (f["path"].as_str(), f["size"].as_u64(), f["sample"].as_str())
        else {
            return Response::error(
                400,
                None,
                "each file needs path (string), size (integer) and sample (base64)",
            );
        };
        let Ok(sample) = b64.decode(sample) else {
            return Response::error(400, None, &format!("{path}: sample is not base64"));
        };
        if sample.len() > 512 {
            return Response::error(400, None, &format!("{path}: sample is more than 512 bytes"));
        }
        let lfs = wants_lfs(path, &sample, size, threshold);
        // The remote oid: what the client compares its own with to drop unchanged files (the
        // sha256 for LFS files, the blob id for regular ones).
        let oid = repo.files.get(path).map(|existing| {
            if existing.lfs {
                sha256_hex(&existing.bytes)
            } else {
                blob_oid(&existing.bytes)
            }
        });
        out.push(serde_json::json!({
            "path": path,
            "uploadMode": if lfs { "lfs" } else { "regular" },
            "shouldIgnore": false,
            "oid": oid,
        }));
    }
    Response::json(200, &serde_json::json!({"files": out}))
}

/// The fake's stand-in for a git blob id (40 hex; not git's sha1).
fn blob_oid(bytes: &[u8]) -> String {
    sha256_hex(bytes)[..40].to_string()
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

pub(crate) fn create_repo(req: &Request, state: &State) -> Response {
    let t = match require_caller(req, state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let v: serde_json::Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return Response::error(400, None, &format!("Invalid JSON: {e}")),
    };
    let Some(name) = v["name"].as_str().filter(|n| name_ok(n)) else {
        return Response::error(422, None, "name is required ([A-Za-z0-9._-], at most 96)");
    };
    let ns = v["organization"].as_str().unwrap_or(&t.user).to_string();
    let kind = match v["type"].as_str().unwrap_or("model") {
        "model" => "models",
        "dataset" => "datasets",
        "space" => "spaces",
        other => return Response::error(422, None, &format!("unknown repo type {other:?}")),
    };
    let private = match (
        v.get("private").and_then(|p| p.as_bool()),
        v["visibility"].as_str(),
    ) {
        (_, Some("private" | "protected")) => true,
        (_, Some("public")) => false,
        (Some(p), None) => p,
        (None, None) => false,
        (_, Some(other)) => {
            return Response::error(422, None, &format!("unknown visibility {other:?}"));
        }
    };
    let id = format!("{ns}/{name}");
    if !can_write(&t, &ns, Some(&id), "repo") {
        return Response::error(
            403,
            None,
            &format!("You don't have the rights to create a repo under {ns}"),
        );
    }
    let mut g = state.lock();
    let key = (kind.to_string(), id.clone());
    if g.repos.contains_key(&key) {
        return Response::error(409, None, "You already created this repo");
    }
    g.repos.insert(key, new_repo(&id, private));
    let prefix = if kind == "models" {
        String::new()
    } else {
        format!("{kind}/")
    };
    Response::json(
        200,
        &serde_json::json!({"url": format!("{}/{prefix}{id}", req.base_url()), "name": id}),
    )
}

/// Check read access; the error mimics the Hub (401 anonymous, 404 otherwise).
fn readable(
    state: &State,
    t: Option<&TokenConfig>,
    kind: &str,
    ns: &str,
    name: &str,
) -> Result<(), Response> {
    let g = state.lock();
    let Some(repo) = g.repos.get(&(kind.to_string(), format!("{ns}/{name}"))) else {
        let status = if t.is_none() { 401 } else { 404 };
        return Err(Response::error(
            status,
            Some("RepoNotFound"),
            "Repository not found",
        ));
    };
    if repo.private && !t.is_some_and(|t| can_read(t, ns)) {
        let status = if t.is_none() { 401 } else { 404 };
        return Err(Response::error(
            status,
            Some("RepoNotFound"),
            "Repository not found",
        ));
    }
    Ok(())
}

pub(crate) fn api(
    req: &Request,
    state: &State,
    kind: &str,
    ns: &str,
    name: &str,
    rest: &[&str],
) -> Response {
    let t = match caller(req, state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(r) = readable(state, t.as_ref(), kind, ns, name) {
        return r;
    }
    let id = format!("{ns}/{name}");
    match (req.method.as_str(), rest) {
        ("GET", [] | ["revision", "main"]) => {
            let g = state.lock();
            let repo = &g.repos[&(kind.to_string(), id.clone())];
            Response::json(
                200,
                &serde_json::json!({
                    "id": id, "private": repo.private, "sha": repo.commit,
                    "siblings": repo.files.keys().map(|p| serde_json::json!({"rfilename": p})).collect::<Vec<_>>(),
                }),
            )
        }
        ("GET", ["tree", rev, path @ ..]) => tree(req, state, kind, &id, rev, &path.join("/")),
        ("GET", ["revision", rev]) => Response::error(
            404,
            Some("RevisionNotFound"),
            &format!("Invalid rev id: {rev}"),
        ),
        ("POST", ["preupload", rev]) => {
            if let Some(r) = write_check(t.as_ref(), ns, &id, rev) {
                return r;
            }
            preupload(req, state, kind, &id)
        }
        ("POST", ["commit", rev]) => {
            if let Some(r) = write_check(t.as_ref(), ns, &id, rev) {
                return r;
            }
            commit(req, state, kind, &id)
        }
        _ => Response::error(404, None, "no such repo route"),
    }
}

fn write_check(t: Option<&TokenConfig>, ns: &str, id: &str, rev: &str) -> Option<Response> {
    if rev != "main" {
        return Some(Response::error(
            404,
            Some("RevisionNotFound"),
            &format!("Invalid rev id: {rev}"),
        ));
    }
    match t {
        None => Some(Response::error(
            401,
            None,
            "Authorization header is required",
        )),
        Some(t) if !can_write(t, ns, Some(id), "repo") => Some(Response::error(
            403,
            None,
            &format!("You don't have the rights to write to {id}"),
        )),
        _ => None,
    }
}

fn tree(req: &Request, state: &State, kind: &str, id: &str, rev: &str, path: &str) -> Response {
    if rev != "main" {
        return Response::error(
            404,
            Some("RevisionNotFound"),
            &format!("Invalid rev id: {rev}"),
        );
    }
    let recursive = req
        .query_one("recursive")
        .is_some_and(|r| r == "true" || r == "True" || r == "1");
    let path = path.trim_matches('/');
    let g = state.lock();
    let repo = &g.repos[&(kind.to_string(), id.to_string())];
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    if !path.is_empty() && !repo.files.keys().any(|p| p.starts_with(&prefix)) {
        return Response::error(
            404,
            Some("EntryNotFound"),
            &format!("{path} does not exist on \"main\""),
        );
    }
    let mut entries: Vec<serde_json::Value> = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for (p, f) in &repo.files {
        let Some(rest) = p.strip_prefix(&prefix) else {
            continue;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        for i in 0..parts.len() - 1 {
            if recursive || i == 0 {
                dirs.insert(format!("{prefix}{}", parts[..=i].join("/")));
            }
        }
        if parts.len() == 1 || recursive {
            let mut e = serde_json::json!({"type": "file", "oid": blob_oid(&f.bytes), "size": f.bytes.len(), "path": p});
            if f.lfs {
                e["lfs"] = serde_json::json!({"oid": sha256_hex(&f.bytes), "size": f.bytes.len(), "pointerSize": 134});
            }
            entries.push(e);
        }
    }
    for d in dirs {
        entries.push(serde_json::json!({"type": "directory", "oid": &sha256_hex(d.as_bytes())[..40], "size": 0, "path": d}));
    }
    entries.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    let page = g.tree_page_size;
    drop(g);
    let start: usize = req
        .query_one("cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let end = (start + page).min(entries.len());
    let mut r = Response::json(
        200,
        &serde_json::Value::Array(entries.get(start..end).unwrap_or(&[]).to_vec()),
    );
    if end < entries.len() {
        let q: Vec<String> = req
            .query
            .iter()
            .filter(|(k, _)| k != "cursor")
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .chain(std::iter::once(format!("cursor={end}")))
            .collect();
        r = r.with_header(
            "Link",
            &format!(
                "<{}{}?{}>; rel=\"next\"",
                req.base_url(),
                req.path,
                q.join("&")
            ),
        );
    }
    r
}

pub(crate) fn resolve(
    req: &Request,
    state: &State,
    kind: &str,
    ns: &str,
    name: &str,
    rest: &[&str],
) -> Response {
    let t = match caller(req, state) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(r) = readable(state, t.as_ref(), kind, ns, name) {
        return r;
    }
    let Some((rev, path)) = rest.split_first() else {
        return Response::error(404, Some("EntryNotFound"), "no file");
    };
    if *rev != "main" {
        return Response::error(
            404,
            Some("RevisionNotFound"),
            &format!("Invalid rev id: {rev}"),
        );
    }
    let path = path.join("/");
    let g = state.lock();
    let repo = &g.repos[&(kind.to_string(), format!("{ns}/{name}"))];
    match repo.files.get(&path) {
        Some(f) => Response {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "application/octet-stream".into()),
                (
                    "ETag".into(),
                    format!("\"{}\"", &sha256_hex(&f.bytes)[..40]),
                ),
                ("X-Repo-Commit".into(), repo.commit.clone()),
            ],
            body: f.bytes.clone(),
        },
        None => Response::error(
            404,
            Some("EntryNotFound"),
            &format!("{path} does not exist on \"main\""),
        ),
    }
}

fn commit(req: &Request, state: &State, kind: &str, id: &str) -> Response {
    if !req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-ndjson"))
    {
        return Response::error(400, None, "Content-Type must be application/x-ndjson");
    }
    let text = String::from_utf8_lossy(&req.body);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: serde_json::Value = match lines.next().map(serde_json::from_str) {
        Some(Ok(v)) => v,
        _ => return Response::error(400, None, "first line must be the header"),
    };
    if header["key"] != "header" || !header["value"]["summary"].is_string() {
        return Response::error(
            400,
            None,
            "first line must be {\"key\":\"header\",\"value\":{\"summary\":...}}",
        );
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut g = state.lock();
    let Some(repo) = g.repos.get(&(kind.to_string(), id.to_string())) else {
        return Response::error(404, Some("RepoNotFound"), "Repository not found");
    };
    let mut files = repo.files.clone();
    for (n, line) in lines.enumerate() {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => return Response::error(400, None, &format!("line {}: {e}", n + 2)),
        };
        let path = v["value"]["path"].as_str().unwrap_or("").to_string();
        if path.is_empty()
            || path.starts_with('/')
            || path.split('/').any(|p| p == ".." || p.is_empty())
        {
            return Response::error(422, None, &format!("line {}: invalid path {path:?}", n + 2));
        }
        match v["key"].as_str() {
            Some("file") => {
                if v["value"]["encoding"] != "base64" {
                    return Response::error(422, None, "only base64 encoding is supported");
                }
                match b64.decode(v["value"]["content"].as_str().unwrap_or("")) {
                    Ok(bytes) => {
                        files.insert(path, RepoFile { bytes, lfs: false });
                    }
                    Err(e) => return Response::error(422, None, &format!("bad base64: {e}")),
                }
            }
            Some("lfsFile") => {
                let val = &v["value"];
                if val["algo"] != "sha256" {
                    return Response::error(
                        422,
                        None,
                        &format!("line {}: lfsFile algo must be sha256", n + 2),
                    );
                }
                let oid = val["oid"].as_str().unwrap_or_default();
                let key = (kind.to_string(), id.to_string(), oid.to_string());
                let Some(obj) = g.lfs_objects.get(&key) else {
                    return Response::error(
                        422,
                        None,
                        &format!(
                            "Your push was rejected because an LFS pointer pointed to a file that does not exist: {path} ({oid})"
                        ),
                    );
                };
                if let Some(size) = val.get("size").filter(|s| !s.is_null())
                    && size.as_u64() != Some(obj.bytes.len() as u64)
                {
                    return Response::error(
                        422,
                        None,
                        &format!("line {}: {path}: size does not match the LFS object", n + 2),
                    );
                }
                files.insert(
                    path,
                    RepoFile {
                        bytes: obj.bytes.clone(),
                        lfs: true,
                    },
                );
            }
            Some("deletedFile") => {
                if files.remove(&path).is_none() {
                    return Response::error(
                        404,
                        Some("EntryNotFound"),
                        &format!("A file with this name doesn't exist: {path}"),
                    );
                }
            }
            Some("deletedFolder") => {
                let pre = format!("{}/", path.trim_end_matches('/'));
                files.retain(|p, _| !p.starts_with(&pre));
            }
            Some(other) => {
                return Response::error(422, None, &format!("unsupported operation {other:?}"));
            }
            None => return Response::error(400, None, "missing key"),
        }
    }
    let Some(repo) = g.repos.get_mut(&(kind.to_string(), id.to_string())) else {
        return Response::error(404, Some("RepoNotFound"), "Repository not found");
    };
    repo.files = files;
    repo.commits += 1;
    repo.commit = sha256_hex(format!("{}{}", repo.commit, text).as_bytes())[..40].to_string();
    let oid = repo.commit.clone();
    let prefix = if kind == "models" {
        String::new()
    } else {
        format!("{kind}/")
    };
    Response::json(
        200,
        &serde_json::json!({
            "success": true, "commitOid": oid,
            "commitUrl": format!("{}/{prefix}{id}/commit/{oid}", req.base_url()),
            "pullRequestUrl": null, "hookOutput": "",
        }),
    )
}
