/// The README's main command, end to end: the built-in trainer swept on the local backend.
#[test]
fn the_demo_sweeps_the_builtin_trainer_and_finds_a_good_config() {
    let env = crate::support::Env::new();
    let dir = env.path().join("demo");
    let out = env
        .cmd()
        .args(["demo", "--dir"])
        .arg(&dir)
        .arg("--json")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("starting a fresh campaign"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["summary"];
    assert!(s["experiments"].as_u64().unwrap() >= 8, "{s}");
    let best = s["best"]["metric"].as_f64().unwrap();
    let median = s["median_metric"].as_f64().unwrap();
    let untrained = v["untrained_eval_accuracy"].as_f64().unwrap();
    assert!(best > median, "best {best} must beat the median {median}");
    assert!(
        best >= untrained + 0.5,
        "best {best} must be far above the untrained model {untrained}"
    );
    assert!(
        s["best"]["checkpoint"]
            .as_str()
            .unwrap()
            .ends_with(".safetensors")
    );
    assert!(dir.join("runs/ledger.jsonl").exists());
    assert!(dir.join("runs/summary.md").exists());

    // Running it again says clearly that it starts fresh after a finished campaign.
    let again = env
        .cmd()
        .args(["demo", "--dir"])
        .arg(&dir)
        .arg("--json")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&again.stderr).into_owned();
    assert!(again.status.success(), "{err}");
    assert!(err.contains("previous campaign"), "{err}");
}
