use mlres_hf::{CommitOp, HfError, RepoId, RepoType, TreeEntryKind};

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

#[test]
fn oversized_inline_file_says_lfs() {
    let f = fake();
    let c = client(&f);
    let repo = RepoId::parse("alice/big", RepoType::Model).unwrap();
    c.create_repo(&repo, true).unwrap();
    let e = c
        .commit(
            &repo,
            "main",
            "big",
            &[CommitOp::Add {
                path: "w.bin".into(),
                bytes: vec![0; (10 << 20) + 1],
            }],
        )
        .unwrap_err();
    assert!(e.to_string().contains("LFS"), "{e}");
}
