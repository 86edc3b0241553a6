use mlres_hf::{CommitOp, HfError, RepoId, RepoType, TreeEntryKind};
use serde_json::{Value, json};

use mlres_fakehf::FakeConfig;

use crate::{client, fake, fake_with, no_canary};

#[test]
fn create_commit_read_list_delete_roundtrip() {
    let f = fake_with(FakeConfig {
        tree_page_size: 2,
        ..FakeConfig::default()
    });
    let c = client(&f);
    let repo = RepoId::parse("alice/results", RepoType::Model).unwrap();
    c.create_repo(&repo, true).unwrap();
    let e = c.create_repo(&repo, true).unwrap_err();
    assert!(matches!(e, HfError::AlreadyExists(_)), "{e}");
    let snap = f.state().snapshot();
    assert_eq!(snap["repos"][0]["private"], true);

    let ops = vec![
        CommitOp::Add {
            path: "a.txt".into(),
            bytes: b"alpha\n".to_vec(),
        },
        CommitOp::Add {
            path: "dir/b.json".into(),
            bytes: b"{}".to_vec(),
        },
        CommitOp::Add {
            path: "dir/sub/c.txt".into(),
            bytes: vec![0, 1, 2, 255],
        },
    ];
    let info = c.commit(&repo, "main", "upload", &ops).unwrap();
    assert_eq!(info.commit_oid.len(), 40);
    let got = c
        .read_file(&repo, "main", "dir/sub/c.txt", 1 << 20)
        .unwrap();
    assert_eq!(got.bytes, vec![0, 1, 2, 255]);
    assert_eq!(got.commit.as_deref(), Some(info.commit_oid.as_str()));
    assert!(got.etag.is_some());
    let e = c.read_file(&repo, "main", "a.txt", 2).unwrap_err();
    assert!(matches!(e, HfError::TooLarge { .. }), "{e}");

    // Paginated (page size 2) recursive listing, and a %2F-encoded folder path.
    let all = c.list_tree(&repo, "main", "", true).unwrap();
    let files: Vec<&str> = all
        .iter()
        .filter(|e| e.kind == TreeEntryKind::File)
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(files, vec!["a.txt", "dir/b.json", "dir/sub/c.txt"]);
    let sub = c.list_tree(&repo, "main", "dir/sub", false).unwrap();
    assert_eq!(sub.len(), 1);
    assert!(c.file_entry(&repo, "main", "dir/b.json").unwrap().is_some());
    assert!(c.file_entry(&repo, "main", "nope/x").unwrap().is_none());

    c.commit(
        &repo,
        "main",
        "delete",
        &[CommitOp::Delete {
            path: "a.txt".into(),
        }],
    )
    .unwrap();
    let e = c.read_file(&repo, "main", "a.txt", 100).unwrap_err();
    match e {
        HfError::NotFound { code, .. } => assert_eq!(code.as_deref(), Some("EntryNotFound")),
        other => panic!("{other}"),
    }
    let e = c
        .commit(
            &repo,
            "main",
            "delete",
            &[CommitOp::Delete {
                path: "a.txt".into(),
            }],
        )
        .unwrap_err();
    assert!(e.is_not_found());
    no_canary(&f.state().snapshot().to_string());
}

#[test]
fn missing_repo_and_foreign_namespace() {
    let f = fake();
    let c = client(&f);
    let missing = RepoId::parse("alice/missing", RepoType::Dataset).unwrap();
    match c.list_tree(&missing, "main", "", true).unwrap_err() {
        HfError::NotFound { code, .. } => assert_eq!(code.as_deref(), Some("RepoNotFound")),
        other => panic!("{other}"),
    }
    let foreign = RepoId::parse("bob/x", RepoType::Model).unwrap();
    assert!(matches!(
        c.create_repo(&foreign, true).unwrap_err(),
        HfError::Forbidden { .. }
    ));
    assert!(RepoId::parse("a/../b", RepoType::Model).is_none());
    assert!(RepoId::parse("datasets/a/b", RepoType::Model).unwrap().kind == RepoType::Dataset);
}

/// What the fake logged for requests whose path contains `needle`.
fn logged(f: &mlres_fakehf::FakeHf, needle: &str) -> Vec<Value> {
    f.state().snapshot()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().contains(needle))
        .cloned()
        .collect()
}

fn sha256_hex(b: &[u8]) -> String {
    mlres_fakehf::sha256_hex(b)
}

/// A commit of a small text file, a binary file, a large file from disk and a deletion sends
/// what `huggingface_hub` sends without `hf_xet` (`_commit_api.py`, `lfs.py`): preupload with
/// samples, the git-lfs batch, token-free uploads (basic and multipart), verify with the
/// token, then one NDJSON commit with `file`, `lfsFile` and `deletedFile` lines in order.
#[test]
fn large_and_binary_files_go_through_lfs_as_huggingface_hub_sends_them() {
    let f = fake_with(FakeConfig {
        lfs_threshold: 4096,
        lfs_multipart_threshold: 10_000,
        lfs_chunk_size: 4000,
        ..FakeConfig::default()
    });
    f.state()
        .seed_file("models", "alice/m", "old.txt", b"old\n");
    let c = client(&f);
    let repo = RepoId::parse("alice/m", RepoType::Model).unwrap();
    let dir = crate::tmp();
    let big: Vec<u8> = (0..10_500u32).map(|i| (i % 97) as u8 + 1).collect();
    let big_path = dir.path().join("big.txt");
    std::fs::write(&big_path, &big).unwrap();
    let binary: Vec<u8> = vec![0, 159, 146, 150, 7];
    let text = b"{\"eval_accuracy\": 0.9}\n".to_vec();
    let ops = vec![
        CommitOp::Add {
            path: "eval_results.json".into(),
            bytes: text.clone(),
        },
        CommitOp::Add {
            path: "ckpt/weights.data".into(),
            bytes: binary.clone(),
        },
        CommitOp::AddFile {
            path: "ckpt/big.txt".into(),
            local: big_path.clone(),
            size: big.len() as u64,
            sha256: sha256_hex(&big),
        },
        CommitOp::Delete {
            path: "old.txt".into(),
        },
    ];
    let info = c
        .commit_described(&repo, "main", "push", "experiment 3", &ops)
        .unwrap();
    assert_eq!(info.commit_oid.len(), 40);

    // 1. preupload: every added file with its path, the base64 of its first 512 bytes, size.
    let b64 = |b: &[u8]| base64_encode(b);
    let pre = logged(&f, "/preupload/main");
    assert_eq!(pre.len(), 1);
    assert_eq!(pre[0]["method"], "POST");
    assert_eq!(pre[0]["auth"], true);
    assert!(
        pre[0]["contentType"]
            .as_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = serde_json::from_str(pre[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"files": [
            {"path": "eval_results.json", "sample": b64(&text), "size": text.len()},
            {"path": "ckpt/weights.data", "sample": b64(&binary), "size": 5},
            {"path": "ckpt/big.txt", "sample": b64(&big[..512]), "size": big.len()},
        ]})
    );
    // 2. the LFS batch for the two files the Hub wants in LFS (binary; large).
    let batch = logged(&f, "/alice/m.git/info/lfs/objects/batch");
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0]["auth"], true);
    assert_eq!(batch[0]["contentType"], "application/vnd.git-lfs+json");
    assert_eq!(batch[0]["accept"], "application/vnd.git-lfs+json");
    let body: Value = serde_json::from_str(batch[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({
            "operation": "upload",
            "transfers": ["basic", "multipart"],
            "objects": [
                {"oid": sha256_hex(&binary), "size": 5},
                {"oid": sha256_hex(&big), "size": big.len()},
            ],
            "hash_algo": "sha256",
            "ref": {"name": "main"},
        })
    );
    // 3. uploads: one basic PUT, three part PUTs and a completion, none with the token.
    let store = logged(&f, "/lfs-store/");
    let puts: Vec<&Value> = store.iter().filter(|r| r["method"] == "PUT").collect();
    assert_eq!(puts.len(), 4, "{store:?}");
    assert!(
        store
            .iter()
            .all(|r| r["auth"] == false && r["status"] == 200),
        "{store:?}"
    );
    assert_eq!(
        puts.iter()
            .map(|r| r["bodyLen"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![5, 4000, 4000, 2500]
    );
    let done: Vec<&Value> = store.iter().filter(|r| r["method"] == "POST").collect();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["contentType"], "application/vnd.git-lfs+json");
    let body: Value = serde_json::from_str(done[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["oid"], sha256_hex(&big));
    assert_eq!(
        body["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["partNumber"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // 4. verify, with the token, per object.
    let verify = logged(&f, "/objects/verify");
    assert_eq!(verify.len(), 2);
    assert!(verify.iter().all(|r| r["auth"] == true));
    let body: Value = serde_json::from_str(verify[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, json!({"oid": sha256_hex(&binary), "size": 5}));
    // 5. the commit, in the order of the operations.
    let commit = logged(&f, "/api/models/alice/m/commit/main");
    assert_eq!(commit.len(), 1);
    assert_eq!(commit[0]["contentType"], "application/x-ndjson");
    let text_body = commit[0]["body"].as_str().unwrap();
    assert!(text_body.ends_with('\n'));
    let lines: Vec<Value> = text_body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            json!({"key": "header", "value": {"summary": "push", "description": "experiment 3"}}),
            json!({"key": "file", "value": {"content": b64(&text), "path": "eval_results.json", "encoding": "base64"}}),
            json!({"key": "lfsFile", "value": {"path": "ckpt/weights.data", "algo": "sha256", "oid": sha256_hex(&binary), "size": 5}}),
            json!({"key": "lfsFile", "value": {"path": "ckpt/big.txt", "algo": "sha256", "oid": sha256_hex(&big), "size": big.len()}}),
            json!({"key": "deletedFile", "value": {"path": "old.txt"}}),
        ]
    );
    // What landed, and what the client reports.
    assert_eq!(
        c.read_file(&repo, "main", "ckpt/big.txt", 1 << 20)
            .unwrap()
            .bytes,
        big
    );
    let tree = c.list_tree(&repo, "main", "", true).unwrap();
    let big_entry = tree.iter().find(|e| e.path == "ckpt/big.txt").unwrap();
    assert_eq!(big_entry.lfs.as_ref().unwrap().oid, sha256_hex(&big));
    assert!(tree.iter().all(|e| e.path != "old.txt"));
    let modes: Vec<(&str, bool, bool)> = info
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.lfs, f.uploaded))
        .collect();
    assert_eq!(
        modes,
        vec![
            ("eval_results.json", false, false),
            ("ckpt/weights.data", true, true),
            ("ckpt/big.txt", true, true),
        ]
    );
    no_canary(&f.state().snapshot().to_string());

    // Pushing the same LFS files again uploads nothing and makes no empty commit.
    let before = f.state().snapshot()["requests"].as_array().unwrap().len();
    let again = c.commit(&repo, "main", "again", &ops[1..3]).unwrap();
    assert_eq!(again.commit_oid, info.commit_oid);
    assert!(
        again.files.iter().all(|f| f.skipped == Some("unchanged")),
        "{:?}",
        again.files
    );
    let after: Vec<Value> = f.state().snapshot()["requests"].as_array().unwrap()[before..].to_vec();
    assert!(
        after.iter().all(|r| {
            let p = r["path"].as_str().unwrap();
            !p.contains("/commit/") && !p.contains("lfs")
        }),
        "{after:?}"
    );
}

#[test]
fn lfs_uploads_are_retried_and_refusals_commit_nothing() {
    let f = fake();
    let c = client(&f);
    let repo = RepoId::parse("alice/m", RepoType::Model).unwrap();
    c.create_repo(&repo, true).unwrap();
    // One storage 500: the PUT is retried (the source is read again) and the commit lands.
    f.state().inject(mlres_fakehf::Injection {
        method: "PUT".into(),
        path_prefix: "/lfs-store/".into(),
        status: 500,
        count: 1,
        location: None,
        message: None,
    });
    let bytes = vec![0u8, 1, 2, 3];
    let info = c
        .commit(
            &repo,
            "main",
            "w",
            &[CommitOp::Add {
                path: "w.bin".into(),
                bytes: bytes.clone(),
            }],
        )
        .unwrap();
    assert!(info.files[0].lfs && info.files[0].uploaded);
    assert_eq!(
        c.read_file(&repo, "main", "w.bin", 100).unwrap().bytes,
        bytes
    );

    let commits = |f: &mlres_fakehf::FakeHf| logged(f, "/commit/").len();
    let dir = crate::tmp();
    // A file whose size is not what the caller hashed: refused before anything is sent.
    let p = dir.path().join("m.bin");
    std::fs::write(&p, b"abc").unwrap();
    let before = f.state().snapshot()["requests"].as_array().unwrap().len();
    let e = c
        .commit(
            &repo,
            "main",
            "x",
            &[CommitOp::AddFile {
                path: "m.bin".into(),
                local: p.clone(),
                size: 4,
                sha256: sha256_hex(b"abcd"),
            }],
        )
        .unwrap_err();
    assert!(matches!(e, HfError::Upload { .. }), "{e}");
    assert_eq!(
        f.state().snapshot()["requests"].as_array().unwrap().len(),
        before
    );
    // A file whose bytes are not its claimed sha256: storage refuses, nothing is committed.
    let n = commits(&f);
    let e = c
        .commit(
            &repo,
            "main",
            "x",
            &[CommitOp::AddFile {
                path: "m.bin".into(),
                local: p.clone(),
                size: 3,
                sha256: sha256_hex(b"xyz"),
            }],
        )
        .unwrap_err();
    assert!(e.to_string().contains("sha256"), "{e}");
    assert_eq!(commits(&f), n);
    // An object the batch API refuses (over the 50 GB limit, a sparse file): its error,
    // nothing uploaded or committed.
    let huge = dir.path().join("huge.bin");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len((50 << 30) + 1)
        .unwrap();
    let e = c
        .commit(
            &repo,
            "main",
            "x",
            &[CommitOp::AddFile {
                path: "huge.bin".into(),
                local: huge,
                size: (50 << 30) + 1,
                sha256: "0".repeat(64),
            }],
        )
        .unwrap_err();
    assert!(e.to_string().contains("50 GB limit"), "{e}");
    assert_eq!(commits(&f), n);
    no_canary(&f.state().snapshot().to_string());
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
