//! A full valid program.md parses into the expected struct.

use std::collections::BTreeMap;

use mlres_policy::{
    Backend, Envelope, Goal, JobLimits, JobTemplate, Method, Money, Objective, Param, Scalar,
    SearchSpace, TokenScope, parse_program,
};

use crate::common::{BASE, doc};

const FIXTURE: &str = include_str!("fixtures/program.md");

#[test]
fn fixture_parses_into_expected_struct() {
    let p = parse_program(FIXTURE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.title.as_deref(), Some("Tiny SFT sweep on arithmetic"));
    assert_eq!(
        p.envelope,
        Envelope {
            max_jobs: 12,
            max_walltime_secs: 8 * 3600,
            allowed_flavors: vec!["cpu-basic".into(), "t4-small".into()],
            max_timeout_secs: 7200,
            allow_deletes: false,
            output_repos: vec!["me/sweep-*".into()],
            max_cost_usd: Some(Money {
                micro_usd: 12_500_000
            }),
            max_concurrent: 2,
            namespace: Some("me".into()),
            images: vec![],
            datasets: vec!["arith-add-3".into()],
            models: vec!["builtin/tiny".into()],
            backends: vec![Backend::Local, Backend::HfJobs],
            final_reserve_secs: 1800,
            token_scope: TokenScope::Warn,
            public_repos: false,
            user_token_in_jobs: false,
            partitions: vec![],
            max_gpus_per_job: None,
            max_gpu_secs: None,
        }
    );
    assert_eq!(
        p.objective,
        Some(Objective {
            metric: "eval_accuracy".into(),
            goal: Goal::Maximize,
            target: Some(0.9),
            patience: Some(4),
            range: None,
            noise: None,
            early_stop: None,
            max_consecutive_failures: 2,
        })
    );
    let command: Vec<String> = [
        "{mlres}",
        "train",
        "sft",
        "--lr",
        "{lr}",
        "--width={width}",
        "--seed",
        "{seed}",
        "--out",
        "{workdir}/ckpt",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        p.job,
        Some(JobTemplate {
            backend: Backend::Local,
            command,
            flavor: "cpu-basic".into(),
            timeout_secs: 5400,
            env: BTreeMap::from([
                ("OMP_NUM_THREADS".to_string(), "2".to_string()),
                ("RUN_NAME".to_string(), "sweep".to_string()),
            ]),
            pass_env: vec!["PATH".into()],
            secrets: vec![],
            limits: JobLimits {
                memory_bytes: 1_610_612_736,
                cpu_secs: Some(5400),
                file_size_bytes: 512 << 20,
                processes: 64,
                log_bytes: 4 << 20,
                address_space_bytes: None,
                cpu_millis: None,
            },
            network: false,
            image: None,
            gpus: 0,
            share_gpus: false,
            code: vec![],
            outputs: vec![],
            slurm: None,
        })
    );
    assert_eq!(
        p.search_space,
        Some(SearchSpace {
            method: Method::Random,
            seed: 7,
            command: None,
            parameters: BTreeMap::from([
                (
                    "lr".to_string(),
                    Param::LogUniformValues {
                        min: 1e-4,
                        max: 3e-3
                    }
                ),
                (
                    "width".to_string(),
                    Param::Values(vec![Scalar::Int(32), Scalar::Int(64), Scalar::Int(128)])
                ),
                (
                    "dropout".to_string(),
                    Param::QUniform {
                        min: 0.0,
                        max: 0.3,
                        q: 0.05
                    }
                ),
                ("layers".to_string(), Param::IntUniform { min: 1, max: 4 }),
                ("warmup".to_string(), Param::Value(Scalar::Int(100))),
                (
                    "optimizer".to_string(),
                    Param::Values(vec![Scalar::Str("adamw".into()), Scalar::Str("sgd".into())])
                ),
            ]),
        })
    );
}

#[test]
fn fixture_sections_are_kept() {
    let p = parse_program(FIXTURE).unwrap_or_else(|e| panic!("{e}"));
    let headings: Vec<&str> = p.sections.iter().map(|s| s.heading.as_str()).collect();
    assert_eq!(
        headings,
        [
            "Tiny SFT sweep on arithmetic",
            "Goal",
            "Scope",
            "Reference artifacts",
            "Output format",
            "Keep/discard criteria",
            "Budget envelope",
            "Objective",
            "Job",
            "Search space"
        ]
    );
    assert_eq!(
        p.scope_text(),
        "- Models: the built-in tiny transformer only.\n- Datasets: built-in `arith-add-3` generator.\n- Output repos: me/sweep-*\n- Off-limits: anything outside this directory."
    );
    let goal = p.section("GOAL").expect("goal section");
    assert_eq!(goal.line, 3);
    assert!(goal.body.starts_with("Find a learning rate"));
    assert!(p.section("nope").is_none());
}

#[test]
fn defaults_apply_when_optional_keys_are_absent() {
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        ("Objective", "metric: score\ngoal: maximize"),
        ("Job", "command: python train.py --lr '{lr}'\ntimeout: 10m"),
        (
            "Search space",
            "method: grid\nparameters:\n  lr: {values: [0.1, 0.01]}",
        ),
    ]);
    let p = parse_program(&src).unwrap_or_else(|e| panic!("{e}"));
    let e = &p.envelope;
    assert!(!e.allow_deletes);
    assert!(e.output_repos.is_empty());
    assert_eq!(e.max_concurrent, 1);
    assert_eq!(e.backends, vec![Backend::Local]);
    assert_eq!(e.final_reserve_secs, 0);
    assert_eq!(e.max_cost_usd, None);
    let job = p.job.expect("job");
    assert_eq!(job.command, ["python", "train.py", "--lr", "{lr}"]);
    assert_eq!(job.flavor, "cpu-basic");
    assert_eq!(job.limits, JobLimits::default());
    assert_eq!(job.limits.memory_bytes, 2 << 30);
    assert_eq!(job.limits.log_bytes, 8 << 20);
    assert!(!job.network);
    let s = p.search_space.expect("search");
    assert_eq!(s.seed, 0);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn objective_defaults_and_minimize() {
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        ("Objective", "metric: eval/loss\ngoal: minimize"),
    ]);
    let p = parse_program(&src).unwrap_or_else(|e| panic!("{e}"));
    let o = p.objective.expect("objective");
    assert_eq!(o.goal, Goal::Minimize);
    assert_eq!(o.max_consecutive_failures, 3);
    assert_eq!(o.patience, None);
    assert_eq!(o.target, None);
}

#[test]
fn headings_are_case_insensitive_and_yml_fences_work() {
    let src = "## BUDGET ENVELOPE\n\n```yml\nmax_jobs: 1\nmax_walltime: 3600\nallowed_flavors: [x]\nmax_timeout: \"60\"\n```\n";
    let p = parse_program(src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.envelope.max_walltime_secs, 3600);
    assert_eq!(p.envelope.max_timeout_secs, 60);
    assert_eq!(p.title, None);
}

#[test]
fn sweep_style_parameters() {
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        (
            "Search space",
            "method: random\nparameters:\n  a: {distribution: constant, value: x}\n  b: {distribution: uniform, min: -1, max: 1.5}\n  c: {distribution: q_uniform, min: 1, max: 10}\n  d: {values: [true, 1, 2.5, \"3\"]}",
        ),
    ]);
    let p = parse_program(&src).unwrap_or_else(|e| panic!("{e}"));
    let s = p.search_space.expect("space");
    assert_eq!(s.parameters["a"], Param::Value(Scalar::Str("x".into())));
    assert_eq!(
        s.parameters["b"],
        Param::Uniform {
            min: -1.0,
            max: 1.5
        }
    );
    assert_eq!(
        s.parameters["c"],
        Param::QUniform {
            min: 1.0,
            max: 10.0,
            q: 1.0
        }
    );
    assert_eq!(
        s.parameters["d"],
        Param::Values(vec![
            Scalar::Bool(true),
            Scalar::Int(1),
            Scalar::Float(2.5),
            Scalar::Str("3".into())
        ])
    );
}

#[test]
fn error_display_has_position_and_help() {
    let src = crate::common::env_doc(
        "max_job: 3\nmax_walltime: 8h\nallowed_flavors: [cpu-basic]\nmax_timeout: 1h",
    );
    let e = parse_program(&src).expect_err("unknown key");
    let shown = e.to_string();
    assert_eq!(
        shown,
        "line 6, column 1: unknown key `max_job` in the budget envelope\n  help: did you mean `max_jobs`?"
    );
}

#[test]
fn byte_order_mark_and_crlf_are_tolerated() {
    let src = format!("\u{feff}{}", FIXTURE.replace('\n', "\r\n"));
    let p = parse_program(&src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p, parse_program(FIXTURE).expect("fixture"));
}
