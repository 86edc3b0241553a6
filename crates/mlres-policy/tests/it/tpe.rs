//! `method: tpe`: reproducible, resumable from history alone, never re-proposing a pending or
//! tried configuration, and clearly better than random search on a cheap function.

use mlres_policy::{
    Config, Method, Observation, Outcome, Param, Scalar, SearchSpace, propose_next, suggest,
};
use serde_json::Value;

pub(crate) fn branin_space(method: Method, seed: u64) -> SearchSpace {
    SearchSpace {
        method,
        parameters: [
            (
                "x1".to_string(),
                Param::Uniform {
                    min: -5.0,
                    max: 10.0,
                },
            ),
            (
                "x2".to_string(),
                Param::Uniform {
                    min: 0.0,
                    max: 15.0,
                },
            ),
        ]
        .into_iter()
        .collect(),
        seed,
        command: None,
    }
}

pub(crate) fn branin(c: &Config) -> f64 {
    let (x1, x2) = (c["x1"].as_f64().expect("x1"), c["x2"].as_f64().expect("x2"));
    let pi = std::f64::consts::PI;
    let b = 5.1 / (4.0 * pi * pi);
    (x2 - b * x1 * x1 + 5.0 / pi * x1 - 6.0).powi(2)
        + 10.0 * (1.0 - 1.0 / (8.0 * pi)) * x1.cos()
        + 10.0
}

/// Runs `n` sequential trials; returns the history.
pub(crate) fn run(space: &SearchSpace, n: usize, f: impl Fn(&Config) -> f64) -> Vec<Observation> {
    let mut history = Vec::new();
    let mut next = 0;
    for _ in 0..n {
        let (i, c) = propose_next(space, next, &history).expect("proposal");
        next = i + 1;
        let loss = f(&c);
        history.push(Observation {
            config: c,
            outcome: Outcome::Done(loss),
        });
    }
    history
}

pub(crate) fn best(h: &[Observation]) -> f64 {
    h.iter()
        .filter_map(|o| match o.outcome {
            Outcome::Done(l) => Some(l),
            _ => None,
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn same_seed_same_proposals_other_seed_other_proposals() {
    let a = run(&branin_space(Method::Tpe, 7), 30, branin);
    let b = run(&branin_space(Method::Tpe, 7), 30, branin);
    assert_eq!(a, b);
    let c = run(&branin_space(Method::Tpe, 8), 30, branin);
    assert_ne!(a[0].config, c[0].config);
    assert_ne!(a[29].config, c[29].config);
}

/// A config as the ledger gives it back: stored as JSON text and parsed again.
pub(crate) fn stored(c: Config) -> Config {
    serde_json::from_str(&serde_json::to_string(&c).expect("json")).expect("config")
}

#[test]
fn resumed_from_history_equals_uninterrupted() {
    let s = branin_space(Method::Tpe, 3);
    // The loop reads its history from the ledger before every proposal.
    let mut full: Vec<Observation> = Vec::new();
    for i in 0..25u64 {
        let c = stored(suggest(&s, &full, i));
        let loss = branin(&c);
        full.push(Observation {
            config: c,
            outcome: Outcome::Done(loss),
        });
    }
    // A loop that stopped after 17 trials and restarted knows only its ledger.
    for cut in [3usize, 12, 17, 24] {
        let resumed: Vec<Observation> = full[..cut]
            .iter()
            .map(|o| Observation {
                config: stored(o.config.clone()),
                outcome: o.outcome.clone(),
            })
            .collect();
        assert_eq!(
            stored(suggest(&s, &resumed, cut as u64)),
            full[cut].config,
            "at {cut}"
        );
    }
}

#[test]
fn pending_and_tried_configs_are_not_proposed_again() {
    // A small discrete space: 3 x 4 = 12 configurations.
    let s = SearchSpace {
        method: Method::Tpe,
        parameters: [
            (
                "opt".to_string(),
                Param::Values(vec![
                    Scalar::Str("adam".into()),
                    Scalar::Str("sgd".into()),
                    Scalar::Str("lion".into()),
                ]),
            ),
            ("layers".to_string(), Param::IntUniform { min: 1, max: 4 }),
        ]
        .into_iter()
        .collect(),
        seed: 11,
        command: None,
    };
    let mut history: Vec<Observation> = Vec::new();
    let mut keys = std::collections::BTreeSet::new();
    for i in 0..12u64 {
        let c = suggest(&s, &history, i);
        assert!(
            keys.insert(Value::Object(c.clone()).to_string()),
            "repeat at {i}: {c:?}"
        );
        // Every third one is still running when the next is asked for; the others finished.
        let outcome = if i % 3 == 0 {
            Outcome::Pending
        } else {
            #[allow(clippy::cast_precision_loss)]
            Outcome::Done(c["layers"].as_f64().expect("layers"))
        };
        history.push(Observation { config: c, outcome });
    }
    assert_eq!(keys.len(), 12);
    // All 12 tried or running: the loop's proposal says the space is exhausted.
    assert_eq!(propose_next(&s, 12, &history), None);
}

#[test]
fn parallel_asks_with_pending_trials_spread_out() {
    // Four workers ask at once after 12 completed trials: the constant liar keeps them apart.
    let s = branin_space(Method::Tpe, 5);
    let mut history = run(&s, 12, branin);
    let mut batch = Vec::new();
    for i in 12..16u64 {
        let c = suggest(&s, &history, i);
        history.push(Observation {
            config: c.clone(),
            outcome: Outcome::Pending,
        });
        batch.push(c);
    }
    for (i, a) in batch.iter().enumerate() {
        for b in &batch[i + 1..] {
            let d = ((a["x1"].as_f64().expect("x") - b["x1"].as_f64().expect("x")).powi(2)
                + (a["x2"].as_f64().expect("x") - b["x2"].as_f64().expect("x")).powi(2))
            .sqrt();
            assert!(
                d > 1e-3,
                "two workers got (nearly) the same point: {a:?} {b:?}"
            );
        }
    }
}

pub(crate) fn hartmann6(c: &Config) -> f64 {
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    let x: Vec<f64> = (1..=6)
        .map(|i| c[&format!("x{i}")].as_f64().expect("x"))
        .collect();
    -(0..4)
        .map(|k| {
            let e: f64 = (0..6).map(|j| A[k][j] * (x[j] - P[k][j]).powi(2)).sum();
            ALPHA[k] * (-e).exp()
        })
        .sum::<f64>()
}

#[test]
fn tpe_beats_random_on_hartmann6_over_seeds() {
    // Best after 50 trials over 7 seeds (optimum -3.32). bench/search.sh measures random
    // search near -1.9 and TPE near -2.7 there; the margin asserted is generous.
    let space = |method, seed| SearchSpace {
        method,
        parameters: (1..=6)
            .map(|i| (format!("x{i}"), Param::Uniform { min: 0.0, max: 1.0 }))
            .collect(),
        seed,
        command: None,
    };
    let mut tpe = Vec::new();
    let mut rnd = Vec::new();
    for seed in 0..7 {
        tpe.push(best(&run(&space(Method::Tpe, seed), 50, hartmann6)));
        rnd.push(best(&run(&space(Method::Random, seed), 50, hartmann6)));
    }
    let wins = tpe.iter().zip(&rnd).filter(|(t, r)| t < r).count();
    tpe.sort_by(f64::total_cmp);
    rnd.sort_by(f64::total_cmp);
    assert!(
        tpe[3] < rnd[3] - 0.3,
        "median best: tpe {} vs random {}",
        tpe[3],
        rnd[3]
    );
    assert!(wins >= 5, "tpe won on {wins}/7 seeds: {tpe:?} vs {rnd:?}");
}
