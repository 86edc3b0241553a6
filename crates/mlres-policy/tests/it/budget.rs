//! check_spend, decide and stop_reason.

use mlres_policy::{
    Backend, Decision, Envelope, Goal, LoopFacts, Money, Objective, SpendRequest, StopReason,
    TokenScope, Usage, check_spend, decide, glob_match, job_cost_micro, priced_cost_micro,
    repo_allowed, stop_reason,
};

fn env() -> Envelope {
    Envelope {
        max_jobs: 5,
        max_walltime_secs: 10 * 3600,
        allowed_flavors: vec!["cpu-basic".into(), "t4-small".into()],
        max_timeout_secs: 2 * 3600,
        allow_deletes: false,
        output_repos: vec!["me/sweep-*".into()],
        max_cost_usd: Some(Money {
            micro_usd: 10_000_000,
        }),
        max_concurrent: 2,
        namespace: None,
        images: vec![],
        datasets: vec![],
        models: vec![],
        backends: vec![Backend::Local, Backend::HfJobs],
        final_reserve_secs: 3600,
        token_scope: TokenScope::Warn,
        public_repos: false,
        user_token_in_jobs: false,
        partitions: vec![],
        max_gpus_per_job: None,
        max_gpu_secs: None,
    }
}

fn req() -> SpendRequest {
    SpendRequest {
        backend: Backend::HfJobs,
        flavor: "t4-small".into(),
        timeout_secs: 3600,
        cost_micro_usd: 1_000_000,
    }
}

fn code(usage: &Usage, r: &SpendRequest) -> Option<&'static str> {
    check_spend(&env(), usage, r).err().map(|e| e.code)
}

#[test]
fn within_budget_is_allowed() {
    assert_eq!(code(&Usage::default(), &req()), None);
}

#[test]
fn each_refusal_code() {
    let u = Usage::default();
    let local_only = Envelope {
        backends: vec![Backend::Local],
        ..env()
    };
    let e = check_spend(&local_only, &u, &req()).expect_err("backend");
    assert_eq!(e.code, "backend");
    let r = SpendRequest {
        flavor: "a100x8".into(),
        ..req()
    };
    let e = check_spend(&env(), &u, &r).expect_err("flavor");
    assert_eq!(e.code, "flavor");
    assert!(e.message.contains("cpu-basic, t4-small"), "{e}");
    let r = SpendRequest {
        timeout_secs: 2 * 3600 + 1,
        ..req()
    };
    assert_eq!(code(&u, &r), Some("max_timeout"));
    let busy = Usage {
        in_flight: 2,
        ..Usage::default()
    };
    assert_eq!(code(&busy, &req()), Some("max_concurrent"));
    let used = Usage {
        jobs: 5,
        ..Usage::default()
    };
    let e = check_spend(&env(), &used, &req()).expect_err("jobs");
    assert_eq!(e.code, "max_jobs");
    assert!(e.message.contains("5 of 5"), "{e}");
    assert!(e.message.contains("stop the loop"), "{e}");
    let wall = Usage {
        walltime_secs: 9 * 3600 + 1,
        ..Usage::default()
    };
    let e = check_spend(&env(), &wall, &req()).expect_err("walltime");
    assert_eq!(e.code, "max_walltime");
    assert!(e.message.contains("10h"), "{e}");
    let cost = Usage {
        cost_micro_usd: 9_000_001,
        ..Usage::default()
    };
    let e = check_spend(&env(), &cost, &req()).expect_err("cost");
    assert_eq!(e.code, "max_cost");
    assert!(e.message.contains("$10.00"), "{e}");
}

#[test]
fn boundaries_exactly_at_limit_allowed_one_over_refused() {
    let u = Usage::default();
    assert_eq!(
        code(
            &u,
            &SpendRequest {
                timeout_secs: 7200,
                ..req()
            }
        ),
        None
    );
    assert_eq!(
        code(
            &u,
            &SpendRequest {
                timeout_secs: 7201,
                ..req()
            }
        ),
        Some("max_timeout")
    );
    assert_eq!(
        code(
            &Usage {
                jobs: 4,
                ..u.clone()
            },
            &req()
        ),
        None
    );
    assert_eq!(
        code(
            &Usage {
                jobs: 5,
                ..u.clone()
            },
            &req()
        ),
        Some("max_jobs")
    );
    assert_eq!(
        code(
            &Usage {
                in_flight: 1,
                ..u.clone()
            },
            &req()
        ),
        None
    );
    assert_eq!(
        code(
            &Usage {
                in_flight: 2,
                ..u.clone()
            },
            &req()
        ),
        Some("max_concurrent")
    );
    // walltime: 9h used + 1h = 10h exactly (the final reserve does not apply here)
    assert_eq!(
        code(
            &Usage {
                walltime_secs: 9 * 3600,
                ..u.clone()
            },
            &req()
        ),
        None
    );
    assert_eq!(
        code(
            &Usage {
                walltime_secs: 9 * 3600 + 1,
                ..u.clone()
            },
            &req()
        ),
        Some("max_walltime")
    );
    assert_eq!(
        code(
            &Usage {
                cost_micro_usd: 9_000_000,
                ..u.clone()
            },
            &req()
        ),
        None
    );
    assert_eq!(
        code(
            &Usage {
                cost_micro_usd: 9_000_001,
                ..u.clone()
            },
            &req()
        ),
        Some("max_cost")
    );
    // no cost cap: any cost passes
    let mut e = env();
    e.max_cost_usd = None;
    let huge = SpendRequest {
        cost_micro_usd: u64::MAX,
        ..req()
    };
    assert!(
        check_spend(
            &e,
            &Usage {
                cost_micro_usd: u64::MAX,
                ..u.clone()
            },
            &huge
        )
        .is_ok()
    );
    // saturating arithmetic: huge walltime cannot wrap around
    let big = Usage {
        walltime_secs: u64::MAX,
        ..u
    };
    assert_eq!(code(&big, &req()), Some("max_walltime"));
}

fn objective(goal: Goal) -> Objective {
    Objective {
        metric: "acc".into(),
        goal,
        target: Some(0.9),
        patience: Some(3),
        range: None,
        noise: None,
        early_stop: None,
        max_consecutive_failures: 2,
    }
}

#[test]
fn decide_truth_table() {
    let max = objective(Goal::Maximize);
    let min = objective(Goal::Minimize);
    let table: [(&Objective, Option<f64>, Option<f64>, Decision); 12] = [
        (&max, None, Some(0.5), Decision::Anomalous),
        (&max, Some(f64::NAN), None, Decision::Anomalous),
        (&max, Some(f64::INFINITY), None, Decision::Anomalous),
        (&max, Some(0.1), None, Decision::Keep),
        (&max, Some(0.6), Some(0.5), Decision::Keep),
        (&max, Some(0.5), Some(0.5), Decision::Discard),
        (&max, Some(0.4), Some(0.5), Decision::Discard),
        (&min, Some(0.4), Some(0.5), Decision::Keep),
        (&min, Some(0.5), Some(0.5), Decision::Discard),
        (&min, Some(0.6), Some(0.5), Decision::Discard),
        (
            &min,
            Some(f64::NEG_INFINITY),
            Some(0.5),
            Decision::Anomalous,
        ),
        (&min, Some(0.6), Some(f64::NAN), Decision::Keep),
    ];
    for (o, m, b, want) in table {
        let (d, why) = decide(o, m, b);
        assert_eq!(d, want, "{:?} {m:?} {b:?}: {why}", o.goal);
        assert!(!why.is_empty());
    }
    assert!(decide(&max, None, None).1.contains("no metric"));
    assert!(
        decide(&max, Some(f64::NAN), None)
            .1
            .contains("metric is NaN")
    );
}

fn facts() -> LoopFacts {
    LoopFacts {
        next_timeout_secs: 3600,
        ..LoopFacts::default()
    }
}

#[test]
fn stop_reason_truth_table() {
    let max = objective(Goal::Maximize);
    let min = objective(Goal::Minimize);
    let e = env();
    assert_eq!(stop_reason(&max, &e, &facts()), None);
    let f = LoopFacts {
        best: Some(0.9),
        ..facts()
    };
    assert_eq!(
        stop_reason(&max, &e, &f),
        Some(StopReason::TargetReached {
            best: 0.9,
            target: 0.9,
            runs: None
        })
    );
    let f = LoopFacts {
        best: Some(0.89),
        ..facts()
    };
    assert_eq!(stop_reason(&max, &e, &f), None);
    let f = LoopFacts {
        best: Some(0.9),
        ..facts()
    };
    assert_eq!(
        stop_reason(&min, &e, &f),
        Some(StopReason::TargetReached {
            best: 0.9,
            target: 0.9,
            runs: None
        })
    );
    let f = LoopFacts {
        best: Some(0.91),
        ..facts()
    };
    assert_eq!(stop_reason(&min, &e, &f), None);
    let f = LoopFacts {
        usage: Usage {
            jobs: 5,
            ..Usage::default()
        },
        ..facts()
    };
    assert!(
        matches!(stop_reason(&max, &e, &f), Some(StopReason::BudgetExhausted { limit, .. }) if limit == "max_jobs")
    );
    // walltime: 10h max - 1h reserve = 9h usable; 8h used + 1h next = 9h is fine, +1s is not.
    let f = LoopFacts {
        usage: Usage {
            walltime_secs: 8 * 3600,
            ..Usage::default()
        },
        ..facts()
    };
    assert_eq!(stop_reason(&max, &e, &f), None);
    let f = LoopFacts {
        usage: Usage {
            walltime_secs: 8 * 3600 + 1,
            ..Usage::default()
        },
        ..facts()
    };
    let r = stop_reason(&max, &e, &f);
    assert!(
        matches!(&r, Some(StopReason::BudgetExhausted { limit, .. }) if limit == "max_walltime"),
        "{r:?}"
    );
    assert!(r.expect("r").to_string().contains("final reserve"));
    let f = LoopFacts {
        usage: Usage {
            cost_micro_usd: 10_000_000,
            ..Usage::default()
        },
        ..facts()
    };
    assert!(
        matches!(stop_reason(&max, &e, &f), Some(StopReason::BudgetExhausted { limit, .. }) if limit == "max_cost")
    );
    let f = LoopFacts {
        since_improvement: 3,
        ..facts()
    };
    assert_eq!(
        stop_reason(&max, &e, &f),
        Some(StopReason::Patience {
            since_improvement: 3,
            patience: 3
        })
    );
    let f = LoopFacts {
        since_improvement: 2,
        ..facts()
    };
    assert_eq!(stop_reason(&max, &e, &f), None);
    let f = LoopFacts {
        consecutive_failures: 2,
        ..facts()
    };
    assert_eq!(
        stop_reason(&max, &e, &f),
        Some(StopReason::CircuitBreaker {
            consecutive_failures: 2,
            max: 2
        })
    );
    let f = LoopFacts {
        consecutive_failures: 1,
        ..facts()
    };
    assert_eq!(stop_reason(&max, &e, &f), None);
    let f = LoopFacts {
        stop_requested: true,
        best: Some(1.0),
        ..facts()
    };
    assert_eq!(stop_reason(&max, &e, &f), Some(StopReason::OperatorStop));
    let f = LoopFacts {
        proposals_exhausted: true,
        ..facts()
    };
    assert_eq!(stop_reason(&max, &e, &f), Some(StopReason::SearchExhausted));
    let no_patience = Objective {
        patience: None,
        ..max.clone()
    };
    let f = LoopFacts {
        since_improvement: 1000,
        ..facts()
    };
    assert_eq!(stop_reason(&no_patience, &e, &f), None);
    // precedence: target beats budget
    let f = LoopFacts {
        best: Some(0.95),
        usage: Usage {
            jobs: 5,
            ..Usage::default()
        },
        ..facts()
    };
    assert!(matches!(
        stop_reason(&max, &e, &f),
        Some(StopReason::TargetReached { .. })
    ));
}

#[test]
fn stop_reasons_read_as_sentences() {
    let shown = StopReason::CircuitBreaker {
        consecutive_failures: 3,
        max: 3,
    }
    .to_string();
    assert!(shown.contains("3 consecutive failures"), "{shown}");
    assert!(StopReason::OperatorStop.to_string().contains("operator"));
    assert!(
        StopReason::Patience {
            since_improvement: 4,
            patience: 4
        }
        .to_string()
        .contains("patience 4")
    );
}

#[test]
fn output_repo_globs() {
    let e = env();
    assert!(repo_allowed(&e, "me/sweep-1"));
    assert!(!repo_allowed(&e, "me/other"));
    assert!(!repo_allowed(&e, "evil/me/sweep-1"));
    let mut none = env();
    none.output_repos.clear();
    assert!(!repo_allowed(&none, "me/sweep-1"));
    assert!(glob_match("a*b?c", "aXXbYc"));
    assert!(!glob_match("a*b?c", "aXXbc"));
    assert!(glob_match("*", ""));
}

#[test]
fn job_cost_is_exact_and_rounds_up() {
    // cpu-basic: 167 micro-USD per minute.
    assert_eq!(job_cost_micro(167, 60), 167);
    assert_eq!(job_cost_micro(167, 3600), 10_020);
    // 167 * 1 / 60 = 2.78 -> 3 (ceil, never under-reserved).
    assert_eq!(job_cost_micro(167, 1), 3);
    assert_eq!(job_cost_micro(167, 0), 0);
    assert_eq!(job_cost_micro(0, 3600), 0);
    // 16667 * 90 / 60 = 25000.5 -> 25001.
    assert_eq!(job_cost_micro(16_667, 90), 25_001);
    // No overflow: u128 intermediate, saturating result.
    assert_eq!(job_cost_micro(u64::MAX, u64::MAX), u64::MAX);
    assert_eq!(job_cost_micro(u64::MAX, 60), u64::MAX);
}

#[test]
fn flavor_without_price_is_refused() {
    let r = priced_cost_micro("a10g-small", None, 3600).unwrap_err();
    assert_eq!(r.code, "no_price");
    assert_eq!(
        r.message,
        "no price for flavor a10g-small in the hardware catalog; nothing was submitted"
    );
    assert_eq!(priced_cost_micro("cpu-basic", Some(167), 3600), Ok(10_020));
}

#[test]
fn reserved_price_times_timeout_is_held_against_max_cost() {
    // $10 budget; t4-small at 6667 micro-USD/min for 1 h reserves $0.40002.
    let cost = job_cost_micro(6_667, 3600);
    assert_eq!(cost, 400_020);
    let mut r = req();
    r.cost_micro_usd = cost;
    let used = Usage {
        cost_micro_usd: 10_000_000 - cost,
        ..Usage::default()
    };
    assert_eq!(code(&used, &r), None, "exactly at the limit is allowed");
    let over = Usage {
        cost_micro_usd: 10_000_000 - cost + 1,
        ..Usage::default()
    };
    assert_eq!(code(&over, &r), Some("max_cost"));
}

#[test]
fn gpu_hours_and_gpus_per_job_are_checked() {
    use mlres_policy::{check_gpu_spend, gpu_secs};
    let mut e = env();
    assert!(
        check_gpu_spend(&e, u64::MAX, 8, 3600).is_ok(),
        "no GPU limits set"
    );
    e.max_gpus_per_job = Some(2);
    e.max_gpu_secs = Some(2 * 3600);
    assert_eq!(gpu_secs(2, 1800), 3600);
    // Exactly at the limit is allowed; one second over is refused.
    assert!(check_gpu_spend(&e, 3600, 2, 1800).is_ok());
    let r = check_gpu_spend(&e, 3601, 2, 1800).unwrap_err();
    assert_eq!(r.code, "max_gpu_hours");
    assert!(r.message.contains("2.000"), "{r}");
    let r = check_gpu_spend(&e, 0, 3, 60).unwrap_err();
    assert_eq!(r.code, "max_gpus_per_job");
    // A CPU job reserves no GPU time, even with the GPU budget spent.
    assert!(check_gpu_spend(&e, 2 * 3600, 0, 3600).is_ok());
}
