//! Bad input: clear errors, no panics.

use mlres_backends::{BackendError, Outcome, claim_void, launch, log_paths};

use crate::*;

#[test]
fn prepare_rejects_non_empty_dir() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("x"), "x").unwrap();
    let e = prepare_attempt(t.path(), &sh("true")).unwrap_err();
    assert!(matches!(e, BackendError::NotEmpty(_)), "{e}");
}

#[test]
fn prepare_accepts_existing_empty_dir() {
    let t = tempfile::tempdir().unwrap();
    prepare_attempt(t.path(), &sh("true")).unwrap();
    assert!(t.path().join("spec.json").is_file());
    assert!(t.path().join("work/tmp").is_dir());
    assert_eq!(mlres_backends::read_spec(t.path()).unwrap(), sh("true"));
    assert_eq!(poll(t.path()).unwrap(), AttemptState::NotClaimed);
}

#[test]
fn prepare_rejects_empty_argv_and_other_bad_specs() {
    let (_t, dir) = attempt_dir();
    let e = prepare_attempt(&dir, &spec(&[])).unwrap_err();
    assert!(
        matches!(&e, BackendError::InvalidSpec(m) if m.contains("argv is empty")),
        "{e}"
    );
    assert!(!dir.exists(), "nothing created for an invalid spec");
    let e = prepare_attempt(&dir, &spec(&[""])).unwrap_err();
    assert!(matches!(e, BackendError::InvalidSpec(_)), "{e}");
    let e = prepare_attempt(&dir, &spec(&["/bin/echo", "a\0b"])).unwrap_err();
    assert!(matches!(e, BackendError::InvalidSpec(_)), "{e}");
    let mut s = sh("true");
    s.timeout_secs = 0;
    let e = prepare_attempt(&dir, &s).unwrap_err();
    assert!(e.to_string().contains("timeout_secs"), "{e}");
    let mut s = sh("true");
    s.env.insert("A=B".into(), "x".into());
    assert!(prepare_attempt(&dir, &s).is_err());
}

#[test]
fn missing_program_is_start_failed_with_clear_detail() {
    let (_t, dir) = attempt_dir();
    let st = run(&dir, &spec(&["/nonexistent/prog-xyz", "a"]));
    assert_eq!(st.outcome, Outcome::StartFailed);
    assert!(st.detail.contains("/nonexistent/prog-xyz"), "{}", st.detail);
    assert!(st.detail.contains("does not exist"), "{}", st.detail);

    let (_t, dir) = attempt_dir();
    let st = run(&dir, &spec(&["prog-xyz-not-in-path"]));
    assert_eq!(st.outcome, Outcome::StartFailed);
    assert!(
        st.detail.contains("not found in the job's PATH"),
        "{}",
        st.detail
    );
}

#[test]
fn program_found_only_in_supervisor_path_is_not_used() {
    // The job PATH is the one in spec.env; without PATH a bare name cannot be resolved.
    let (_t, dir) = attempt_dir();
    let mut s = spec(&["sh", "-c", "true"]);
    s.env.clear();
    let st = run(&dir, &s);
    assert_eq!(st.outcome, Outcome::StartFailed);
    assert!(st.detail.contains("no PATH"), "{}", st.detail);
}

#[test]
fn non_executable_file_is_start_failed() {
    use std::os::unix::fs::PermissionsExt;
    let (t, dir) = attempt_dir();
    let data = t.path().join("data.txt");
    std::fs::write(&data, "not a program").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o644)).unwrap();
    let st = run(&dir, &spec(&[data.to_str().unwrap()]));
    assert_eq!(st.outcome, Outcome::StartFailed);
    assert!(st.detail.contains("not an executable"), "{}", st.detail);
}

#[test]
fn functions_on_a_non_attempt_dir_error() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    assert!(matches!(poll(d), Err(BackendError::NotAnAttempt(_))));
    assert!(matches!(claim_void(d), Err(BackendError::NotAnAttempt(_))));
    assert!(matches!(
        mlres_backends::cancel(d),
        Err(BackendError::NotAnAttempt(_))
    ));
    assert!(matches!(
        launch(d, &supervise_cmd(d)),
        Err(BackendError::NotAnAttempt(_))
    ));
    // The supervisor refuses too (exit 2), and leaves no status behind.
    assert_eq!(supervise_sync(d), 2);
    assert!(!d.join("status.json").exists());
    assert!(!log_paths(d).stdout.exists());
}

#[test]
fn launch_of_missing_program_errors() {
    let (_t, dir) = attempt_dir();
    prepare_attempt(&dir, &sh("true")).unwrap();
    let e = launch(&dir, &std::process::Command::new("/nonexistent/supervisor")).unwrap_err();
    assert!(matches!(e, BackendError::Launch(_)), "{e}");
    assert_eq!(poll(&dir).unwrap(), AttemptState::NotClaimed);
}

#[test]
fn corrupt_files_are_errors_not_panics() {
    let (_t, dir) = attempt_dir();
    prepare_attempt(&dir, &sh("true")).unwrap();
    std::fs::write(dir.join("claim"), "garbage").unwrap();
    assert!(matches!(poll(&dir), Err(BackendError::Corrupt { .. })));
    std::fs::write(dir.join("status.json"), "{not json").unwrap();
    assert!(matches!(poll(&dir), Err(BackendError::Json { .. })));
}

#[test]
fn corrupt_spec_is_start_failed() {
    let (_t, dir) = attempt_dir();
    prepare_attempt(&dir, &sh("true")).unwrap();
    std::fs::write(dir.join("spec.json"), "{\"argv\": 3}").unwrap();
    assert_eq!(supervise_sync(&dir), 0);
    let AttemptState::Finished(st) = poll(&dir).unwrap() else {
        panic!()
    };
    assert_eq!(st.outcome, Outcome::StartFailed);
    assert!(st.detail.contains("cannot read spec"), "{}", st.detail);
}
