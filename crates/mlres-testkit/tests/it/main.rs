//! The sweep itself: it must find canaries anywhere, in any file, and only there.

use mlres_testkit::{CANARY_MARKERS, SweptDir, sweep};

fn base() -> &'static str {
    env!("CARGO_TARGET_TMPDIR")
}

#[test]
fn a_canary_in_a_nested_binary_file_is_found_and_fails_the_drop() {
    let d = SweptDir::new_in(base());
    let nested = d.path().join("state/jobs/c1/e1-a1");
    std::fs::create_dir_all(&nested).unwrap();
    let mut bytes = vec![0u8, 255, 7];
    bytes.extend_from_slice(b"xx hf_mlresCANARYtoken0123456789abcdefXYZ yy");
    bytes.push(0);
    std::fs::write(nested.join("ledger.db-wal"), &bytes).unwrap();
    std::fs::write(d.path().join("clean.txt"), "nothing here").unwrap();
    let s = d.sweep().unwrap();
    assert_eq!(s.files, 2);
    assert_eq!(s.leaks.len(), 1);
    assert!(s.leaks[0].path.ends_with("ledger.db-wal"));
    let path = d.path().to_path_buf();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(d)));
    assert!(r.is_err(), "dropping a leaky dir must fail the test");
    // The evidence is kept for inspection; clean it up here.
    assert!(path.exists());
    std::fs::remove_dir_all(path).unwrap();
}

#[test]
fn allowed_inputs_and_recorded_outputs() {
    let d = SweptDir::new_in(base());
    let home = d.path().join("home/.cache/huggingface");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("token"), "hf_CANARYfile7Qz3mXw9Lk2Pv8Rt5Ny1").unwrap();
    d.allow(&home);
    assert!(d.sweep().unwrap().leaks.is_empty());
    d.record("mlres hub whoami stdout", b"user: alice");
    assert!(d.sweep().unwrap().leaks.is_empty());
    d.record("stderr", b"token hf_canaryCANARYcanary0000 printed");
    let s = d.sweep().unwrap();
    assert_eq!(s.leaks.len(), 1, "{s:?}");
    assert!(s.leaks[0].path.starts_with(d.path().join(".outputs")));
    // Clean up without panicking: remove the leak, then drop.
    std::fs::remove_dir_all(d.path().join(".outputs")).unwrap();
}

#[test]
fn every_marker_is_detected_and_symlinks_are_not_followed() {
    let outside = SweptDir::new_in(base());
    std::fs::write(outside.path().join("secret"), "canary-7f3a9c1e").unwrap();
    outside.allow(outside.path().join("secret"));
    let d = SweptDir::new_in(base());
    std::os::unix::fs::symlink(outside.path().join("secret"), d.path().join("link")).unwrap();
    assert!(d.sweep().unwrap().leaks.is_empty());
    for (i, m) in CANARY_MARKERS.iter().enumerate() {
        let p = d.path().join(format!("f{i}"));
        std::fs::write(&p, format!("..{m}..")).unwrap();
        let s = sweep(d.path(), &[]).unwrap();
        assert_eq!(s.leaks.len(), 1, "{m}");
        std::fs::remove_file(p).unwrap();
    }
}

/// The throwaway cluster starts, runs a job with two (fake) GPUs (exit 9 without them) and
/// reports its exit code,
/// and stops its daemons when dropped.
#[test]
fn a_throwaway_slurm_cluster_runs_a_gpu_job_and_stops() {
    let Some(c) = mlres_testkit::slurm::cluster_or_skip("throwaway cluster") else {
        return;
    };
    let id = c.submit_script(
        &["--gres=gpu:2", "--time=1"],
        "#!/bin/sh\ntest \"$SLURM_GPUS_ON_NODE\" = 2 || exit 9\nexit 3\n",
    );
    let mut state = None;
    for _ in 0..300 {
        state = c.job_state(&id);
        if state.as_deref() == Some("FAILED") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(state.as_deref(), Some("FAILED"), "{}", c.logs());
    let show = c.run("scontrol", &["-o", "show", "job", &id]);
    assert!(show.contains("ExitCode=3:0"), "{show}");
    let conf = c.conf();
    drop(c);
    assert!(!conf.exists(), "the cluster's directory is removed");
}
