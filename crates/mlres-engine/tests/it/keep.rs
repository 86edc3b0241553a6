//! What the search method sees of a noise-aware campaign: repeats of the incumbent are not
//! trials of the search.

use mlres_engine::{proposal_history, search_history};
use mlres_ledger::Experiment;
use mlres_policy::{Goal, NoiseModel, Objective, Outcome};
use serde_json::json;

fn objective(noise: Option<NoiseModel>) -> Objective {
    Objective {
        metric: "acc".into(),
        goal: Goal::Maximize,
        target: None,
        patience: None,
        range: None,
        noise,
        early_stop: None,
        max_consecutive_failures: 3,
    }
}

fn exp(id: i64, lr: f64, state: &str, status: Option<&str>, metric: Option<f64>) -> Experiment {
    let evaluated = state == "evaluated";
    Experiment {
        id,
        campaign: "c".into(),
        iter: id as u32,
        state: state.into(),
        hypothesis: String::new(),
        config: json!({"lr": lr}),
        source: "loop".into(),
        proposal_index: None,
        backend: "local".into(),
        flavor: "cpu-basic".into(),
        timeout_secs: 60,
        reserved_cost_micro: 0,
        attempt: 1,
        handle: None,
        status: status.map(String::from),
        exit_code: None,
        duration_ms: None,
        spent_walltime_secs: None,
        spent_cost_micro: None,
        metric,
        metrics: None,
        decision: evaluated.then(|| if id == 1 { "keep" } else { "discard" }.to_string()),
        decision_reason: None,
        best_so_far: None,
        error: None,
        created_ms: 0,
        submitted_ms: None,
        finished_ms: None,
        evaluated_ms: None,
    }
}

fn done(metric: f64) -> (&'static str, Option<&'static str>, Option<f64>) {
    ("evaluated", Some("completed"), Some(metric))
}

#[test]
fn under_noise_the_incumbent_and_its_repeats_are_one_observation_of_their_mean() {
    let rows = [
        (0.1, done(0.90)),
        (0.1, done(0.92)),
        (0.1, done(0.94)),
        (0.2, done(0.80)),
        (0.1, ("submitted", None, None)),
        (0.3, ("submitted", None, None)),
        (0.4, ("evaluated", Some("failed"), None)),
    ];
    let exps: Vec<Experiment> = rows
        .iter()
        .enumerate()
        .map(|(i, (lr, (state, status, m)))| exp(i as i64 + 1, *lr, state, *status, *m))
        .collect();
    let noisy = objective(Some(NoiseModel {
        sd: None,
        repeats: Some(3),
        confidence: 0.95,
    }));
    let h = search_history(&exps, &noisy);
    let outcomes: Vec<(f64, Outcome)> = h
        .iter()
        .map(|o| (o.config["lr"].as_f64().unwrap(), o.outcome.clone()))
        .collect();
    assert_eq!(outcomes.len(), 4, "one per configuration: {outcomes:?}");
    // Maximised: the loss is the negated mean of the three completed runs.
    assert_eq!(outcomes[0].0, 0.1);
    match &outcomes[0].1 {
        Outcome::Done(l) => assert!((l + 0.92).abs() < 1e-12, "{l}"),
        o => panic!("{o:?}"),
    }
    assert_eq!(outcomes[1], (0.2, Outcome::Done(-0.80)));
    assert_eq!(outcomes[2], (0.3, Outcome::Pending));
    assert_eq!(outcomes[3], (0.4, Outcome::Failed));
    // So a proposer counting completed trials (TPE's startup) counts two, not four.
    let completed = h
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Done(_)))
        .count();
    assert_eq!(completed, 2);

    // Without `noise:` the history is every run, as before.
    let plain = objective(None);
    assert_eq!(
        search_history(&exps, &plain),
        proposal_history(&exps, Goal::Maximize)
    );
    assert_eq!(search_history(&exps, &plain).len(), 7);
}
