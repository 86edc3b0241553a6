//! The job template's `code:` list, the `{code}` and `{project}` placeholders, the code list in
//! the approval document, and the pure code manifest (hash, size cap, differences, diffs).

use mlres_policy::{
    CodeFile, CodeManifest, MAX_CODE_BYTES, approval_document, approval_hash, check_code_size,
    code_changes, diff_documents, parse_program, unified_diff,
};

use crate::common::{BASE, doc, expect_err};

const OBJECTIVE: &str = "metric: score\ngoal: maximize";
const SPACE: &str = "method: grid\nparameters:\n  lr: {values: [0.1, 0.01]}";

/// A runnable program whose job is `job` (first job line is `starts[1]`).
fn with_job(job: &str) -> (String, Vec<usize>) {
    doc(&[
        ("Budget envelope", BASE),
        ("Job", job),
        ("Objective", OBJECTIVE),
        ("Search space", SPACE),
    ])
}

const CMD: &str = "command: [python3, \"{code}/train.py\", --lr, \"{lr}\"]\ntimeout: 10m";

#[test]
fn code_entries_are_parsed_and_normalised() {
    let (src, _) = with_job(&format!(
        "{CMD}\ncode: [train.py, ./src/, lib/util.py, \"configs//\"]"
    ));
    // `configs//` has an empty component only at the end: trailing slashes are dropped.
    let p = parse_program(&src).unwrap_or_else(|e| panic!("{e}"));
    let job = p.job.unwrap();
    assert_eq!(job.code, ["train.py", "src", "lib/util.py", "configs"]);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn code_as_a_block_list_is_accepted() {
    let (src, _) = with_job(&format!("{CMD}\ncode:\n  - train.py\n  - data_utils.py"));
    let p = parse_program(&src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.job.unwrap().code, ["train.py", "data_utils.py"]);
}

#[test]
fn bad_code_entries_are_refused_where_they_are() {
    // `code: [` is 6 characters; the entry starts at column 8 of line starts[1] + 2.
    for (entry, needle, help) in [
        (
            "/abs/train.py",
            "is an absolute path",
            "relative to the project",
        ),
        ("../other/train.py", "uses `..`", "into the project"),
        ("src/../../x.py", "uses `..`", "into the project"),
        ("~/train.py", "starts with `~`", "relative to the project"),
        (".", "is the whole project", "`.git`"),
        ("./", "is the whole project", "`.git`"),
        ("runs", "inside `runs/`", "regenerates"),
        ("runs/ledger.jsonl", "inside `runs/`", "regenerates"),
        ("src//a.py", "empty path component", "single `/`"),
    ] {
        let (src, starts) = with_job(&format!("{CMD}\ncode: [\"{entry}\"]"));
        let e = expect_err(&src, starts[1] + 2, 8, needle);
        assert!(
            e.help.as_deref().unwrap_or_default().contains(help),
            "{entry}: {e:?}"
        );
    }
}

#[test]
fn duplicate_and_nested_code_entries_are_refused() {
    let (src, starts) = with_job(&format!("{CMD}\ncode: [train.py, ./train.py]"));
    expect_err(&src, starts[1] + 2, 18, "`train.py` is listed twice");
    let (src, starts) = with_job(&format!("{CMD}\ncode: [src, src/model.py]"));
    let e = expect_err(&src, starts[1] + 2, 13, "`src/model.py` is inside `src`");
    assert_eq!(e.help.as_deref(), Some("keep only `src`"));
    // Either order.
    let (src, starts) = with_job(&format!("{CMD}\ncode: [src/model.py, src]"));
    expect_err(&src, starts[1] + 2, 22, "`src/model.py` is inside `src`");
    // A sibling with a common prefix is not nested.
    let (src, _) = with_job(&format!("{CMD}\ncode: [src, src2, src.py]"));
    parse_program(&src).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn code_of_the_wrong_shape_is_refused() {
    let (src, starts) = with_job(&format!("{CMD}\ncode: train.py"));
    let e = expect_err(&src, starts[1] + 2, 7, "`code` must be a list");
    assert!(e.help.unwrap_or_default().contains("code: [a, b]"));
    let (src, starts) = with_job(&format!("{CMD}\ncode: []"));
    expect_err(&src, starts[1] + 2, 7, "`code` is empty");
    let (src, starts) = with_job(&format!("{CMD}\ncode: [1]"));
    expect_err(&src, starts[1] + 2, 8, "must be a string");
    let (src, starts) = with_job(&format!("{CMD}\ncode: [\"\"]"));
    expect_err(&src, starts[1] + 2, 8, "must not be empty");
}

#[test]
fn a_misspelt_code_key_gets_a_suggestion() {
    let (src, starts) = with_job(&format!("{CMD}\ncdoe: [train.py]"));
    let e = expect_err(&src, starts[1] + 2, 1, "unknown key `cdoe` in the job");
    assert_eq!(e.help.as_deref(), Some("did you mean `code`?"));
}

#[test]
fn the_code_placeholder_needs_a_code_list() {
    let (src, starts) = with_job(CMD);
    // The command list is on the first job line; `"{code}/train.py"` starts at column 20.
    let e = expect_err(&src, starts[1], 20, "`{code}` names the approved snapshot");
    assert!(e.help.unwrap_or_default().contains("code: [train.py]"));
    // A misspelt builtin gets a suggestion that includes `{code}`.
    let (src, starts) = with_job(
        "command: [python3, \"{cdoe}/train.py\", \"{lr}\"]\ntimeout: 10m\ncode: [train.py]",
    );
    let e = expect_err(&src, starts[1], 20, "unknown placeholder `{cdoe}`");
    assert!(
        e.help
            .unwrap_or_default()
            .contains("did you mean `{code}`?"),
        "the help names the closest builtin"
    );
}

#[test]
fn code_and_project_placeholders_render() {
    let (src, _) = with_job(
        "command: [python3, \"{code}/train.py\", --data, \"{project}/data\", --lr, \"{lr}\"]\ntimeout: 10m\ncode: [train.py]",
    );
    let p = parse_program(&src).unwrap_or_else(|e| panic!("{e}"));
    let job = p.job.unwrap();
    let builtins = std::collections::BTreeMap::from([
        ("code".to_string(), "/state/code/abc".to_string()),
        ("project".to_string(), "/home/me/proj".to_string()),
    ]);
    let mut config = mlres_policy::Config::new();
    config.insert("lr".into(), serde_json::json!(0.1));
    let argv = mlres_policy::render_command(&job.command, &config, &builtins).unwrap();
    assert_eq!(
        argv,
        [
            "python3",
            "/state/code/abc/train.py",
            "--data",
            "/home/me/proj/data",
            "--lr",
            "0.1"
        ]
    );
}

#[test]
fn a_parameter_named_code_is_refused_as_a_builtin() {
    let (src, starts) = doc(&[
        ("Budget envelope", BASE),
        ("Job", "command: [python3, t.py, \"{code}\"]\ntimeout: 10m"),
        ("Objective", OBJECTIVE),
        (
            "Search space",
            "method: grid\nparameters:\n  code: {values: [1]}",
        ),
    ]);
    expect_err(
        &src,
        starts[3] + 2,
        3,
        "name of a builtin placeholder `{code}`",
    );
}

#[test]
fn project_files_without_a_code_list_are_a_warning() {
    let (src, starts) =
        with_job("command: [python3, \"{project}/train.py\", --lr, \"{lr}\"]\ntimeout: 10m");
    let p = parse_program(&src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    let w = &p.warnings[0];
    assert_eq!((w.line, w.column), (starts[1], 20));
    assert!(w.message.contains("declares no `code`"), "{}", w.message);
    assert!(
        w.help
            .as_deref()
            .unwrap_or_default()
            .contains("{code}/train.py")
    );
    // With a code list the project may still be read (e.g. data), without a warning.
    let (src, _) = with_job(
        "command: [python3, \"{code}/train.py\", \"{project}/data\", --lr, \"{lr}\"]\ntimeout: 10m\ncode: [train.py]",
    );
    assert!(parse_program(&src).unwrap().warnings.is_empty());
}

#[test]
fn hf_jobs_ship_one_top_level_script() {
    let env = "max_jobs: 3\nmax_walltime: 8h\nallowed_flavors: [cpu-basic]\nmax_timeout: 1h\nbackends: [hf-jobs]\nnamespace: alice\nimages: [\"python:3.12\"]";
    let hf = |code: &str| {
        doc(&[
            ("Budget envelope", env),
            (
                "Job",
                &format!(
                    "backend: hf-jobs\nimage: \"python:3.12\"\ncommand: [uv, run, \"{{code}}/train.py\", \"{{lr}}\"]\ntimeout: 10m\ncode: {code}"
                ),
            ),
            ("Objective", OBJECTIVE),
            ("Search space", SPACE),
        ])
    };
    let (src, _) = hf("[train.py]");
    let p = parse_program(&src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.job.unwrap().code, ["train.py"]);
    for code in ["[train.py, util.py]", "[src/train.py]"] {
        let (src, starts) = hf(code);
        let e = expect_err(&src, starts[1] + 4, 7, "hf-jobs ships one script");
        assert!(e.help.unwrap_or_default().contains("PEP 723"), "{code}");
    }
}

#[test]
fn the_code_list_is_in_the_approval_document_and_its_diff() {
    let (without, _) = with_job("command: [python3, t.py, \"{lr}\"]\ntimeout: 10m");
    let (with, _) = with_job(&format!("{CMD}\ncode: [train.py, src]"));
    let (other, _) = with_job(&format!("{CMD}\ncode: [train.py, lib]"));
    let d0 = approval_document(&parse_program(&without).unwrap());
    let d1 = approval_document(&parse_program(&with).unwrap());
    let d2 = approval_document(&parse_program(&other).unwrap());
    // A job without `code` has no `code` key: its document (and hash) are what they were.
    assert!(!d0.contains("\"code\""), "{d0}");
    assert!(
        d1.contains("\"code\": [\n      \"train.py\",\n      \"src\"\n    ]"),
        "{d1}"
    );
    assert_ne!(approval_hash(&d1), approval_hash(&d2));
    let diff = diff_documents(&d1, &d2);
    assert!(diff.contains("-       \"src\""), "{diff}");
    assert!(diff.contains("+       \"lib\""), "{diff}");
}

fn file(path: &str, sha: &str, size: u64) -> CodeFile {
    CodeFile {
        path: path.into(),
        sha256: sha.repeat(64 / sha.len()),
        size,
        executable: false,
    }
}

#[test]
fn the_manifest_hash_covers_paths_contents_sizes_and_modes_in_path_order() {
    let a = CodeManifest::new(vec![file("b.py", "1", 3), file("a.py", "2", 4)]);
    assert_eq!(a.files[0].path, "a.py", "sorted by path");
    assert!(a.is_consistent());
    assert_eq!(a.sha256.len(), 64);
    let same = CodeManifest::new(vec![file("a.py", "2", 4), file("b.py", "1", 3)]);
    assert_eq!(a.sha256, same.sha256, "order of discovery does not matter");
    let mut exec = same.files.clone();
    exec[0].executable = true;
    let variants = [
        CodeManifest::new(vec![file("a.py", "2", 4), file("c.py", "1", 3)]),
        CodeManifest::new(vec![file("a.py", "3", 4), file("b.py", "1", 3)]),
        CodeManifest::new(vec![file("a.py", "2", 5), file("b.py", "1", 3)]),
        CodeManifest::new(exec),
        CodeManifest::new(vec![file("a.py", "2", 4)]),
        // A path cannot forge a second line.
        CodeManifest::new(vec![file("a.py\" 1 - \"b.py", "2", 4)]),
    ];
    for v in &variants {
        assert_ne!(v.sha256, a.sha256, "{v:?}");
    }
    let mut forged = a.clone();
    forged.files[1].sha256 = "f".repeat(64);
    assert!(!forged.is_consistent(), "a stored manifest is checked");
}

#[test]
fn changes_name_added_removed_and_changed_files() {
    let old = CodeManifest::new(vec![
        file("train.py", "1", 10),
        file("src/a.py", "2", 10),
        file("src/gone.py", "3", 10),
    ]);
    let mut run = file("run.sh", "4", 10);
    run.executable = true;
    let new = CodeManifest::new(vec![
        file("train.py", "5", 10),
        file("src/a.py", "2", 10),
        file("src/new.py", "6", 10),
        run,
    ]);
    let c = code_changes(&old, &new);
    assert_eq!(c.added, ["run.sh", "src/new.py"]);
    assert_eq!(c.removed, ["src/gone.py"]);
    assert_eq!(c.changed, ["train.py"]);
    assert_eq!(
        c.lines(),
        [
            "added: run.sh",
            "removed: src/gone.py",
            "added: src/new.py",
            "changed: train.py"
        ]
    );
    assert!(code_changes(&old, &old).is_empty());
}

#[test]
fn a_snapshot_over_the_cap_is_refused_naming_the_largest_files() {
    let ok = vec![
        file("train.py", "1", 1000),
        file("w.bin", "2", MAX_CODE_BYTES - 1000),
    ];
    check_code_size(&ok).unwrap();
    let big = vec![
        file("train.py", "1", 1000),
        file("ckpt/model.safetensors", "2", 70 << 20),
        file("ckpt/optimizer.pt", "3", 5 << 20),
    ];
    let e = check_code_size(&big).unwrap_err();
    assert!(e.contains("75.0 MiB in 3 files, over the 64MiB"), "{e}");
    assert!(
        e.contains("largest: ckpt/model.safetensors (70.0 MiB), ckpt/optimizer.pt (5.0 MiB), train.py (1000 B)"),
        "{e}"
    );
    let many: Vec<CodeFile> = (0..10_001)
        .map(|i| file(&format!("f{i}"), "1", 1))
        .collect();
    let e = check_code_size(&many).unwrap_err();
    assert!(e.contains("10001 files, over the 10000"), "{e}");
}

#[test]
fn unified_diffs_have_hunks_with_line_numbers() {
    let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
    let new = "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk\n";
    let d = unified_diff(old, new, "approved/t.py", "current/t.py", 2);
    assert_eq!(
        d,
        "--- approved/t.py\n+++ current/t.py\n@@ -2,5 +2,5 @@\n b\n c\n-d\n+D\n e\n f\n@@ -9,2 +9,3 @@\n i\n j\n+k\n"
    );
    assert_eq!(unified_diff(old, old, "a", "b", 3), "");
    // A new file against nothing, and a removed one.
    assert_eq!(
        unified_diff("", "x\ny\n", "/dev/null", "current/n.py", 3),
        "--- /dev/null\n+++ current/n.py\n@@ -0,0 +1,2 @@\n+x\n+y\n"
    );
    assert_eq!(
        unified_diff("x\n", "", "approved/o.py", "/dev/null", 3),
        "--- approved/o.py\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-x\n"
    );
}
