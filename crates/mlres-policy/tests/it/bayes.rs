//! `method: bayes`: reproducible, resumable from history alone, never re-proposing a pending
//! or tried configuration, valid on mixed spaces, robust to degenerate histories, and better
//! than `method: tpe` on a smooth function at equal trials.

use mlres_policy::{
    Config, Method, Observation, Outcome, Param, Scalar, SearchSpace, parse_program, propose_next,
    suggest_bayes, validate_config,
};
use serde_json::Value;

use crate::tpe::{best, branin, branin_space, hartmann6, run, stored};

#[test]
fn same_seed_same_proposals_other_seed_other_proposals() {
    let a = run(&branin_space(Method::Bayes, 7), 20, branin);
    let b = run(&branin_space(Method::Bayes, 7), 20, branin);
    assert_eq!(a, b);
    let c = run(&branin_space(Method::Bayes, 8), 20, branin);
    assert_ne!(a[0].config, c[0].config);
    assert_ne!(a[19].config, c[19].config);
}

#[test]
fn resumed_from_history_equals_uninterrupted() {
    let s = branin_space(Method::Bayes, 3);
    let mut full: Vec<Observation> = Vec::new();
    for i in 0..20u64 {
        let c = stored(suggest_bayes(&s, &full, i));
        let loss = branin(&c);
        full.push(Observation {
            config: c,
            outcome: Outcome::Done(loss),
        });
    }
    // Cuts in the start-up sequence and in the modelled phase.
    for cut in [2usize, 7, 13, 19] {
        let resumed: Vec<Observation> = full[..cut]
            .iter()
            .map(|o| Observation {
                config: stored(o.config.clone()),
                outcome: o.outcome.clone(),
            })
            .collect();
        assert_eq!(
            stored(suggest_bayes(&s, &resumed, cut as u64)),
            full[cut].config,
            "at {cut}"
        );
    }
}

fn mixed_space(seed: u64) -> SearchSpace {
    SearchSpace {
        method: Method::Bayes,
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
        seed,
        command: None,
    }
}

#[test]
fn pending_and_tried_configs_are_not_proposed_again_until_exhausted() {
    let s = mixed_space(11);
    let mut history: Vec<Observation> = Vec::new();
    let mut keys = std::collections::BTreeSet::new();
    for i in 0..12u64 {
        let (_, c) = propose_next(&s, i, &history).expect("an untried configuration");
        assert!(
            keys.insert(Value::Object(c.clone()).to_string()),
            "repeat at {i}: {c:?}"
        );
        let outcome = if i % 3 == 0 {
            Outcome::Pending
        } else {
            Outcome::Done(c["layers"].as_f64().expect("layers"))
        };
        history.push(Observation { config: c, outcome });
    }
    assert_eq!(keys.len(), 12);
    assert_eq!(propose_next(&s, 12, &history), None);
}

#[test]
fn parallel_asks_with_pending_trials_spread_out() {
    // Four workers ask at once after 12 completed trials: the kriging believer keeps them
    // apart (the model's variance collapses at a pending point).
    let s = branin_space(Method::Bayes, 5);
    let mut history = run(&s, 12, branin);
    let mut batch: Vec<Config> = Vec::new();
    for i in 12..16u64 {
        let c = suggest_bayes(&s, &history, i);
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
                d > 0.05,
                "two workers got (nearly) the same point: {a:?} {b:?}"
            );
        }
    }
}

#[test]
fn mixed_log_integer_and_categorical_space_is_searched_validly() {
    // The loss depends on a category, a log-scaled learning rate and a log-scaled integer;
    // the best is opt=lion, lr=1e-3, width=128.
    let doc = "# T\n\n## Budget envelope\n\n```yaml\nmax_jobs: 40\nmax_walltime: 8h\n\
               allowed_flavors: [cpu-basic]\nmax_timeout: 1h\n```\n\n## Search space\n\n\
               ```yaml\nmethod: bayes\nseed: 4\nparameters:\n  opt:\n    values: [adam, sgd, lion]\n  \
               lr: {distribution: log_uniform_values, min: 0.00001, max: 0.1}\n  \
               width: {distribution: int_uniform, min: 16, max: 1024, log: true}\n  \
               depth: {distribution: q_uniform, min: 1, max: 8, q: 1}\n```\n";
    let p = parse_program(doc).expect("program parses");
    let s = p.search_space.expect("space");
    assert_eq!(s.method, Method::Bayes);
    let loss = |c: &Config| {
        let opt = match c["opt"].as_str().expect("opt") {
            "lion" => 0.0,
            "adam" => 0.5,
            _ => 1.5,
        };
        let lr = c["lr"].as_f64().expect("lr").log10() + 3.0;
        let w = (c["width"].as_f64().expect("width") / 128.0).log2() / 3.0;
        opt + lr * lr + w * w + 0.01 * c["depth"].as_f64().expect("depth")
    };
    let mut history: Vec<Observation> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..30u64 {
        let (_, c) = propose_next(&s, i, &history).expect("proposal");
        let v = validate_config(&s, &Value::Object(c.clone()))
            .unwrap_or_else(|e| panic!("invalid proposal {c:?}: {e}"));
        assert_eq!(v, c, "the proposal is already normalised");
        assert!(c["width"].is_i64(), "width stays an integer: {c:?}");
        assert!(seen.insert(Value::Object(c.clone()).to_string()), "{c:?}");
        let l = loss(&c);
        history.push(Observation {
            config: c,
            outcome: Outcome::Done(l),
        });
    }
    let (top, l) = history
        .iter()
        .filter_map(|o| match o.outcome {
            Outcome::Done(l) => Some((&o.config, l)),
            _ => None,
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("a best");
    assert_eq!(top["opt"], "lion", "{top:?} ({l})");
    assert!(l < 0.2, "best loss {l} at {top:?}");
}

#[test]
fn degenerate_histories_still_give_untried_proposals() {
    let s = branin_space(Method::Bayes, 9);
    // Every loss equal, some not finite, some failed, some pending.
    let mut history: Vec<Observation> = Vec::new();
    for i in 0..14u64 {
        let c = suggest_bayes(&s, &history, i);
        let outcome = match i % 5 {
            0 => Outcome::Done(f64::NAN),
            1 => Outcome::Failed,
            2 => Outcome::Pending,
            3 => Outcome::Done(f64::INFINITY),
            _ => Outcome::Done(1.0),
        };
        history.push(Observation { config: c, outcome });
    }
    let c = suggest_bayes(&s, &history, 14);
    assert!(
        history.iter().all(|o| o.config != c),
        "repeated {c:?} from a flat history"
    );
    // One categorical only: proposals walk through its values.
    let one = SearchSpace {
        method: Method::Bayes,
        parameters: [(
            "act".to_string(),
            Param::Values(vec![Scalar::Str("relu".into()), Scalar::Str("gelu".into())]),
        )]
        .into_iter()
        .collect(),
        seed: 1,
        command: None,
    };
    let h = run(&one, 2, |_| 0.5);
    assert_ne!(h[0].config, h[1].config);
    assert_eq!(propose_next(&one, 2, &h), None);
}

#[test]
fn bayes_beats_tpe_on_smooth_functions_at_equal_trials() {
    // Best after 40 trials over 5 seeds (Hartmann6 optimum -3.32). bench/search.sh measures
    // bayes near -3.3 and tpe near -2.8 at 50 trials; the margin asserted is generous.
    let space = |method, seed| SearchSpace {
        method,
        parameters: (1..=6)
            .map(|i| (format!("x{i}"), Param::Uniform { min: 0.0, max: 1.0 }))
            .collect(),
        seed,
        command: None,
    };
    let mut gp = Vec::new();
    let mut tpe = Vec::new();
    for seed in 0..5 {
        gp.push(best(&run(&space(Method::Bayes, seed), 40, hartmann6)));
        tpe.push(best(&run(&space(Method::Tpe, seed), 40, hartmann6)));
    }
    gp.sort_by(f64::total_cmp);
    tpe.sort_by(f64::total_cmp);
    assert!(
        gp[2] < tpe[2] - 0.1 && gp[2] < -2.9,
        "median best: bayes {gp:?} vs tpe {tpe:?}"
    );
    // Branin (optimum 0.398): within 0.1 of it after 25 trials on every seed.
    for seed in 0..3 {
        let b = best(&run(&branin_space(Method::Bayes, seed), 25, branin));
        assert!(b < 0.5, "seed {seed}: best {b} after 25 trials");
    }
}
