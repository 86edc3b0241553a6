//! Local GPUs, seen through the environment the job receives (no GPU needed): the job's
//! `CUDA_VISIBLE_DEVICES` names exactly the GPUs its supervisor holds, concurrent jobs never
//! share one unless both allow it, and a job that cannot get its GPUs waits or is not run.

use mlres_backends::{GpuRequest, Outcome, cancel, log_paths};

use crate::*;

fn gpu_job(script: &str, lock_dir: &Path, count: u32, share: bool, host: &[&str]) -> LocalJobSpec {
    let mut s = sh(script);
    s.gpus = Some(GpuRequest {
        count,
        share,
        host: host.iter().map(|h| h.to_string()).collect(),
        lock_dir: lock_dir.to_path_buf(),
    });
    s
}

/// The value of CUDA_VISIBLE_DEVICES the job printed (`unset` if it had none).
fn visible(dir: &Path) -> String {
    read(&log_paths(dir).stdout).trim().to_string()
}

const SHOW: &str = "echo \"${CUDA_VISIBLE_DEVICES-unset}\"";

#[test]
fn no_gpus_means_an_empty_cuda_visible_devices_whatever_the_env_says() {
    let (t, dir) = attempt_dir();
    let mut s = gpu_job(SHOW, &t.path().join("gpus"), 0, false, &["0", "1"]);
    s.env.insert("CUDA_VISIBLE_DEVICES".into(), "1".into());
    let st = run(&dir, &s);
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    assert_eq!(visible(&dir), "");
    assert!(
        st.notes
            .iter()
            .any(|n| n == "GPUs: none (CUDA_VISIBLE_DEVICES is empty)"),
        "{:?}",
        st.notes
    );
    // A spec without a GPU request (written before GPUs) leaves the env alone.
    let (_t, dir) = attempt_dir();
    let st = run(&dir, &sh(SHOW));
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    assert_eq!(visible(&dir), "unset");
}

#[test]
fn a_job_sees_exactly_the_gpus_it_holds() {
    let (t, dir) = attempt_dir();
    let st = run(
        &dir,
        &gpu_job(SHOW, &t.path().join("gpus"), 2, false, &["0", "1", "2"]),
    );
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    assert_eq!(visible(&dir), "0,1");
    assert!(
        st.notes
            .iter()
            .any(|n| n.starts_with("GPUs: 0,1 (exclusive; CUDA_VISIBLE_DEVICES=0,1")),
        "{:?}",
        st.notes
    );
    assert_eq!(read(&dir.join("gpus")), "0,1\n");
}

/// Start one supervisor per spec at once; wait for all; return their statuses.
fn run_together(specs: &[(PathBuf, LocalJobSpec)]) -> Vec<Status> {
    let mut children = Vec::new();
    for (dir, s) in specs {
        prepare_attempt(dir, s).unwrap();
        children.push(supervise_cmd(dir).spawn().unwrap());
    }
    for mut c in children {
        assert_eq!(c.wait().unwrap().code(), Some(0));
    }
    specs
        .iter()
        .map(|(d, _)| match poll(d).unwrap() {
            AttemptState::Finished(s) => s,
            other => panic!("{other:?}"),
        })
        .collect()
}

fn overlap(a: &Status, b: &Status) -> bool {
    a.started_at_ms < b.ended_at_ms && b.started_at_ms < a.ended_at_ms
}

#[test]
fn concurrent_jobs_never_share_a_gpu_unless_both_allow_it() {
    let t = mlres_testkit::SweptDir::new_in(env!("CARGO_TARGET_TMPDIR"));
    let locks = t.path().join("gpus");
    let script = format!("{SHOW}; sleep 1");
    // Two GPUs, two exclusive jobs at once: one each, side by side.
    let specs: Vec<(PathBuf, LocalJobSpec)> = (0..2)
        .map(|i| {
            (
                t.path().join(format!("a{i}")),
                gpu_job(&script, &locks, 1, false, &["0", "1"]),
            )
        })
        .collect();
    let st = run_together(&specs);
    let mut seen: Vec<String> = specs.iter().map(|(d, _)| visible(d)).collect();
    seen.sort();
    assert_eq!(seen, ["0", "1"], "{st:?}");
    // One GPU, two exclusive jobs: the second waits for the first (never both at once).
    let specs: Vec<(PathBuf, LocalJobSpec)> = (0..2)
        .map(|i| {
            (
                t.path().join(format!("b{i}")),
                gpu_job(&script, &locks, 1, false, &["0"]),
            )
        })
        .collect();
    let st = run_together(&specs);
    assert!(st.iter().all(|s| s.outcome == Outcome::Completed), "{st:?}");
    assert!(!overlap(&st[0], &st[1]), "{st:?}");
    assert!(specs.iter().all(|(d, _)| visible(d) == "0"));
    // One GPU, two jobs that both allow sharing: side by side on it.
    let specs: Vec<(PathBuf, LocalJobSpec)> = (0..2)
        .map(|i| {
            (
                t.path().join(format!("c{i}")),
                gpu_job(&format!("{SHOW}; sleep 3"), &locks, 1, true, &["0"]),
            )
        })
        .collect();
    let st = run_together(&specs);
    assert!(st.iter().all(|s| s.outcome == Outcome::Completed), "{st:?}");
    assert!(overlap(&st[0], &st[1]), "{st:?}");
    assert!(specs.iter().all(|(d, _)| visible(d) == "0"));
    assert!(
        st[0]
            .notes
            .iter()
            .any(|n| n.contains("shared with other jobs that share")),
        "{:?}",
        st[0].notes
    );
    // A sharing job and an exclusive one: never at once.
    let specs = vec![
        (
            t.path().join("d0"),
            gpu_job(&script, &locks, 1, true, &["0"]),
        ),
        (
            t.path().join("d1"),
            gpu_job(&script, &locks, 1, false, &["0"]),
        ),
    ];
    let st = run_together(&specs);
    assert!(st.iter().all(|s| s.outcome == Outcome::Completed), "{st:?}");
    assert!(!overlap(&st[0], &st[1]), "{st:?}");
}

#[test]
fn a_job_that_cannot_get_its_gpus_is_not_run() {
    let t = mlres_testkit::SweptDir::new_in(env!("CARGO_TARGET_TMPDIR"));
    let locks = t.path().join("gpus");
    // More than the machine has: refused at once.
    let dir = t.path().join("a");
    let st = run(&dir, &gpu_job("echo ran", &locks, 2, false, &["0"]));
    assert_eq!(st.outcome, Outcome::StartFailed, "{}", st.detail);
    assert!(st.detail.contains("needs 2 GPU(s)"), "{}", st.detail);
    assert_eq!(read(&log_paths(&dir).stdout), "");
    let dir = t.path().join("b");
    let st = run(&dir, &gpu_job("echo ran", &locks, 1, false, &[]));
    assert_eq!(st.outcome, Outcome::StartFailed, "{}", st.detail);
    assert!(st.detail.contains("MLRES_LOCAL_GPUS"), "{}", st.detail);
    // Busy for longer than its timeout: it waited, then was not run.
    std::fs::create_dir_all(&locks).unwrap();
    let held = std::fs::File::create(locks.join("gpu-0.lock")).unwrap();
    held.lock().unwrap();
    let dir = t.path().join("c");
    let mut s = gpu_job("echo ran", &locks, 1, false, &["0"]);
    s.timeout_secs = 1;
    let st = run(&dir, &s);
    assert_eq!(st.outcome, Outcome::StartFailed, "{}", st.detail);
    assert!(
        st.detail
            .contains("waited its whole timeout (1 s) for 1 GPU(s)"),
        "{}",
        st.detail
    );
    assert_eq!(read(&log_paths(&dir).stdout), "");
    // Cancelled while it waits: cancelled, not run.
    let dir = t.path().join("d");
    prepare_attempt(&dir, &gpu_job("echo ran", &locks, 1, false, &["0"])).unwrap();
    let mut sup = supervise_cmd(&dir).spawn().unwrap();
    assert!(wait_for_file(&dir.join("supervisor.pid")));
    std::thread::sleep(Duration::from_millis(200));
    cancel(&dir).unwrap();
    assert_eq!(sup.wait().unwrap().code(), Some(0));
    let AttemptState::Finished(st) = poll(&dir).unwrap() else {
        panic!()
    };
    assert_eq!(st.outcome, Outcome::Cancelled, "{}", st.detail);
    assert!(st.detail.contains("waiting for its GPUs"), "{}", st.detail);
    assert_eq!(read(&log_paths(&dir).stdout), "");
    // Freed: the next job gets it.
    drop(held);
    let dir = t.path().join("e");
    let st = run(&dir, &gpu_job(SHOW, &locks, 1, false, &["0"]));
    assert_eq!(st.outcome, Outcome::Completed, "{}", st.detail);
    assert_eq!(visible(&dir), "0");
}
