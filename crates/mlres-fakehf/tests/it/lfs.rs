//! The fake's Hub uploads over raw HTTP, shaped like `huggingface_hub` without `hf_xet`:
//! preupload decides regular or LFS like the Hub, the git-lfs batch endpoint hands out
//! presigned-style upload URLs (basic or multipart), verify, and NDJSON commits whose
//! `lfsFile` lines name uploaded objects. Every refusal has the status and shape a client sees.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use mlres_fakehf::{CANARY_TOKEN, FakeConfig, FakeHf, sha256_hex};
use serde_json::{Value, json};

const LFS: &str = "application/vnd.git-lfs+json";

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// One request with the given extra headers (`Authorization` only when `token` is set).
fn send(
    f: &FakeHf,
    method: &str,
    target: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let url = f.url();
    let addr = url.trim_start_matches("http://");
    // Absolute URLs from the fake's answers are reduced to their path and query.
    let target = target.strip_prefix(&url).unwrap_or(target);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    Reply {
        status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        headers: head.to_string(),
        body: body.to_string(),
    }
}

fn fake(cfg: FakeConfig) -> FakeHf {
    let f = FakeHf::start(FakeConfig {
        work_root: Some(env!("CARGO_TARGET_TMPDIR").into()),
        ..cfg
    })
    .unwrap();
    f.state()
        .seed_file("models", "alice/m", "README.md", b"# m\n");
    f
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn batch(f: &FakeHf, objects: Value, transfers: Value) -> Reply {
    let body = json!({"operation": "upload", "transfers": transfers, "objects": objects,
                      "hash_algo": "sha256", "ref": {"name": "main"}});
    send(
        f,
        "POST",
        "/alice/m.git/info/lfs/objects/batch",
        Some(CANARY_TOKEN),
        &[("Accept", LFS), ("Content-Type", LFS)],
        body.to_string().as_bytes(),
    )
}

fn commit(f: &FakeHf, lines: &[Value]) -> Reply {
    let mut body =
        json!({"key": "header", "value": {"summary": "s", "description": ""}}).to_string();
    body.push('\n');
    for l in lines {
        body.push_str(&l.to_string());
        body.push('\n');
    }
    send(
        f,
        "POST",
        "/api/models/alice/m/commit/main",
        Some(CANARY_TOKEN),
        &[("Content-Type", "application/x-ndjson")],
        body.as_bytes(),
    )
}

#[test]
fn preupload_answers_lfs_for_binary_large_and_gitattributes_files() {
    let f = fake(FakeConfig {
        lfs_threshold: 1000,
        ..FakeConfig::default()
    });
    let files = json!({"files": [
        {"path": "config.json", "sample": b64(b"{\"a\": 1}"), "size": 8},
        {"path": "ckpt/model.safetensors", "sample": b64(b"{\"__metadata__\""), "size": 15},
        {"path": "weights.data", "sample": b64(&[1, 0, 2]), "size": 3},
        {"path": "big.txt", "sample": b64(b"aaaa"), "size": 1000},
        {"path": "events.out.tfevents.1", "sample": b64(b"x"), "size": 1},
        {"path": "empty.bin", "sample": "", "size": 0},
    ]});
    let r = send(
        &f,
        "POST",
        "/api/models/alice/m/preupload/main",
        Some(CANARY_TOKEN),
        &[("Content-Type", "application/json")],
        files.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let modes: Vec<(String, String)> = r.json()["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["shouldIgnore"], false);
            (
                f["path"].as_str().unwrap().to_string(),
                f["uploadMode"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("config.json", "regular"),
        ("ckpt/model.safetensors", "lfs"),
        ("weights.data", "lfs"),
        ("big.txt", "lfs"),
        ("events.out.tfevents.1", "lfs"),
        ("empty.bin", "regular"),
    ];
    assert_eq!(
        modes,
        want.map(|(p, m)| (p.to_string(), m.to_string())).to_vec()
    );
    // An existing file's oid comes back; an unknown one is null.
    let r = send(
        &f,
        "POST",
        "/api/models/alice/m/preupload/main",
        Some(CANARY_TOKEN),
        &[("Content-Type", "application/json")],
        json!({"files": [{"path": "README.md", "sample": b64(b"# m\n"), "size": 4},
                         {"path": "new.md", "sample": b64(b"x"), "size": 1}]})
        .to_string()
        .as_bytes(),
    );
    let v = r.json();
    assert!(v["files"][0]["oid"].is_string(), "{v}");
    assert!(v["files"][1]["oid"].is_null(), "{v}");
    // Malformed bodies, anonymous callers and other revisions are refused.
    for (body, status) in [
        (json!({"files": [{"path": "a", "size": 1}]}), 400),
        (json!({"nofiles": []}), 400),
    ] {
        let r = send(
            &f,
            "POST",
            "/api/models/alice/m/preupload/main",
            Some(CANARY_TOKEN),
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, status, "{body}: {}", r.body);
    }
    let r = send(
        &f,
        "POST",
        "/api/models/alice/m/preupload/dev",
        Some(CANARY_TOKEN),
        &[],
        b"{}",
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("X-Error-Code").as_deref(),
        Some("RevisionNotFound")
    );
}

#[test]
fn basic_lfs_upload_verify_and_commit() {
    let f = fake(FakeConfig::default());
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let oid = sha256_hex(&data);
    let objects = json!([{"oid": oid, "size": data.len()}]);
    // The git-lfs media type is required both ways.
    let r = send(
        &f,
        "POST",
        "/alice/m.git/info/lfs/objects/batch",
        Some(CANARY_TOKEN),
        &[("Content-Type", LFS)],
        b"{}",
    );
    assert_eq!(r.status, 406, "{}", r.body);
    assert!(r.json()["message"].as_str().unwrap().contains("Accept"));
    // No token, a foreign repo, a missing repo.
    let r = send(
        &f,
        "POST",
        "/alice/m.git/info/lfs/objects/batch",
        None,
        &[("Accept", LFS), ("Content-Type", LFS)],
        b"{}",
    );
    assert_eq!(r.status, 401);
    f.state().seed_file("models", "bob/x", "a", b"a");
    let r = send(
        &f,
        "POST",
        "/bob/x.git/info/lfs/objects/batch",
        Some(CANARY_TOKEN),
        &[("Accept", LFS), ("Content-Type", LFS)],
        b"{}",
    );
    assert_eq!(r.status, 403);
    let r = send(
        &f,
        "POST",
        "/alice/none.git/info/lfs/objects/batch",
        Some(CANARY_TOKEN),
        &[("Accept", LFS), ("Content-Type", LFS)],
        b"{}",
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.header("X-Error-Code").as_deref(), Some("RepoNotFound"));

    let r = batch(&f, objects.clone(), json!(["basic", "multipart"]));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("Content-Type").as_deref(), Some(LFS));
    let v = r.json();
    assert_eq!(v["transfer"], "basic");
    let o = &v["objects"][0];
    assert_eq!(
        (o["oid"].as_str(), o["size"].as_u64()),
        (Some(oid.as_str()), Some(5000))
    );
    let href = o["actions"]["upload"]["href"].as_str().unwrap().to_string();
    let verify = o["actions"]["verify"]["href"].as_str().unwrap().to_string();
    assert!(o["actions"]["upload"]["header"].get("chunk_size").is_none());
    assert!(
        verify.ends_with("/alice/m.git/info/lfs/objects/verify"),
        "{verify}"
    );

    // A presigned URL refuses a token, wrong bytes, and a commit cannot name the object yet.
    let r = send(&f, "PUT", &href, Some(CANARY_TOKEN), &[], &data);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("Only one auth mechanism"), "{}", r.body);
    let r = send(&f, "PUT", &href, None, &[], &data[1..]);
    assert_eq!(r.status, 400);
    let mut wrong = data.clone();
    wrong[0] ^= 1;
    let r = send(&f, "PUT", &href, None, &[], &wrong);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("BadDigest"), "{}", r.body);
    let lfs_line = json!({"key": "lfsFile", "value": {"path": "model.bin", "algo": "sha256", "oid": oid, "size": 5000}});
    let r = commit(&f, std::slice::from_ref(&lfs_line));
    assert_eq!(r.status, 422);
    assert!(r.body.contains("LFS pointer"), "{}", r.body);

    let r = send(&f, "PUT", &href, None, &[], &data);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("ETag").is_some());
    // Verify needs the token and the right size.
    let vbody = json!({"oid": oid, "size": 5000}).to_string();
    let r = send(
        &f,
        "POST",
        &verify,
        None,
        &[("Content-Type", "application/json")],
        vbody.as_bytes(),
    );
    assert_eq!(r.status, 401);
    let bad = json!({"oid": oid, "size": 4999}).to_string();
    let r = send(
        &f,
        "POST",
        &verify,
        Some(CANARY_TOKEN),
        &[("Content-Type", "application/json")],
        bad.as_bytes(),
    );
    assert_eq!(r.status, 422);
    let r = send(
        &f,
        "POST",
        &verify,
        Some(CANARY_TOKEN),
        &[("Content-Type", "application/json")],
        vbody.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // A wrong size in the commit line is refused; the right one commits an LFS file.
    let r = commit(
        &f,
        &[
            json!({"key": "lfsFile", "value": {"path": "model.bin", "algo": "sha256", "oid": oid, "size": 1}}),
        ],
    );
    assert_eq!(r.status, 422);
    let r = commit(&f, &[lfs_line]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["commitOid"].as_str().unwrap().len(), 40);
    let snap = f.state().snapshot();
    let files = snap["repos"][0]["files"].as_array().unwrap();
    let m = files.iter().find(|x| x["path"] == "model.bin").unwrap();
    assert_eq!(
        (m["lfs"].as_bool(), m["sha256"].as_str()),
        (Some(true), Some(oid.as_str()))
    );
    assert_eq!(snap["lfsObjects"][0]["verified"], true);
    // The tree lists it with its LFS pointer info.
    let r = send(
        &f,
        "GET",
        "/api/models/alice/m/tree/main?recursive=true",
        Some(CANARY_TOKEN),
        &[],
        b"",
    );
    let tree = r.json();
    let e = tree
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "model.bin")
        .unwrap();
    assert_eq!(e["lfs"]["oid"], oid.as_str());
    // A second batch for a stored object has no actions: nothing to upload.
    let v = batch(&f, objects, json!(["basic"])).json();
    assert!(v["objects"][0].get("actions").is_none(), "{v}");
    // Bad objects get per-object errors, the rest of the batch still answers.
    let v = batch(
        &f,
        json!([{"oid": "nothex", "size": 1}, {"oid": sha256_hex(b"z"), "size": 1}]),
        json!(["basic"]),
    )
    .json();
    assert_eq!(v["objects"][0]["error"]["code"], 422, "{v}");
    assert!(
        v["objects"][1]["actions"]["upload"]["href"].is_string(),
        "{v}"
    );
    // Only the basic transfer, or nothing, as a git-lfs server does.
    assert_eq!(batch(&f, json!([]), json!(["xet"])).status, 422);
}

#[test]
fn multipart_lfs_upload_needs_every_part_and_its_etag() {
    let f = fake(FakeConfig {
        lfs_multipart_threshold: 1000,
        lfs_chunk_size: 400,
        ..FakeConfig::default()
    });
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 256) as u8).collect();
    let oid = sha256_hex(&data);
    // Without "multipart" among the transfers the upload stays basic.
    let v = batch(&f, json!([{"oid": oid, "size": 1000}]), json!(["basic"])).json();
    assert!(
        v["objects"][0]["actions"]["upload"]["header"]
            .get("chunk_size")
            .is_none()
    );
    let v = batch(
        &f,
        json!([{"oid": oid, "size": 1000}]),
        json!(["basic", "multipart"]),
    )
    .json();
    assert_eq!(v["transfer"], "multipart");
    let up = &v["objects"][0]["actions"]["upload"];
    let header = up["header"].as_object().unwrap();
    assert_eq!(header["chunk_size"], "400");
    let parts: Vec<&str> = ["00001", "00002", "00003"]
        .iter()
        .map(|k| header[*k].as_str().unwrap())
        .collect();
    assert_eq!(header.len(), 4, "{header:?}");
    let complete = up["href"].as_str().unwrap();
    let mut etags = Vec::new();
    for (i, url) in parts.iter().enumerate() {
        let chunk = &data[i * 400..((i + 1) * 400).min(1000)];
        let r = send(&f, "PUT", url, None, &[], chunk);
        assert_eq!(r.status, 200, "{}", r.body);
        etags.push(r.header("ETag").unwrap());
    }
    // A part of the wrong size is refused.
    assert_eq!(
        send(&f, "PUT", parts[0], None, &[], &data[..10]).status,
        400
    );
    let payload = |etags: &[String]| {
        json!({"oid": oid, "parts": etags.iter().enumerate().map(|(i, e)| json!({"partNumber": i + 1, "etag": e})).collect::<Vec<_>>()})
            .to_string()
    };
    let r = send(
        &f,
        "POST",
        complete,
        None,
        &[("Content-Type", LFS)],
        payload(&etags[..2]).as_bytes(),
    );
    assert_eq!(r.status, 400, "a missing part: {}", r.body);
    let mut wrong = etags.clone();
    wrong[1] = "\"nope\"".into();
    let r = send(
        &f,
        "POST",
        complete,
        None,
        &[("Content-Type", LFS)],
        payload(&wrong).as_bytes(),
    );
    assert_eq!(r.status, 400);
    let r = send(
        &f,
        "POST",
        complete,
        None,
        &[("Accept", LFS), ("Content-Type", LFS)],
        payload(&etags).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = commit(
        &f,
        &[
            json!({"key": "lfsFile", "value": {"path": "w.safetensors", "algo": "sha256", "oid": oid, "size": 1000}}),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let snap = f.state().snapshot();
    let w = snap["repos"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["path"] == "w.safetensors")
        .unwrap()
        .clone();
    assert_eq!(w["sha256"], oid.as_str());
    // The request log keeps JSON bodies, and for uploads only their size and hash.
    let log = snap["requests"].as_array().unwrap();
    let put = log
        .iter()
        .find(|r| r["method"] == "PUT" && r["status"] == 200)
        .unwrap();
    assert!(put["body"].is_null());
    assert_eq!(put["bodyLen"], 400);
    let b = log
        .iter()
        .find(|r| r["path"].as_str().unwrap().ends_with("/objects/batch"))
        .unwrap();
    assert_eq!(b["contentType"], LFS);
    assert!(
        b["body"]
            .as_str()
            .unwrap()
            .contains("\"operation\":\"upload\"")
    );
}
