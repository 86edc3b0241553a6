//! Ask/tell bridge for `bench/search.sh`: reads one JSON request per line on stdin,
//! `{"space": SearchSpace, "history": [{"config": {...}, "loss": 1.5 | null,
//! "status": "done" | "pending" | "failed"}], "index": 0, "tuning": {...}?}`, and prints
//! `{"config": {...}, "micros": N}` per line: the proposal `method: tpe` (or `random`)
//! makes from that history, and the proposer's own time for it.

use std::io::{BufRead, Write};

use mlres_policy::{
    BayesTuning, Method, Observation, Outcome, SearchSpace, Tuning, propose, suggest_bayes_with,
    suggest_with,
};
use serde_json::{Value, json};

fn main() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.expect("stdin");
        if line.trim().is_empty() {
            continue;
        }
        let req: Value = serde_json::from_str(&line).expect("request JSON");
        let space: SearchSpace = serde_json::from_value(req["space"].clone()).expect("space");
        let index = req["index"].as_u64().unwrap_or(0);
        let history: Vec<Observation> = req["history"]
            .as_array()
            .map(|h| {
                h.iter()
                    .map(|o| Observation {
                        config: o["config"].as_object().cloned().unwrap_or_default(),
                        outcome: match (o["status"].as_str(), o["loss"].as_f64()) {
                            (Some("pending"), _) => Outcome::Pending,
                            (_, Some(l)) => Outcome::Done(l),
                            _ => Outcome::Failed,
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut t = Tuning::default();
        if let Some(o) = req.get("tuning") {
            let f = |k: &str| o.get(k).and_then(Value::as_f64);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            {
                if let Some(v) = f("n_startup") {
                    t.n_startup = Some(v as usize);
                }
                if let Some(v) = f("gamma") {
                    t.gamma = v;
                }
                if let Some(v) = f("n_candidates") {
                    t.n_candidates = v as usize;
                }
                if let Some(v) = f("n_local") {
                    t.n_local = v as usize;
                }
                if let Some(v) = f("prior_weight") {
                    t.prior_weight = v;
                }
                if let Some(v) = o.get("neighbour").and_then(Value::as_bool) {
                    t.neighbour = v;
                }
                if let Some(v) = o.get("multiscale").and_then(Value::as_bool) {
                    t.multiscale = v;
                }
                if let Some(v) = o.get("kronecker").and_then(Value::as_bool) {
                    t.kronecker = v;
                }
                if let Some(v) = f("multiscale_in") {
                    t.multiscale_in = v as u8;
                }
                if let Some(v) = f("broad_weight") {
                    t.broad_weight = v;
                }
                if let Some(v) = f("mix") {
                    t.mix = v;
                }
                if let Some(v) = f("bandwidth") {
                    t.bandwidth = v;
                }
            }
        }
        let mut b = BayesTuning::default();
        if let Some(o) = req.get("bayes") {
            let f = |k: &str| o.get(k).and_then(Value::as_f64);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            {
                if let Some(v) = f("n_startup") {
                    b.n_startup = Some(v as usize);
                }
                if let Some(v) = f("n_raw") {
                    b.n_raw = v as usize;
                }
                if let Some(v) = f("n_local") {
                    b.n_local = v as usize;
                }
                if let Some(v) = f("n_refine") {
                    b.n_refine = v as usize;
                }
                if let Some(v) = f("warp") {
                    b.warp = v as u8;
                }
                if let Some(v) = f("xi") {
                    b.xi = v;
                }
                if let Some(v) = f("stall") {
                    b.stall = v as usize;
                }
                if let Some(v) = f("stall_every") {
                    b.stall_every = v as u64;
                }
                if let Some(v) = o.get("from_observed").and_then(Value::as_bool) {
                    b.from_observed = v;
                }
            }
        }
        let start = std::time::Instant::now();
        let config = match space.method {
            Method::Tpe => suggest_with(&space, &history, index, &t),
            Method::Bayes => suggest_bayes_with(&space, &history, index, &b),
            _ => propose(&space, index).unwrap_or_default(),
        };
        let micros = start.elapsed().as_micros();
        writeln!(out, "{}", json!({"config": config, "micros": micros})).expect("stdout");
        out.flush().expect("flush");
    }
}
