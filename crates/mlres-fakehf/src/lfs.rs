//! Git LFS as the Hub serves it to `huggingface_hub` without `hf_xet` (`lfs.py`): the batch
//! endpoint `POST /{prefix}{ns}/{name}.git/info/lfs/objects/batch`, upload URLs that stand in
//! for S3 presigned URLs (a basic `PUT`, or numbered part `PUT`s plus a completion `POST` for
//! multipart), and `POST …/objects/verify`. Objects are stored per repo; an NDJSON commit's
//! `lfsFile` line may only name an object uploaded to that repo.
//!
//! What a real server checks and the fake checks too: auth and write rights on the batch and
//! verify calls, the git-lfs media type, `operation`/`hash_algo`, well-formed objects (errors
//! per object, as the batch API reports them). Like S3, the upload URLs carry their own
//! signature and refuse an `Authorization` header. The fake is stricter than S3 in one way:
//! an upload whose size or sha256 does not match its oid is refused, so a client that hashes
//! one thing and uploads another fails loudly.

use std::collections::BTreeMap;

use crate::http::{Request, Response};
use crate::state::{State, TokenConfig, can_write, sha256_hex};
use crate::{caller, hub};

/// The git-lfs media type (request `Accept` and `Content-Type`, response `Content-Type`).
pub(crate) const LFS_MEDIA: &str = "application/vnd.git-lfs+json";
/// Largest object the batch endpoint accepts (the Hub's per-file limit).
const MAX_OBJECT: u64 = 50 << 30;

/// An object uploaded to a repo's LFS store.
#[derive(Clone, Debug)]
pub struct LfsObject {
    /// Content.
    pub bytes: Vec<u8>,
    /// Verified with `…/objects/verify`.
    pub verified: bool,
}

/// An upload the batch endpoint handed out, keyed by its signature.
#[derive(Clone, Debug)]
pub struct PendingUpload {
    /// `(plural type, "ns/name")`.
    pub repo: (String, String),
    /// sha256 hex.
    pub oid: String,
    /// Announced size.
    pub size: u64,
    /// Multipart chunk size (`None`: basic transfer).
    pub chunk_size: Option<u64>,
    /// Parts received: number → (bytes, etag).
    pub parts: BTreeMap<u32, (Vec<u8>, String)>,
}

/// An error the way git-lfs servers answer (`{"message": …}`), with `X-Error-Message` too.
fn lfs_error(status: u16, msg: &str) -> Response {
    let mut r = Response::json(status, &serde_json::json!({"message": msg}));
    r.headers = vec![
        ("Content-Type".into(), LFS_MEDIA.into()),
        ("X-Error-Message".into(), msg.replace(['\r', '\n'], " ")),
    ];
    r
}

fn lfs_json(v: &serde_json::Value) -> Response {
    let mut r = Response::json(200, v);
    r.headers = vec![("Content-Type".into(), LFS_MEDIA.into())];
    r
}

fn is_oid(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn media_is_lfs(v: Option<&str>) -> bool {
    v.is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim() == LFS_MEDIA))
}

/// The caller must be known and may write the repo, which must exist.
fn writer(
    req: &Request,
    state: &State,
    kind: &str,
    ns: &str,
    name: &str,
) -> Result<TokenConfig, Response> {
    let t =
        caller(req, state)?.ok_or_else(|| lfs_error(401, "Authorization header is required"))?;
    let id = format!("{ns}/{name}");
    if !state
        .lock()
        .repos
        .contains_key(&(kind.to_string(), id.clone()))
    {
        return Err(Response::error(
            404,
            Some("RepoNotFound"),
            "Repository not found",
        ));
    }
    if !can_write(&t, ns, Some(&id), "repo") {
        return Err(lfs_error(
            403,
            &format!("You don't have the rights to write to {id}"),
        ));
    }
    Ok(t)
}

/// `POST /{prefix}{ns}/{name}.git/info/lfs/objects/{batch|verify}`.
pub(crate) fn objects(
    req: &Request,
    state: &State,
    kind: &str,
    ns: &str,
    name: &str,
    what: &str,
) -> Response {
    if let Err(r) = writer(req, state, kind, ns, name) {
        return r;
    }
    match what {
        "batch" => batch(req, state, kind, &format!("{ns}/{name}")),
        "verify" => verify(req, state, kind, &format!("{ns}/{name}")),
        _ => lfs_error(404, "no such LFS route"),
    }
}

fn batch(req: &Request, state: &State, kind: &str, id: &str) -> Response {
    if !media_is_lfs(req.header("accept")) {
        return lfs_error(406, &format!("Accept must be {LFS_MEDIA}"));
    }
    if !media_is_lfs(req.header("content-type")) {
        return lfs_error(415, &format!("Content-Type must be {LFS_MEDIA}"));
    }
    let v: serde_json::Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return lfs_error(422, &format!("invalid JSON: {e}")),
    };
    if v["operation"] != "upload" {
        return lfs_error(422, "only the upload operation is supported");
    }
    if !v["hash_algo"].is_null() && v["hash_algo"] != "sha256" {
        return lfs_error(409, "unsupported hash algorithm");
    }
    let transfers: Vec<&str> = v["transfers"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_str()).collect())
        .unwrap_or_else(|| vec!["basic"]);
    if !transfers.contains(&"basic") {
        return lfs_error(422, "the basic transfer is required");
    }
    let multipart_ok = transfers.contains(&"multipart");
    if let Some(r) = v.get("ref")
        && r["name"] != "main"
    {
        return lfs_error(
            404,
            &format!("Invalid rev id: {}", r["name"].as_str().unwrap_or("?")),
        );
    }
    let Some(objects) = v["objects"].as_array() else {
        return lfs_error(422, "objects must be a list");
    };
    let base = req.base_url();
    let mut g = state.lock();
    let (threshold, chunk) = (g.lfs_multipart_threshold, g.lfs_chunk_size.max(1));
    let mut out = Vec::with_capacity(objects.len());
    let mut any_multipart = false;
    for o in objects {
        let oid = o["oid"].as_str().unwrap_or_default().to_string();
        let size = o["size"].as_u64();
        let Some(size) = size.filter(|_| is_oid(&oid)) else {
            out.push(serde_json::json!({
                "oid": oid, "size": o["size"].as_i64().unwrap_or(0),
                "error": {"code": 422, "message": "Invalid object: oid must be a sha256 hex and size a non-negative integer"},
            }));
            continue;
        };
        if size > MAX_OBJECT {
            out.push(serde_json::json!({
                "oid": oid, "size": size,
                "error": {"code": 422, "message": "Object is larger than the 50 GB limit"},
            }));
            continue;
        }
        let key = (kind.to_string(), id.to_string(), oid.clone());
        if g.lfs_objects.contains_key(&key) {
            // Already stored: no actions.
            out.push(serde_json::json!({"oid": oid, "size": size}));
            continue;
        }
        g.lfs_signatures += 1;
        let sig = sha256_hex(
            format!(
                "{}:{oid}:{:?}",
                g.lfs_signatures,
                std::time::SystemTime::now()
            )
            .as_bytes(),
        );
        let upload_base = format!("{base}/lfs-store/{sig}");
        let multipart = multipart_ok && size >= threshold && size > chunk;
        let upload = if multipart {
            any_multipart = true;
            let parts = size.div_ceil(chunk);
            let mut header = serde_json::Map::new();
            header.insert("chunk_size".into(), chunk.to_string().into());
            for n in 1..=parts {
                header.insert(
                    format!("{n:05}"),
                    format!("{upload_base}/part/{n}?X-Amz-Signature={sig}").into(),
                );
            }
            serde_json::json!({"href": format!("{upload_base}/complete?X-Amz-Signature={sig}"), "header": header})
        } else {
            serde_json::json!({"href": format!("{upload_base}?X-Amz-Signature={sig}"), "header": {}})
        };
        let prefix = hub::url_prefix(kind);
        out.push(serde_json::json!({
            "oid": oid, "size": size, "authenticated": true,
            "actions": {
                "upload": upload,
                "verify": {"href": format!("{base}/{prefix}{id}.git/info/lfs/objects/verify"), "header": {}},
            },
        }));
        g.lfs_pending.insert(
            sig,
            PendingUpload {
                repo: (kind.to_string(), id.to_string()),
                oid,
                size,
                chunk_size: multipart.then_some(chunk),
                parts: BTreeMap::new(),
            },
        );
    }
    lfs_json(&serde_json::json!({
        "transfer": if any_multipart { "multipart" } else { "basic" },
        "objects": out,
    }))
}

fn verify(req: &Request, state: &State, kind: &str, id: &str) -> Response {
    let v: serde_json::Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return lfs_error(422, &format!("invalid JSON: {e}")),
    };
    let (Some(oid), Some(size)) = (v["oid"].as_str(), v["size"].as_u64()) else {
        return lfs_error(422, "verify needs oid and size");
    };
    let mut g = state.lock();
    match g
        .lfs_objects
        .get_mut(&(kind.to_string(), id.to_string(), oid.to_string()))
    {
        Some(o) if o.bytes.len() as u64 == size => {
            o.verified = true;
            lfs_json(&serde_json::json!({"message": "ok"}))
        }
        Some(_) => lfs_error(422, "size does not match the uploaded object"),
        None => lfs_error(404, "Object not found"),
    }
}

/// The stand-ins for presigned URLs: `PUT /lfs-store/{sig}`, `PUT /lfs-store/{sig}/part/{n}`,
/// `POST /lfs-store/{sig}/complete`.
pub(crate) fn store(req: &Request, state: &State, rest: &[&str]) -> Response {
    let Some((&sig, rest)) = rest.split_first() else {
        return s3_error(404, "NoSuchUpload", "no upload");
    };
    if req.query_one("X-Amz-Signature") != Some(sig) {
        return s3_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided",
        );
    }
    if req.header("authorization").is_some() {
        return s3_error(
            400,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
        );
    }
    let mut g = state.lock();
    let Some(up) = g.lfs_pending.get(sig).cloned() else {
        return s3_error(404, "NoSuchUpload", "The specified upload does not exist");
    };
    match (req.method.as_str(), rest) {
        ("PUT", []) if up.chunk_size.is_none() => {
            if let Err(r) = check_object(&up, &req.body) {
                return r;
            }
            g.lfs_pending.remove(sig);
            let etag = etag(&req.body);
            g.lfs_objects.insert(
                (up.repo.0, up.repo.1, up.oid),
                LfsObject {
                    bytes: req.body.clone(),
                    verified: false,
                },
            );
            Response {
                status: 200,
                headers: vec![("ETag".into(), etag)],
                body: vec![],
            }
        }
        ("PUT", ["part", n]) if up.chunk_size.is_some() => {
            let chunk = up.chunk_size.unwrap_or(1);
            let parts = up.size.div_ceil(chunk);
            let Some(n) = n
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=parts).contains(&u64::from(*n)))
            else {
                return s3_error(400, "InvalidPart", "part number out of range");
            };
            let want = if u64::from(n) == parts {
                up.size - chunk * (parts - 1)
            } else {
                chunk
            };
            if req.body.len() as u64 != want {
                return s3_error(
                    400,
                    "IncompleteBody",
                    &format!("part {n} must be {want} bytes, got {}", req.body.len()),
                );
            }
            let etag = etag(&req.body);
            if let Some(p) = g.lfs_pending.get_mut(sig) {
                p.parts.insert(n, (req.body.clone(), etag.clone()));
            }
            Response {
                status: 200,
                headers: vec![("ETag".into(), etag)],
                body: vec![],
            }
        }
        ("POST", ["complete"]) if up.chunk_size.is_some() => {
            if !media_is_lfs(req.header("content-type")) {
                return lfs_error(415, &format!("Content-Type must be {LFS_MEDIA}"));
            }
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            if v["oid"] != up.oid.as_str() {
                return lfs_error(422, "oid does not match the upload");
            }
            let listed: Vec<(u64, String)> = v["parts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    (
                        p["partNumber"].as_u64().unwrap_or(0),
                        p["etag"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            let expected: Vec<(u64, String)> = up
                .parts
                .iter()
                .map(|(n, (_, e))| (u64::from(*n), e.clone()))
                .collect();
            let parts = up.size.div_ceil(up.chunk_size.unwrap_or(1));
            if expected.len() as u64 != parts || listed != expected {
                return lfs_error(
                    400,
                    "the parts listed do not match the parts uploaded (every part, in order, with its ETag)",
                );
            }
            let bytes: Vec<u8> = up
                .parts
                .values()
                .flat_map(|(b, _)| b.iter().copied())
                .collect();
            if let Err(r) = check_object(&up, &bytes) {
                return r;
            }
            g.lfs_pending.remove(sig);
            g.lfs_objects.insert(
                (up.repo.0, up.repo.1, up.oid),
                LfsObject {
                    bytes,
                    verified: false,
                },
            );
            lfs_json(&serde_json::json!({"message": "ok"}))
        }
        _ => s3_error(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource",
        ),
    }
}

fn etag(bytes: &[u8]) -> String {
    format!("\"{}\"", &sha256_hex(bytes)[..32])
}

fn check_object(up: &PendingUpload, bytes: &[u8]) -> Result<(), Response> {
    if bytes.len() as u64 != up.size {
        return Err(s3_error(
            400,
            "IncompleteBody",
            &format!(
                "You did not provide the number of bytes specified ({} of {})",
                bytes.len(),
                up.size
            ),
        ));
    }
    if sha256_hex(bytes) != up.oid {
        return Err(s3_error(
            400,
            "BadDigest",
            "The sha256 of the uploaded bytes is not the object's oid",
        ));
    }
    Ok(())
}

/// S3's XML error document.
fn s3_error(status: u16, code: &str, msg: &str) -> Response {
    Response {
        status,
        headers: vec![("Content-Type".into(), "application/xml".into())],
        body: format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{msg}</Message></Error>"
        )
        .into_bytes(),
    }
}
