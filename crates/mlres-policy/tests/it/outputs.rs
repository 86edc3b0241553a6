//! The job template's `outputs:` list: what a finished job leaves behind for the project
//! (`mlres exp artifacts`, `mlres hub push`). Parsed strictly, relative to the job's work dir,
//! and in the approval document only when declared.

use mlres_policy::{approval_document, approval_hash, normalize_output_path, parse_program};

use crate::common::{BASE, doc, expect_err};

const OBJECTIVE: &str = "metric: score\ngoal: maximize";
const SPACE: &str = "method: grid\nparameters:\n  lr: {values: [0.1, 0.01]}";
const CMD: &str = "command: [python3, train.py, --lr, \"{lr}\"]\ntimeout: 10m";

fn with_job(job: &str) -> (String, Vec<usize>) {
    doc(&[
        ("Budget envelope", BASE),
        ("Job", job),
        ("Objective", OBJECTIVE),
        ("Search space", SPACE),
    ])
}

#[test]
fn outputs_are_parsed_and_normalised() {
    let (src, _) = with_job(&format!(
        "{CMD}\noutputs: [checkpoint/, eval_results.json, ./logs/run.txt]"
    ));
    let p = parse_program(&src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        p.job.unwrap().outputs,
        ["checkpoint", "eval_results.json", "logs/run.txt"]
    );
    // A block list too.
    let (src, _) = with_job(&format!(
        "{CMD}\noutputs:\n  - checkpoint\n  - metrics.json"
    ));
    let p = parse_program(&src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.job.unwrap().outputs, ["checkpoint", "metrics.json"]);
    // Without the key: none.
    let (src, _) = with_job(CMD);
    assert!(parse_program(&src).unwrap().job.unwrap().outputs.is_empty());
}

#[test]
fn bad_output_entries_are_refused_where_they_are() {
    // `outputs: [` is 10 characters; the entry starts at column 11 of line starts[1] + 2.
    for (entry, needle, help) in [
        (
            "/abs/model.bin",
            "is an absolute path",
            "relative to the job's work dir",
        ),
        ("../escape", "uses `..`", "below its work dir"),
        ("ckpt/../../x", "uses `..`", "below its work dir"),
        (
            "~/model.bin",
            "starts with `~`",
            "relative to the job's work dir",
        ),
        (".", "is the whole work dir", "caches"),
        ("./", "is the whole work dir", "caches"),
        ("a//b", "empty path component", "single `/`"),
    ] {
        let (src, starts) = with_job(&format!("{CMD}\noutputs: [\"{entry}\"]"));
        let e = expect_err(&src, starts[1] + 2, 11, needle);
        assert!(
            e.help.as_deref().unwrap_or_default().contains(help),
            "{entry}: {e:?}"
        );
    }
    assert!(normalize_output_path("a\0b").is_err());
}

#[test]
fn duplicate_nested_empty_and_misshapen_outputs_are_refused() {
    let (src, starts) = with_job(&format!("{CMD}\noutputs: [ckpt, ckpt/]"));
    expect_err(
        &src,
        starts[1] + 2,
        17,
        "`ckpt` is listed twice in `outputs`",
    );
    let (src, starts) = with_job(&format!("{CMD}\noutputs: [ckpt/model.bin, ckpt]"));
    let e = expect_err(&src, starts[1] + 2, 27, "`ckpt/model.bin` is inside `ckpt`");
    assert_eq!(e.help.as_deref(), Some("keep only `ckpt`"));
    let (src, starts) = with_job(&format!("{CMD}\noutputs: []"));
    expect_err(&src, starts[1] + 2, 10, "`outputs` is empty");
    let (src, starts) = with_job(&format!("{CMD}\noutputs: checkpoint"));
    expect_err(&src, starts[1] + 2, 10, "`outputs` must be a list");
    let (src, starts) = with_job(&format!("{CMD}\noutputs: [3]"));
    expect_err(&src, starts[1] + 2, 11, "must be a string");
}

#[test]
fn a_misspelt_outputs_key_gets_a_suggestion() {
    let (src, starts) = with_job(&format!("{CMD}\nouptuts: [checkpoint]"));
    let e = expect_err(&src, starts[1] + 2, 1, "unknown key `ouptuts` in the job");
    assert_eq!(e.help.as_deref(), Some("did you mean `outputs`?"));
    let (src, starts) = with_job(&format!("{CMD}\noutput: [checkpoint]"));
    let e = expect_err(&src, starts[1] + 2, 1, "unknown key `output` in the job");
    assert_eq!(e.help.as_deref(), Some("did you mean `outputs`?"));
}

#[test]
fn outputs_are_in_the_approval_document_only_when_declared() {
    let (without, _) = with_job(CMD);
    let p = parse_program(&without).unwrap();
    let doc_without = approval_document(&p);
    assert!(!doc_without.contains("outputs"), "{doc_without}");
    // The document of a program without `outputs` is exactly what it was before the key
    // existed, so approvals given then keep their hash.
    let (with, _) = with_job(&format!("{CMD}\noutputs: [checkpoint/, eval_results.json]"));
    let p2 = parse_program(&with).unwrap();
    let doc_with = approval_document(&p2);
    assert!(
        doc_with
            .contains("\"outputs\": [\n      \"checkpoint\",\n      \"eval_results.json\"\n    ]"),
        "{doc_with}"
    );
    assert_ne!(approval_hash(&doc_with), approval_hash(&doc_without));
    // Removing the outputs gives back the original document.
    assert_eq!(
        doc_without.replace(",\n    \"outputs\"", ""),
        doc_without,
        "no trace of the key"
    );
}

#[test]
fn hf_jobs_cannot_declare_outputs() {
    let env = "max_jobs: 3\nmax_walltime: 8h\nallowed_flavors: [cpu-basic]\nmax_timeout: 1h\nbackends: [hf-jobs]\nnamespace: alice\nimages: [\"python:3.12\"]";
    let (src, starts) = doc(&[
        ("Budget envelope", env),
        (
            "Job",
            "backend: hf-jobs\nimage: \"python:3.12\"\ncommand: [python3, t.py, \"{lr}\"]\ntimeout: 10m\noutputs: [checkpoint]",
        ),
        ("Objective", OBJECTIVE),
        ("Search space", SPACE),
    ]);
    let e = expect_err(&src, starts[1] + 4, 10, "`outputs` is for local jobs");
    assert!(e.help.unwrap_or_default().contains("output_repos"));
}
