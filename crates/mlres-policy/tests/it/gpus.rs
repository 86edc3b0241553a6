//! `gpus` and `share_gpus`: how many of the machine's GPUs a local job gets, and whether it
//! may share them. Strict like every other key.

use mlres_policy::{ProgramError, approval_document, approval_hash, parse_program};

const FIXTURE: &str = include_str!("fixtures/program.md");

/// The fixture's job with `extra` lines added after `network: false`, and the line of the
/// first one.
fn with_job(extra: &str) -> (String, usize) {
    let at = FIXTURE
        .lines()
        .position(|l| l == "network: false")
        .expect("fixture has network");
    let src = FIXTURE.replace("network: false\n", &format!("network: false\n{extra}\n"));
    (src, at + 2)
}

fn refused_at(src: &str, line: usize, needle: &str) -> ProgramError {
    let e = match parse_program(src) {
        Ok(_) => panic!("accepted:\n{src}"),
        Err(e) => e,
    };
    assert_eq!(e.line, line, "{e}");
    assert!(e.message.contains(needle), "{e}");
    e
}

fn refused(extra: &str, needle: &str) -> ProgramError {
    let (src, line) = with_job(extra);
    refused_at(&src, line, needle)
}

#[test]
fn no_gpus_by_default() {
    let job = parse_program(FIXTURE).unwrap().job.unwrap();
    assert_eq!((job.gpus, job.share_gpus), (0, false));
}

#[test]
fn gpus_and_share_gpus_parse() {
    let (src, _) = with_job("gpus: 2");
    let job = parse_program(&src).unwrap().job.unwrap();
    assert_eq!((job.gpus, job.share_gpus), (2, false));
    let (src, _) = with_job("gpus: 1\nshare_gpus: true");
    let job = parse_program(&src).unwrap().job.unwrap();
    assert_eq!((job.gpus, job.share_gpus), (1, true));
    let (src, _) = with_job("gpus: 0\nshare_gpus: false");
    let job = parse_program(&src).unwrap().job.unwrap();
    assert_eq!((job.gpus, job.share_gpus), (0, false));
}

#[test]
fn bad_gpu_values_are_refused() {
    refused("gpus: -1", "non-negative integer");
    refused("gpus: 1.5", "non-negative integer");
    refused("gpus: two", "non-negative integer");
    refused("gpus: 99999999999", "too large");
    let e = refused("gpus: \"2\"", "non-negative integer");
    assert!(e.help.as_deref().unwrap_or("").contains("quotes"), "{e}");
    refused("share_gpus: yes", "true or false");
    let e = refused("share_gpus: true", "needs `gpus` of at least 1");
    assert!(e.help.is_some());
    let (src, line) = with_job("gpus: 0\nshare_gpus: true");
    refused_at(&src, line + 1, "needs `gpus`");
}

#[test]
fn unknown_gpu_keys_are_refused_with_a_suggestion() {
    let e = refused("gpu: 1", "unknown key `gpu`");
    assert_eq!(e.help.as_deref(), Some("did you mean `gpus`?"));
    let e = refused("share_gpu: true", "unknown key `share_gpu`");
    assert_eq!(e.help.as_deref(), Some("did you mean `share_gpus`?"));
}

#[test]
fn cuda_visible_devices_is_decided_by_gpus() {
    // The fixture's env block: `OMP_NUM_THREADS: 2` is on the line after `env:`.
    let src = FIXTURE.replace("  RUN_NAME: \"sweep\"\n", "  CUDA_VISIBLE_DEVICES: \"3\"\n");
    let line = FIXTURE
        .lines()
        .position(|l| l == "  RUN_NAME: \"sweep\"")
        .unwrap()
        + 1;
    let e = refused_at(&src, line, "decided by `gpus`");
    assert!(e.help.as_deref().unwrap_or("").contains("gpus: 1"), "{e}");
    let src = FIXTURE.replace("pass_env: [PATH]", "pass_env: [PATH, CUDA_VISIBLE_DEVICES]");
    let line = FIXTURE
        .lines()
        .position(|l| l == "pass_env: [PATH]")
        .unwrap()
        + 1;
    refused_at(&src, line, "decided by `gpus`");
}

#[test]
fn gpus_are_for_local_jobs() {
    let (src, line) = with_job("gpus: 1");
    let src = src.replace("backend: local", "backend: hf-jobs");
    let e = refused_at(&src, line, "`gpus` is for local jobs");
    assert!(e.help.as_deref().unwrap_or("").contains("flavor"), "{e}");
}

#[test]
fn gpu_keys_change_the_approval_only_when_used() {
    let base = approval_document(&parse_program(FIXTURE).unwrap());
    assert!(!base.contains("gpus"), "{base}");
    let (src, _) = with_job("gpus: 0\nshare_gpus: false");
    assert_eq!(approval_document(&parse_program(&src).unwrap()), base);
    let (src, _) = with_job("gpus: 2");
    let two = approval_document(&parse_program(&src).unwrap());
    assert!(two.contains("\"gpus\": 2"), "{two}");
    let (src, _) = with_job("gpus: 2\nshare_gpus: true");
    let shared = approval_document(&parse_program(&src).unwrap());
    assert!(shared.contains("\"share_gpus\": true"), "{shared}");
    let h = [&base, &two, &shared].map(|d| approval_hash(d));
    assert!(h[0] != h[1] && h[1] != h[2] && h[0] != h[2]);
}
