//! Content manifests: per-file hash, size, rows and schema; differences named file by file.

use std::path::{Path, PathBuf};

use mlres_data::manifest::{self, Manifest};
use mlres_data::read::ReadError;
use sha2::{Digest, Sha256};

use crate::read::{tmp, write_parquet};

fn write(path: &Path, body: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, body).unwrap();
}

fn sha_hex(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn dataset(root: &Path) -> PathBuf {
    let d = root.join("ds");
    write(
        &d.join("train.jsonl"),
        b"{\"text\":\"a\",\"label\":1}\n{\"text\":\"b\"}\nnot json\n",
    );
    write(&d.join("data/test.csv"), b"prompt,completion\nq,a\nq2,a2\n");
    write(&d.join("README.md"), b"# a card\n");
    write(&d.join(".hidden.jsonl"), b"{\"x\":1}\n");
    write_parquet(
        &d.join("data/validation.parquet"),
        &["x", "y", "z"],
        &[1, 2, 3],
    );
    d
}

#[test]
fn compute_hashes_sizes_rows_and_sorted_schemas_of_expanded_directories() {
    let t = tmp();
    let d = dataset(t.path());
    let m = manifest::compute(std::slice::from_ref(&d), t.path()).unwrap();
    let paths: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    // Sorted, relative to the root, hidden entries skipped.
    assert_eq!(
        paths,
        [
            "ds/README.md",
            "ds/data/test.csv",
            "ds/data/validation.parquet",
            "ds/train.jsonl"
        ]
    );
    for f in &m.files {
        let body = std::fs::read(t.path().join(&f.path)).unwrap();
        assert_eq!(f.sha256, sha_hex(&body), "{}", f.path);
        assert_eq!(f.bytes, body.len() as u64, "{}", f.path);
    }
    let by = |p: &str| m.files.iter().find(|f| f.path == p).unwrap();
    // A file in a format mlres does not read is hashed only.
    assert_eq!(by("ds/README.md").rows, None);
    assert!(by("ds/README.md").schema.is_empty());
    let train = by("ds/train.jsonl");
    assert_eq!((train.rows, train.skipped), (Some(2), 1));
    assert_eq!(train.schema, ["label", "text"]);
    assert_eq!(by("ds/data/test.csv").rows, Some(2));
    assert_eq!(by("ds/data/test.csv").schema, ["completion", "prompt"]);
    assert_eq!(by("ds/data/validation.parquet").rows, Some(3));
    assert_eq!(by("ds/data/validation.parquet").schema, ["label", "text"]);

    // Deterministic, and round-trips through JSON (the ledger stores it that way).
    let again = manifest::compute(std::slice::from_ref(&d), t.path()).unwrap();
    assert_eq!(m, again);
    let back: Manifest = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    assert_eq!(m, back);
    assert!(manifest::diff(&m, &again).is_empty());

    // Hash-only manifests agree on content with full ones.
    let quick = manifest::compute_with(std::slice::from_ref(&d), t.path(), false).unwrap();
    assert!(quick.files.iter().all(|f| f.rows.is_none()));
    assert!(manifest::same_content(&m, &quick));
}

#[test]
fn paths_outside_the_root_are_kept_whole_and_missing_paths_are_errors() {
    let t = tmp();
    let d = dataset(t.path());
    let other = tmp();
    let m = manifest::compute(&[d.join("train.jsonl")], other.path()).unwrap();
    assert_eq!(m.files.len(), 1);
    assert_eq!(Path::new(&m.files[0].path), d.join("train.jsonl"));

    let missing = t.path().join("nope.jsonl");
    match manifest::compute(std::slice::from_ref(&missing), t.path()) {
        Err(e @ ReadError::Io { .. }) => assert!(e.to_string().contains("nope.jsonl"), "{e}"),
        other => panic!("expected an IO error, got {other:?}"),
    }
}

#[test]
fn diff_names_added_removed_and_changed_files_with_what_changed() {
    let t = tmp();
    let d = dataset(t.path());
    let before = manifest::compute(std::slice::from_ref(&d), t.path()).unwrap();

    // Same size, different content: only the hash differs.
    write(&d.join("data/test.csv"), b"prompt,completion\nQ,a\nq2,a2\n");
    // More rows and a new column.
    write(
        &d.join("train.jsonl"),
        b"{\"text\":\"a\",\"label\":1}\n{\"text\":\"b\"}\n{\"text\":\"c\",\"source\":\"x\"}\n",
    );
    std::fs::remove_file(d.join("README.md")).unwrap();
    write(&d.join("data/extra.jsonl"), b"{\"text\":\"poison\"}\n");
    let after = manifest::compute(std::slice::from_ref(&d), t.path()).unwrap();
    assert!(!manifest::same_content(&before, &after));

    let diff = manifest::diff(&before, &after);
    let line = |p: &str| -> &str {
        let hits: Vec<&String> = diff
            .iter()
            .filter(|l| l.starts_with(&format!("{p}:")))
            .collect();
        assert_eq!(hits.len(), 1, "{p} in {diff:#?}");
        hits[0]
    };
    assert_eq!(line("ds/data/extra.jsonl"), "ds/data/extra.jsonl: added");
    assert_eq!(line("ds/README.md"), "ds/README.md: removed");
    let csv = line("ds/data/test.csv");
    assert!(csv.contains("content changed"), "{csv}");
    assert!(!csv.contains("size"), "{csv}");
    assert!(!csv.contains("rows"), "{csv}");
    let train = line("ds/train.jsonl");
    assert!(train.contains("content changed"), "{train}");
    assert!(train.contains("size"), "{train}");
    assert!(train.contains("rows 2 → 3"), "{train}");
    assert!(
        train.contains("[label, text] → [label, source, text]"),
        "{train}"
    );
    // Unchanged files are not mentioned.
    assert!(
        !diff
            .iter()
            .any(|l| l.starts_with("ds/data/validation.parquet")),
        "{diff:#?}"
    );
    assert_eq!(diff.len(), 4, "{diff:#?}");

    // The reverse direction swaps added and removed.
    let back = manifest::diff(&after, &before);
    assert!(back.contains(&"ds/data/extra.jsonl: removed".to_string()));
    assert!(back.contains(&"ds/README.md: added".to_string()));
}

#[test]
fn diff_of_a_tampered_manifest_never_panics() {
    // A manifest read back from the ledger may hold anything; diffing it must not panic.
    let t = tmp();
    let d = dataset(t.path());
    let good = manifest::compute(std::slice::from_ref(&d), t.path()).unwrap();
    let mut bad = good.clone();
    bad.files[0].sha256 = format!("a{}", "é".repeat(9));
    bad.files[1].sha256 = String::new();
    let lines = manifest::diff(&bad, &good);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines.iter().all(|l| l.contains("content changed")),
        "{lines:#?}"
    );
}
