//! Metric ranges from the objective, noise-aware keep/discard (with its false-keep rate on
//! pure-noise changes measured over many seeded simulated decisions) and successive-halving
//! early stopping: parsing, the statistics, and the rules as plain functions.

use mlres_policy::{
    Decision, EarlyStop, Goal, LoopFacts, MeanBest, MetricRange, NoiseModel, Objective, Run,
    StopReason, Streaks, approval_document, asha_prune, config_key, curve_point, decide_noisy,
    incumbent_mean, normal_sf, out_of_range, parse_program, pooled_sd, range_hint, stop_reason,
    student_t_sf,
};
use serde_json::json;

use crate::common::{BASE, doc, expect_err};

const JOB: &str = "command: [python3, t.py, \"--lr={lr}\", \"--seed={seed}\"]\ntimeout: 10m";
const SPACE: &str = "method: grid\nparameters:\n  lr: {values: [0.1, 0.01]}";

fn program(objective: &str) -> (String, Vec<usize>) {
    doc(&[
        ("Budget envelope", BASE),
        ("Objective", objective),
        ("Job", JOB),
        ("Search space", SPACE),
    ])
}

fn parsed(objective: &str) -> Objective {
    let (src, _) = program(objective);
    parse_program(&src)
        .unwrap_or_else(|e| panic!("{e}\n{src}"))
        .objective
        .unwrap()
}

fn objective(goal: Goal, noise: Option<NoiseModel>) -> Objective {
    Objective {
        metric: "acc".into(),
        goal,
        target: None,
        patience: None,
        max_consecutive_failures: 3,
        range: None,
        noise,
        early_stop: None,
    }
}

fn measured(k: u32) -> Option<NoiseModel> {
    Some(NoiseModel {
        sd: None,
        repeats: Some(k),
        confidence: 0.95,
    })
}

fn stated(sd: f64) -> Option<NoiseModel> {
    Some(NoiseModel {
        sd: Some(sd),
        repeats: None,
        confidence: 0.95,
    })
}

// ---------------------------------------------------------------- ranges

#[test]
fn range_is_read_as_a_pair_or_as_min_and_max() {
    let o = parsed("metric: acc\ngoal: maximize\nrange: [0, 100]");
    assert_eq!(
        o.range,
        Some(MetricRange {
            min: Some(0.0),
            max: Some(100.0)
        })
    );
    let o = parsed("metric: loss\ngoal: minimize\nrange: {min: 0}");
    assert_eq!(
        o.range,
        Some(MetricRange {
            min: Some(0.0),
            max: None
        })
    );
    let o = parsed("metric: loss\ngoal: minimize\nrange: [null, 5]");
    assert_eq!(o.range.unwrap().max, Some(5.0));
    assert_eq!(o.range.unwrap().min, None);
}

#[test]
fn bad_ranges_are_refused_with_their_position() {
    let (src, s) = program("metric: acc\ngoal: maximize\nrange: [1, 0]");
    expect_err(&src, s[1] + 2, 8, "low < high");
    let (src, s) = program("metric: acc\ngoal: maximize\nrange: [1]");
    expect_err(&src, s[1] + 2, 8, "`range` must be `[low, high]`");
    let (src, s) = program("metric: acc\ngoal: maximize\nrange: {low: 1}");
    expect_err(&src, s[1] + 2, 9, "unknown key `low`");
    let (src, s) = program("metric: acc\ngoal: maximize\nrange: [0, 1]\ntarget: 90");
    expect_err(&src, s[1] + 3, 9, "outside the declared `range`");
}

#[test]
fn a_value_outside_the_declared_range_is_refused_with_why() {
    let mut o = objective(Goal::Maximize, None);
    o.range = Some(MetricRange {
        min: Some(0.0),
        max: Some(100.0),
    });
    assert_eq!(out_of_range(&o, 85.2), None, "percent inside [0, 100]");
    let why = out_of_range(&o, 130.0).unwrap();
    assert!(why.contains("130") && why.contains("[0, 100]"), "{why}");
    assert!(out_of_range(&o, -0.5).is_some());
    // A declared range silences the name-based hint.
    assert_eq!(range_hint(&o, 85.2), None);
}

#[test]
fn names_only_warn_a_percent_accuracy_is_not_refused() {
    let o = objective(Goal::Maximize, None);
    assert_eq!(
        out_of_range(&o, 85.2),
        None,
        "no declared range: nothing refused"
    );
    let hint = range_hint(&o, 85.2).unwrap();
    assert!(
        hint.contains("outside [0, 1]") && hint.contains("range:"),
        "{hint}"
    );
    assert_eq!(range_hint(&o, 0.85), None);
    let mut loss = objective(Goal::Minimize, None);
    loss.metric = "eval_loss".into();
    assert!(range_hint(&loss, -0.1).unwrap().contains("negative"));
}

// ---------------------------------------------------------------- parsing noise / early stop

#[test]
fn noise_and_early_stop_parse_with_defaults() {
    let o = parsed("metric: acc\ngoal: maximize\nnoise: {repeats: 3}");
    assert_eq!(o.noise, measured(3));
    let o = parsed("metric: acc\ngoal: maximize\nnoise: {sd: 0.002, confidence: 0.99}");
    assert_eq!(o.noise.unwrap().sd, Some(0.002));
    assert_eq!(o.noise.unwrap().confidence, 0.99);
    let o = parsed("metric: acc\ngoal: maximize\nearly_stop: {max_step: 52}");
    let es = o.early_stop.unwrap();
    assert_eq!(es.step_key, "step");
    assert_eq!(es.rungs(), vec![1.0, 3.0, 9.0, 27.0]);
    assert_eq!((es.reduction_factor, es.startup), (3, 3));
    let o = parsed("metric: acc\ngoal: maximize");
    assert_eq!((o.noise, o.early_stop, o.range), (None, None, None));
}

#[test]
fn bad_noise_and_early_stop_are_refused() {
    let (src, s) = program("metric: acc\ngoal: maximize\nnoise: {confidence: 0.9}");
    expect_err(&src, s[1] + 2, 8, "needs `sd`");
    let (src, s) = program("metric: acc\ngoal: maximize\nnoise: {repeats: 1}");
    expect_err(&src, s[1] + 2, 18, "from 2 to 100");
    let (src, s) = program("metric: acc\ngoal: maximize\nnoise: {sd: 0}");
    expect_err(&src, s[1] + 2, 13, "greater than 0");
    let (src, s) = program("metric: acc\ngoal: maximize\nnoise: {sd: 1, confidence: 1}");
    expect_err(&src, s[1] + 2, 28, "below 1");
    let (src, s) = program("metric: acc\ngoal: maximize\nearly_stop: {method: median}");
    expect_err(&src, s[1] + 2, 22, "must be asha");
    let (src, s) = program("metric: acc\ngoal: maximize\nearly_stop: {min_step: 5, max_step: 2}");
    expect_err(&src, s[1] + 2, 37, "must be above");
}

#[test]
fn early_stop_with_a_backend_that_cannot_stop_jobs_is_refused_not_ignored() {
    let env = "max_jobs: 3\nmax_walltime: 8h\nallowed_flavors: [cpu-basic]\nmax_timeout: 1h\nbackends: [hf-jobs]\nnamespace: alice\nimages: [\"python:3.12\"]";
    let (src, s) = doc(&[
        ("Budget envelope", env),
        (
            "Objective",
            "metric: acc\ngoal: maximize\nearly_stop: {max_step: 52}",
        ),
        (
            "Job",
            "backend: hf-jobs\nimage: \"python:3.12\"\ncommand: [python3, t.py, \"--lr={lr}\"]\ntimeout: 10m",
        ),
        ("Search space", SPACE),
    ]);
    let e = expect_err(&src, s[2] - 3, 1, "the `hf-jobs` backend cannot");
    assert!(e.help.unwrap().contains("backend: local"));
}

#[test]
fn the_approval_pins_noise_range_and_early_stop_only_when_declared() {
    let (plain, _) = program("metric: acc\ngoal: maximize");
    let doc_plain = approval_document(&parse_program(&plain).unwrap());
    assert!(!doc_plain.contains("noise") && !doc_plain.contains("early_stop"));
    assert!(!doc_plain.contains("\"range\""));
    let (full, _) = program(
        "metric: acc\ngoal: maximize\nrange: [0, 100]\nnoise: {repeats: 3}\nearly_stop: {max_step: 52}",
    );
    let doc_full = approval_document(&parse_program(&full).unwrap());
    for k in ["\"noise\"", "\"range\"", "\"early_stop\"", "\"repeats\": 3"] {
        assert!(doc_full.contains(k), "{k} missing from\n{doc_full}");
    }
}

// ---------------------------------------------------------------- statistics

#[test]
fn tail_probabilities_match_published_quantiles() {
    let close = |a: f64, b: f64, tol: f64| assert!((a - b).abs() < tol, "{a} vs {b}");
    close(normal_sf(1.644_853_6), 0.05, 1e-6);
    close(normal_sf(0.0), 0.5, 1e-7);
    close(normal_sf(-1.959_964), 0.975, 1e-6);
    // Student t 95% one-sided quantiles: df 1 6.313752, df 2 2.919986, df 10 1.812461,
    // df 30 1.697261.
    close(student_t_sf(6.313_752, 1.0), 0.05, 1e-6);
    close(student_t_sf(2.919_986, 2.0), 0.05, 1e-6);
    close(student_t_sf(1.812_461, 10.0), 0.05, 1e-6);
    close(student_t_sf(1.697_261, 30.0), 0.05, 1e-6);
    close(student_t_sf(0.0, 4.0), 0.5, 1e-12);
    close(student_t_sf(-2.919_986, 2.0), 0.95, 1e-6);
}

#[test]
fn pooled_sd_uses_only_repeated_configurations() {
    let r = |id, c: &str, v| Run {
        id,
        config: c.into(),
        value: v,
    };
    assert_eq!(pooled_sd(&[r(1, "a", 1.0), r(2, "b", 2.0)]), None);
    let (sd, df) = pooled_sd(&[r(1, "a", 1.0), r(2, "a", 3.0), r(3, "b", 9.0)]).unwrap();
    assert_eq!(df, 1);
    assert!((sd - 2f64.sqrt()).abs() < 1e-12);
}

#[test]
fn configs_compare_whatever_their_key_order() {
    assert_eq!(
        config_key(&json!({"b": 1, "a": {"y": 2, "x": 3}})),
        config_key(&json!({"a": {"x": 3, "y": 2}, "b": 1}))
    );
    assert_ne!(config_key(&json!({"a": 1})), config_key(&json!({"a": 2})));
}

// ---------------------------------------------------------------- decisions

fn run(id: i64, config: &str, value: f64) -> Run {
    Run {
        id,
        config: config.into(),
        value,
    }
}

#[test]
fn the_issue_example_a_rerun_scoring_0_919_after_0_921_is_not_kept() {
    for goal in [Goal::Maximize, Goal::Minimize] {
        for noise in [measured(2), stated(0.002)] {
            let o = objective(goal, noise);
            let first = run(1, "{\"lr\":0.01}", 0.921);
            let v = decide_noisy(
                &o,
                "{\"lr\":0.01}",
                0.919,
                Some(&first),
                Some(0.921),
                std::slice::from_ref(&first),
            );
            assert_eq!(
                v.decision,
                Decision::Discard,
                "{goal:?} {noise:?}: {}",
                v.reason
            );
            assert_eq!(v.evidence.repeat_of, Some(1));
            assert!(v.reason.contains("repeats the incumbent"), "{}", v.reason);
        }
    }
    // Without a noise model the rule is today's (a lower loss is kept), and the evidence and
    // the reason say that no noise model was given and that this is the same configuration.
    let o = objective(Goal::Minimize, None);
    let first = run(1, "{\"lr\":0.01}", 0.921);
    let v = decide_noisy(&o, "{\"lr\":0.01}", 0.919, Some(&first), Some(0.921), &[]);
    assert_eq!(v.decision, Decision::Keep);
    assert_eq!(v.evidence.noise_model, "none");
    assert!(v.reason.contains("same configuration"), "{}", v.reason);
}

#[test]
fn a_change_within_the_noise_is_discarded_and_one_clear_of_it_kept_with_evidence() {
    let o = objective(Goal::Maximize, stated(0.002));
    let inc = run(1, "a", 0.921);
    let small = decide_noisy(
        &o,
        "b",
        0.923,
        Some(&inc),
        Some(0.921),
        std::slice::from_ref(&inc),
    );
    assert_eq!(small.decision, Decision::Discard, "{}", small.reason);
    assert!(
        small.reason.contains("within the noise"),
        "{}",
        small.reason
    );
    let big = decide_noisy(
        &o,
        "b",
        0.935,
        Some(&inc),
        Some(0.921),
        std::slice::from_ref(&inc),
    );
    assert_eq!(big.decision, Decision::Keep, "{}", big.reason);
    let ev = &big.evidence;
    assert_eq!(ev.noise_model, "stated_sd");
    assert_eq!(
        (ev.incumbent, ev.incumbent_n, ev.sd),
        (Some(1), Some(1), Some(0.002))
    );
    assert!((ev.delta.unwrap() - 0.014).abs() < 1e-12);
    assert!(ev.p_value.unwrap() < 0.05 && ev.confidence == Some(0.95));
}

#[test]
fn with_measured_noise_nothing_is_kept_before_some_configuration_ran_twice() {
    let o = objective(Goal::Maximize, measured(3));
    let inc = run(1, "a", 0.5);
    let v = decide_noisy(
        &o,
        "b",
        0.9,
        Some(&inc),
        Some(0.5),
        std::slice::from_ref(&inc),
    );
    assert_eq!(v.decision, Decision::Discard);
    assert!(v.reason.contains("unmeasured"), "{}", v.reason);
    let runs = [inc.clone(), run(2, "a", 0.51), run(3, "a", 0.49)];
    let v = decide_noisy(&o, "b", 0.9, Some(&inc), Some(0.5), &runs);
    assert_eq!(v.decision, Decision::Keep, "{}", v.reason);
    assert_eq!(v.evidence.df, Some(2));
    assert_eq!(v.evidence.incumbent_n, Some(3));
}

/// splitmix64 and Box–Muller: a seeded normal sampler.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        (-2.0 * self.unit().ln()).sqrt() * (2.0 * std::f64::consts::PI * self.unit()).cos()
    }
}

/// Simulates `campaigns` campaigns of `changes` candidate configurations each, run once,
/// whose true value is `truth(change)` plus N(0, sd) seed noise, decided as the engine
/// does: the incumbent is the latest kept run, re-run until it has `repeats` runs.
/// Returns (kept changes, decisions on changes).
fn simulate(
    o: &Objective,
    seed: u64,
    campaigns: usize,
    changes: usize,
    sd: f64,
    truth: impl Fn(usize) -> f64,
) -> (usize, usize) {
    let mut rng = Rng(seed);
    let repeats = o.noise.and_then(|n| n.repeats).unwrap_or(1) as usize;
    let (mut kept, mut decided) = (0, 0);
    for _ in 0..campaigns {
        let mut runs: Vec<Run> = Vec::new();
        let mut id = 0i64;
        let mut draw = |c: usize, rng: &mut Rng| {
            id += 1;
            run(id, &format!("c{c}"), truth(c) + sd * rng.normal())
        };
        let first = draw(0, &mut rng);
        let mut inc = first.clone();
        runs.push(first);
        let mut best = inc.value;
        let repeat = |inc: &Run,
                      runs: &mut Vec<Run>,
                      rng: &mut Rng,
                      draw: &mut dyn FnMut(usize, &mut Rng) -> Run| {
            let c: usize = inc.config[1..].parse().unwrap();
            while runs.iter().filter(|r| r.config == inc.config).count() < repeats {
                let r = draw(c, rng);
                runs.push(r);
            }
        };
        repeat(&inc, &mut runs, &mut rng, &mut draw);
        for c in 1..=changes {
            let cand = draw(c, &mut rng);
            let v = decide_noisy(o, &cand.config, cand.value, Some(&inc), Some(best), &runs);
            decided += 1;
            runs.push(cand.clone());
            if v.decision == Decision::Keep {
                kept += 1;
                best = best.max(cand.value);
                inc = cand;
                repeat(&inc, &mut runs, &mut rng, &mut draw);
            }
        }
    }
    (kept, decided)
}

#[test]
fn false_keep_rate_on_pure_noise_changes_is_at_most_five_percent() {
    // Every change leaves the true value where it was: any keep is a false keep.
    let flat = |_c: usize| 0.92;
    for (name, o) in [
        (
            "measured, 3 repeats",
            objective(Goal::Maximize, measured(3)),
        ),
        (
            "measured, 2 repeats",
            objective(Goal::Maximize, measured(2)),
        ),
        ("stated sd", objective(Goal::Maximize, stated(0.002))),
        (
            "stated sd, minimize",
            objective(Goal::Minimize, stated(0.002)),
        ),
    ] {
        let (kept, decided) = simulate(&o, 15, 400, 25, 0.002, flat);
        let rate = kept as f64 / decided as f64;
        assert_eq!(decided, 10_000);
        eprintln!("{name}: false-keep rate {rate:.4} ({kept}/{decided})");
        assert!(
            rate <= 0.05,
            "{name}: false-keep rate {rate:.4} ({kept}/{decided})"
        );
        // Not a rule that never keeps anything.
        assert!(kept > 0, "{name}: nothing kept");
    }
    // Without a noise model, today's rule keeps far more of the same noise.
    let (kept, decided) = simulate(&objective(Goal::Maximize, None), 15, 400, 25, 0.002, flat);
    eprintln!(
        "no noise model: false-keep rate {:.4}",
        kept as f64 / decided as f64
    );
    assert!(kept as f64 / decided as f64 > 0.05, "{kept}/{decided}");
}

#[test]
fn a_real_improvement_of_four_noise_sds_is_kept_most_of_the_time() {
    // Each change is a real step up of 4 sd over the one before it.
    let up = |c: usize| 0.9 + 0.008 * c as f64;
    for o in [
        objective(Goal::Maximize, measured(3)),
        objective(Goal::Maximize, stated(0.002)),
    ] {
        let (kept, decided) = simulate(&o, 7, 100, 10, 0.002, up);
        let rate = kept as f64 / decided as f64;
        eprintln!("{:?}: kept {rate:.3} of real 4-sd improvements", o.noise);
        assert!(rate >= 0.8, "{:?}: kept {rate:.3}", o.noise);
    }
}

// ---------------------------------------------------------------- early stopping

// ------------------------------------------- repeats, stop rules and the best under noise

/// Folds evaluations (config, decision, outcome) into the loop's streaks.
fn streaks(o: &Objective, evals: &[(&str, &str, &str)]) -> (Streaks, Vec<bool>) {
    let mut st = Streaks::default();
    let repeats = evals
        .iter()
        .map(|(c, d, s)| st.observe(o, c, Some(d), Some(s)))
        .collect();
    (st, repeats)
}

#[test]
fn repeats_of_the_incumbent_do_not_advance_patience_but_failures_still_count() {
    // The loop's order under `noise: {repeats: 3}`: a first result, two repeats of it, then
    // changes. Only the changes are hypotheses.
    let evals = [
        ("{\"lr\":1}", "keep", "completed"),
        ("{\"lr\":1}", "discard", "completed"),
        ("{\"lr\":1}", "discard", "completed"),
        ("{\"lr\":2}", "discard", "completed"),
    ];
    let noisy = objective(Goal::Maximize, measured(3));
    let (st, repeats) = streaks(&noisy, &evals);
    assert_eq!(repeats, [false, true, true, false]);
    assert_eq!(st.since_improvement, 1, "{st:?}");
    // Without `noise:` every evaluation counts, as before.
    let plain = objective(Goal::Maximize, None);
    let (st, repeats) = streaks(&plain, &evals);
    assert_eq!(repeats, [false; 4]);
    assert_eq!(st.since_improvement, 3, "{st:?}");

    // A repeat that fails is a failure for the circuit breaker, and still not a hypothesis.
    let (st, _) = streaks(
        &noisy,
        &[
            ("{\"lr\":1}", "keep", "completed"),
            ("{\"lr\":1}", "anomalous", "failed"),
            ("{\"lr\":1}", "anomalous", "timed_out"),
        ],
    );
    assert_eq!((st.since_improvement, st.consecutive_failures), (0, 2));
    // A new keep makes its configuration the one that repeats; the old one is a change again.
    let (st, repeats) = streaks(
        &noisy,
        &[
            ("{\"lr\":1}", "keep", "completed"),
            ("{\"lr\":2}", "keep", "completed"),
            ("{\"lr\":2}", "discard", "completed"),
            ("{\"lr\":1}", "discard", "completed"),
        ],
    );
    assert_eq!(repeats, [false, false, true, false]);
    assert_eq!(st.since_improvement, 1);
    assert_eq!(st.incumbent_config.as_deref(), Some("{\"lr\":2}"));

    // So `patience: 2` does not stop the loop on its repeats alone.
    let (src, _) = program("metric: acc\ngoal: maximize\npatience: 2\nnoise: {repeats: 3}");
    let p = parse_program(&src).unwrap();
    let o = p.objective.clone().unwrap();
    let facts = |since_improvement| LoopFacts {
        since_improvement,
        best: Some(0.9),
        best_runs: Some(3),
        next_timeout_secs: 60,
        ..LoopFacts::default()
    };
    let (st, _) = streaks(&o, &evals[..3]);
    assert_eq!(
        stop_reason(&o, &p.envelope, &facts(st.since_improvement)),
        None
    );
    let (st, _) = streaks(
        &o,
        &[
            evals[0],
            evals[1],
            evals[2],
            evals[3],
            ("{\"lr\":3}", "discard", "completed"),
        ],
    );
    assert!(matches!(
        stop_reason(&o, &p.envelope, &facts(st.since_improvement)),
        Some(StopReason::Patience {
            since_improvement: 2,
            patience: 2
        })
    ));
}

#[test]
fn the_best_under_noise_is_the_incumbents_mean_and_says_of_how_many_runs() {
    let runs = [
        run(1, "a", 0.95),
        run(2, "a", 0.90),
        run(3, "b", 0.99),
        run(4, "a", 0.91),
    ];
    let m = incumbent_mean(&runs[0], &runs);
    assert_eq!(m.runs, 3);
    assert!((m.mean - 0.92).abs() < 1e-12, "{m:?}");
    // Before any repeat: the incumbent's own value, one run.
    assert_eq!(
        incumbent_mean(&run(9, "c", 0.5), &runs),
        MeanBest { mean: 0.5, runs: 1 }
    );
}

#[test]
fn under_noise_the_target_is_reached_by_the_mean_once_the_incumbent_has_its_repeats() {
    let (src, _) = program("metric: acc\ngoal: maximize\ntarget: 0.93\nnoise: {repeats: 3}");
    let p = parse_program(&src).unwrap();
    let o = p.objective.clone().unwrap();
    let at = |best: f64, runs: u32| {
        stop_reason(
            &o,
            &p.envelope,
            &LoopFacts {
                best: Some(best),
                best_runs: Some(runs),
                next_timeout_secs: 60,
                ..LoopFacts::default()
            },
        )
    };
    // One lucky seed at 0.95 is not the target reached: its repeats come first.
    assert_eq!(at(0.95, 1), None);
    assert_eq!(at(0.95, 2), None);
    // Its mean over three runs is what counts.
    assert_eq!(at(0.92, 3), None);
    let r = at(0.94, 3).expect("reached");
    assert_eq!(
        r,
        StopReason::TargetReached {
            best: 0.94,
            target: 0.93,
            runs: Some(3)
        }
    );
    assert!(r.to_string().contains("mean 0.94 over 3 runs"), "{r}");
    // A stated sd asks for no repeats: the incumbent's mean of what it has counts.
    let (src, _) = program("metric: acc\ngoal: minimize\ntarget: 0.5\nnoise: {sd: 0.01}");
    let p = parse_program(&src).unwrap();
    let o = p.objective.clone().unwrap();
    let f = LoopFacts {
        best: Some(0.49),
        best_runs: Some(1),
        next_timeout_secs: 60,
        ..LoopFacts::default()
    };
    assert!(matches!(
        stop_reason(&o, &p.envelope, &f),
        Some(StopReason::TargetReached { runs: Some(1), .. })
    ));
    // Without `noise:` the best single value counts, as before.
    let (src, _) = program("metric: acc\ngoal: maximize\ntarget: 0.93");
    let p = parse_program(&src).unwrap();
    let o = p.objective.clone().unwrap();
    let f = LoopFacts {
        best: Some(0.95),
        next_timeout_secs: 60,
        ..LoopFacts::default()
    };
    assert_eq!(
        stop_reason(&o, &p.envelope, &f),
        Some(StopReason::TargetReached {
            best: 0.95,
            target: 0.93,
            runs: None
        })
    );
}

fn asha() -> EarlyStop {
    EarlyStop {
        step_key: "step".into(),
        min_step: 1.0,
        max_step: Some(52.0),
        reduction_factor: 3,
        startup: 2,
    }
}

#[test]
fn rungs_grow_geometrically_below_the_full_budget() {
    let es = asha();
    assert_eq!(es.rungs(), vec![1.0, 3.0, 9.0, 27.0]);
    assert_eq!(es.rung_at(0.5), None);
    assert_eq!(es.rung_at(1.0), Some(0));
    assert_eq!(es.rung_at(8.0), Some(1));
    assert_eq!(es.rung_at(52.0), Some(3));
}

#[test]
fn asha_prunes_what_ranks_outside_the_top_third_after_startup() {
    let es = asha();
    // Fewer earlier values than `startup`: never pruned.
    assert_eq!(asha_prune(&es, Goal::Maximize, 0, 0.1, &[0.9]), None);
    // 5 values: the best max(1, 5/3) = 1 goes on.
    let others = [0.5, 0.6, 0.7, 0.8];
    assert_eq!(asha_prune(&es, Goal::Maximize, 1, 0.9, &others), None);
    let p = asha_prune(&es, Goal::Maximize, 1, 0.75, &others).unwrap();
    assert_eq!((p.rank, p.n, p.keep_top, p.rung_step), (1, 5, 1, 3.0));
    // Minimize: lower is better.
    assert_eq!(asha_prune(&es, Goal::Minimize, 1, 0.4, &others), None);
    assert!(asha_prune(&es, Goal::Minimize, 1, 0.55, &others).is_some());
    // A diverged value ranks last.
    assert!(asha_prune(&es, Goal::Maximize, 1, f64::NAN, &others).is_some());
    // 8 values: the best 2 go on.
    let others = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7];
    assert_eq!(asha_prune(&es, Goal::Maximize, 0, 0.65, &others), None);
    assert!(asha_prune(&es, Goal::Maximize, 0, 0.55, &others).is_some());
}

#[test]
fn curve_points_need_both_the_step_and_the_metric() {
    assert_eq!(
        curve_point("step=3 val_acc=71.5", "val_acc", "step"),
        Some((3.0, 71.5))
    );
    assert_eq!(
        curve_point("{'epoch': 2, 'val_acc': 0.5}", "val_acc", "epoch"),
        Some((2.0, 0.5))
    );
    assert_eq!(curve_point("val_acc=71.5", "val_acc", "step"), None);
    assert_eq!(curve_point("step=3 loss=1", "val_acc", "step"), None);
    assert_eq!(curve_point("step=nan val_acc=1", "val_acc", "step"), None);
}

// ---------------------------------------------------------------- properties

mod props {
    use mlres_policy::{Goal, parse_program};
    use proptest::prelude::*;

    use super::{objective, program, stated};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any `range: [a, b]` parses to exactly [a, b] when a < b and is refused otherwise;
        /// never a panic.
        #[test]
        fn ranges_parse_exactly_or_are_refused(a in -1e6f64..1e6, b in -1e6f64..1e6) {
            let (src, _) = program(&format!("metric: acc\ngoal: maximize\nrange: [{a:?}, {b:?}]"));
            match parse_program(&src) {
                Ok(p) => {
                    prop_assert!(a < b);
                    let r = p.objective.unwrap().range.unwrap();
                    prop_assert_eq!((r.min, r.max), (Some(a), Some(b)));
                }
                Err(e) => {
                    prop_assert!(a >= b, "{e}");
                }
            }
        }

        /// The objective's YAML under arbitrary `noise`/`early_stop` text never panics.
        #[test]
        fn noise_and_early_stop_never_panic(s in "[a-z_:{}, 0-9.\\-\\[\\]]{0,40}") {
            let (src, _) = program(&format!("metric: acc\ngoal: maximize\nnoise: {s}"));
            let _ = parse_program(&src);
            let (src, _) = program(&format!("metric: acc\ngoal: maximize\nearly_stop: {s}"));
            let _ = parse_program(&src);
        }

        /// With a stated sd, a candidate is kept exactly when its one-sided p-value is below
        /// 1 - confidence, and a better value never has a larger p-value.
        #[test]
        fn the_decision_follows_the_p_value(x in 0.8f64..1.0, y in 0.8f64..1.0) {
            let o = objective(Goal::Maximize, stated(0.01));
            let inc = super::run(1, "a", 0.9);
            let runs = std::slice::from_ref(&inc);
            let vx = mlres_policy::decide_noisy(&o, "b", x, Some(&inc), Some(0.9), runs);
            let vy = mlres_policy::decide_noisy(&o, "b", y, Some(&inc), Some(0.9), runs);
            let (px, py) = (vx.evidence.p_value.unwrap(), vy.evidence.p_value.unwrap());
            prop_assert_eq!(vx.decision == mlres_policy::Decision::Keep, px < 0.05);
            if x >= y {
                prop_assert!(px <= py + 1e-12);
            }
        }
    }
}
