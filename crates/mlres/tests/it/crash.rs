use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{Env, Fast};

fn rand_u64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SIGKILL the loop at many random points and resume it each time: every experiment runs
/// exactly once, none is lost, and reserved + spent never exceeds the envelope.
#[test]
fn sigkill_at_random_points_loses_nothing_and_runs_nothing_twice() {
    let env = Env::new();
    let n = 30;
    let values: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let values = format!("[{}]", values.join(", "));
    // Every execution says so first; its supervisor captures that in its attempt's log (a
    // job cannot write anywhere outside its own work dir).
    let script = "echo ran {x}; sleep 0.1{x}; echo score={x}";
    env.write_program(
        &Fast {
            max_jobs: n,
            max_concurrent: 2,
            max_walltime: "20m",
            timeout: "1m",
            values: &values,
            script,
            ..Default::default()
        }
        .program(),
    );
    env.approve();
    let mut seed = 0x5eed_u64 ^ std::process::id() as u64;
    let mut kills = 0;
    let mut finished = false;
    let errlog = env.path().join("loop.err");
    for round in 0..200 {
        let mut child = env
            .cmd()
            .args(["loop", "run", "--json"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errlog).unwrap())
            .spawn()
            .unwrap();
        let delay = 5 + rand_u64(&mut seed) % 300;
        std::thread::sleep(Duration::from_millis(delay));
        match child.try_wait().unwrap() {
            Some(status) => {
                let err = std::fs::read_to_string(&errlog).unwrap_or_default();
                assert!(
                    status.success(),
                    "round {round}: loop failed: {status:?}\n{err}"
                );
                finished = true;
                break;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
            }
        }
        // The envelope holds at every kill point.
        let s = env.json(&["loop", "status", "--json"]);
        let jobs = s["budget"]["jobs"]["used"].as_u64().unwrap();
        let wall = s["budget"]["walltime_secs"]["used"].as_u64().unwrap();
        assert!(jobs <= n as u64, "jobs {jobs} > {n}");
        assert!(wall <= 20 * 60, "walltime {wall}");
        assert!(s["in_flight"].as_array().unwrap().len() <= 2, "{s}");
        if s["campaign"]["status"] == "finished" {
            finished = true;
            break;
        }
    }
    if !finished {
        env.ok(&["loop", "run"]);
    }
    eprintln!("crash test: {kills} SIGKILLs");
    assert!(
        kills >= 10,
        "the test must actually kill the loop several times (killed {kills})"
    );
    let s = env.json(&["loop", "status", "--json"]);
    assert_eq!(s["campaign"]["status"], "finished", "{s}");
    let exps = s["experiments"].as_array().unwrap();
    assert_eq!(exps.len(), n as usize, "{s}");
    let mut seen = BTreeMap::new();
    for e in exps {
        assert_eq!(e["state"], "evaluated", "{e}");
        assert_eq!(e["status"], "completed", "{e}");
        *seen.entry(e["config"]["x"].as_i64().unwrap()).or_insert(0) += 1;
    }
    assert_eq!(
        seen.len(),
        n as usize,
        "every grid point exactly once: {seen:?}"
    );
    // Each job executed exactly once: one `ran <x>` line over all attempts' stdout logs.
    let mut runs: BTreeMap<i64, u32> = BTreeMap::new();
    let mut stack = vec![env.state.join("jobs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "stdout.log") {
                for l in std::fs::read_to_string(&p).unwrap().lines() {
                    if let Some(x) = l.strip_prefix("ran ") {
                        *runs.entry(x.trim().parse().unwrap()).or_default() += 1;
                    }
                }
            }
        }
    }
    assert_eq!(runs.len(), n as usize, "{runs:?}");
    assert!(runs.values().all(|&c| c == 1), "a job ran twice: {runs:?}");
    let v = env.json(&["ledger", "verify", "--json"]);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(s["budget"]["jobs"]["used"], n);
}
