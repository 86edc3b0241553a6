//! Proposers, config validation and command rendering.

use std::collections::{BTreeMap, BTreeSet};

use mlres_policy::{
    Config, Method, Param, Scalar, SearchSpace, grid_size, propose, render_command, validate_config,
};
use serde_json::json;

fn space(method: Method, params: Vec<(&str, Param)>) -> SearchSpace {
    SearchSpace {
        method,
        parameters: params
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        seed: 42,
        command: None,
    }
}

fn grid() -> SearchSpace {
    space(
        Method::Grid,
        vec![
            ("a", Param::Values(vec![Scalar::Int(1), Scalar::Int(2)])),
            ("b", Param::Value(Scalar::Str("x".into()))),
            (
                "c",
                Param::Values(vec![
                    Scalar::Float(0.1),
                    Scalar::Float(0.2),
                    Scalar::Float(0.3),
                ]),
            ),
        ],
    )
}

#[test]
fn grid_order_is_name_order_last_fastest() {
    let s = grid();
    assert_eq!(grid_size(&s), Some(6));
    let points: Vec<String> = (0..6)
        .map(|i| serde_json::to_string(&propose(&s, i).expect("point")).expect("json"))
        .collect();
    assert_eq!(
        points,
        [
            r#"{"a":1,"b":"x","c":0.1}"#,
            r#"{"a":1,"b":"x","c":0.2}"#,
            r#"{"a":1,"b":"x","c":0.3}"#,
            r#"{"a":2,"b":"x","c":0.1}"#,
            r#"{"a":2,"b":"x","c":0.2}"#,
            r#"{"a":2,"b":"x","c":0.3}"#,
        ]
    );
    assert_eq!(propose(&s, 6), None);
    assert_eq!(propose(&s, u64::MAX), None);
}

#[test]
fn random_is_a_pure_function_of_seed_and_index() {
    let mut s = space(
        Method::Random,
        vec![
            (
                "lr",
                Param::LogUniformValues {
                    min: 1e-5,
                    max: 1e-1,
                },
            ),
            ("n", Param::IntUniform { min: -3, max: 3 }),
            (
                "q",
                Param::QUniform {
                    min: 0.0,
                    max: 1.0,
                    q: 0.1,
                },
            ),
            ("u", Param::Uniform { min: 2.0, max: 4.0 }),
        ],
    );
    assert_eq!(grid_size(&s), None);
    let a: Vec<Config> = (0..50).map(|i| propose(&s, i).expect("random")).collect();
    let b: Vec<Config> = (0..50).map(|i| propose(&s, i).expect("random")).collect();
    assert_eq!(a, b);
    let distinct: BTreeSet<String> = a
        .iter()
        .map(|c| serde_json::to_string(c).expect("json"))
        .collect();
    assert!(
        distinct.len() > 45,
        "proposals repeat too often: {}",
        distinct.len()
    );
    // int_uniform covers both inclusive ends over enough draws.
    let ns: BTreeSet<i64> = (0..400)
        .map(|i| propose(&s, i).expect("p")["n"].as_i64().expect("int"))
        .collect();
    assert_eq!(ns, (-3..=3).collect());
    // q_uniform gives clean multiples.
    for c in &a {
        let q = c["q"].as_f64().expect("q");
        let text = c["q"].to_string();
        assert!(text.len() <= 3, "untidy multiple {text}");
        assert!((0.0..=1.0).contains(&q));
    }
    // log-uniform: roughly half the draws below the geometric mean 1e-3.
    let below = (0..400)
        .filter(|&i| propose(&s, i).expect("p")["lr"].as_f64().expect("f") < 1e-3)
        .count();
    assert!(
        (140..=260).contains(&below),
        "not log-uniform: {below}/400 below 1e-3"
    );
    s.seed = 43;
    assert_ne!(propose(&s, 0), a.first().cloned());
}

#[test]
fn validate_config_accepts_members_and_normalises() {
    let s = grid();
    let ok = validate_config(&s, &json!({"c": 0.2, "a": 2.0, "b": "x"})).expect("valid");
    assert_eq!(
        serde_json::to_string(&ok).expect("json"),
        r#"{"a":2,"b":"x","c":0.2}"#
    );
}

#[test]
fn validate_config_refusals() {
    let s = grid();
    let cases = [
        (json!([1, 2]), "must be a JSON object"),
        (json!({"a": 1, "b": "x"}), "`c` is missing"),
        (
            json!({"a": 1, "b": "x", "c": 0.1, "cc": 1}),
            "`cc` is not a parameter",
        ),
        (
            json!({"a": 3, "b": "x", "c": 0.1}),
            "`a` must be one of [1, 2], found 3",
        ),
        (json!({"a": "1", "b": "x", "c": 0.1}), "`a` must be one of"),
        (json!({"a": 1, "b": "y", "c": 0.1}), "`b` must be \"x\""),
    ];
    for (cfg, needle) in cases {
        let e = validate_config(&s, &cfg).expect_err("invalid");
        assert!(e.contains(needle), "{cfg}: {e}");
    }
    let r = space(
        Method::Random,
        vec![
            ("n", Param::IntUniform { min: 1, max: 4 }),
            (
                "q",
                Param::QUniform {
                    min: 0.0,
                    max: 1.0,
                    q: 0.25,
                },
            ),
            ("u", Param::Uniform { min: 0.0, max: 1.0 }),
        ],
    );
    let good = json!({"n": 4, "q": 0.75, "u": 1.0});
    assert!(validate_config(&r, &good).is_ok());
    let bad = [
        (json!({"n": 5, "q": 0.75, "u": 0.5}), "outside [1, 4]"),
        (json!({"n": 1.5, "q": 0.75, "u": 0.5}), "must be an integer"),
        (
            json!({"n": 1, "q": 0.7, "u": 0.5}),
            "not a multiple of 0.25",
        ),
        (json!({"n": 1, "q": 0.75, "u": 1.01}), "outside [0, 1]"),
        (json!({"n": 1, "q": 0.75, "u": "0.5"}), "must be a number"),
        (json!({"n": 1, "q": 0.75, "u": null}), "must be a number"),
    ];
    for (cfg, needle) in bad {
        let e = validate_config(&r, &cfg).expect_err("invalid");
        assert!(e.contains(needle), "{cfg}: {e}");
    }
    let normalised = validate_config(&r, &json!({"n": 2.0, "q": 0.5, "u": 0.5})).expect("ok");
    assert_eq!(normalised["n"], json!(2));
}

#[test]
fn render_command_substitutes_without_splitting() {
    let template: Vec<String> = [
        "{mlres}",
        "train",
        "--lr={lr}",
        "--name",
        "{name}",
        "{{literal}}",
        "{n}",
        "{f}",
        "{flag}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut config = Config::new();
    config.insert("lr".into(), json!(0.0003));
    config.insert("name".into(), json!("a b; rm -rf /"));
    config.insert("n".into(), json!(64));
    config.insert("f".into(), json!(2.0));
    config.insert("flag".into(), json!(true));
    let builtins = BTreeMap::from([("mlres".to_string(), "/bin/mlres".to_string())]);
    let argv = render_command(&template, &config, &builtins).expect("render");
    assert_eq!(
        argv,
        [
            "/bin/mlres",
            "train",
            "--lr=0.0003",
            "--name",
            "a b; rm -rf /",
            "{literal}",
            "64",
            "2.0",
            "true"
        ]
    );
    let e = render_command(&["{missing}".to_string()], &config, &builtins).expect_err("missing");
    assert!(e.contains("no value for placeholder `{missing}`"), "{e}");
    let e = render_command(&["{oops".to_string()], &config, &builtins).expect_err("unclosed");
    assert!(e.contains("unclosed"), "{e}");
    let e = render_command(&["a}b".to_string()], &config, &builtins).expect_err("stray");
    assert!(e.contains("stray"), "{e}");
    let mut clash = config.clone();
    clash.insert("mlres".into(), json!("x"));
    let e = render_command(&["{mlres}".to_string()], &clash, &builtins).expect_err("clash");
    assert!(e.contains("both"), "{e}");
    let mut nested = Config::new();
    nested.insert("lr".into(), json!([1]));
    assert!(render_command(&["{lr}".to_string()], &nested, &builtins).is_err());
}

mod config_args {
    use mlres_policy::{ConfigArgError, Method, Param, Scalar, parse_config_args};
    use serde_json::json;

    use super::space;

    fn typed() -> mlres_policy::SearchSpace {
        space(
            Method::Random,
            vec![
                (
                    "lr",
                    Param::Values(vec![Scalar::Float(0.1), Scalar::Float(0.01)]),
                ),
                (
                    "width",
                    Param::Values(vec![Scalar::Int(8), Scalar::Int(16)]),
                ),
                (
                    "tag",
                    Param::Values(vec![Scalar::Str("1".into()), Scalar::Str("2".into())]),
                ),
                ("opt", Param::Value(Scalar::Str("adam".into()))),
                (
                    "fast",
                    Param::Values(vec![Scalar::Bool(true), Scalar::Bool(false)]),
                ),
                ("wd", Param::Uniform { min: 0.0, max: 1.0 }),
                ("n", Param::IntUniform { min: 1, max: 9 }),
            ],
        )
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[track_caller]
    fn ok(a: &[&str]) -> serde_json::Value {
        serde_json::Value::Object(
            parse_config_args(&typed(), &args(a)).unwrap_or_else(|e| panic!("{a:?}: {e}")),
        )
    }

    #[track_caller]
    fn err(a: &[&str]) -> ConfigArgError {
        match parse_config_args(&typed(), &args(a)) {
            Ok(c) => panic!("{a:?} parsed as {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn name_value_pairs_take_the_search_space_types() {
        assert_eq!(
            ok(&[
                "lr=0.1",
                "width=16",
                "tag=2",
                "opt=adam",
                "fast=false",
                "wd=0.5",
                "n=3"
            ]),
            json!({"lr": 0.1, "width": 16, "tag": "2", "opt": "adam", "fast": false, "wd": 0.5, "n": 3})
        );
        // Another spelling of a listed number takes the listed spelling.
        assert_eq!(ok(&["lr=1e-1"]), json!({"lr": 0.1}));
        // A value with `=` in it keeps everything after the first `=`.
        assert_eq!(ok(&["opt=a=b"]), json!({"opt": "a=b"}));
    }

    #[test]
    fn a_json_object_is_the_other_form() {
        assert_eq!(
            ok(&[r#"{"lr": 0.1, "width": 8}"#]),
            json!({"lr": 0.1, "width": 8})
        );
        assert_eq!(ok(&[]), json!({}));
    }

    #[test]
    fn malformed_flags_are_usage_errors() {
        for bad in [
            &["lr"][..],
            &["=0.1"],
            &["lr=0.1", "lr=0.01"],
            &[r#"{"lr": 0.1}"#, "width=8"],
            &[r#"{"lr": 0.1}"#, r#"{"width": 8}"#],
            &["[1]"],
            &["{not json"],
        ] {
            let e = err(bad);
            assert!(matches!(e, ConfigArgError::Usage(_)), "{bad:?}: {e:?}");
            assert!(!e.to_string().is_empty());
        }
        assert!(err(&["lr=0.1", "lr=0.01"]).to_string().contains("twice"));
        assert!(err(&["[1]"]).to_string().contains("JSON object"));
    }

    #[test]
    fn values_that_do_not_fit_the_space_are_refused_with_the_reason() {
        let e = err(&["wd=abc"]);
        assert!(matches!(e, ConfigArgError::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains("`wd` must be a number"), "{e}");
        let e = err(&["n=3.5"]);
        assert!(e.to_string().contains("`n` must be an integer"), "{e}");
        let e = err(&["widht=8"]);
        assert!(matches!(e, ConfigArgError::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains("did you mean `width`?"), "{e}");
        let e = err(&["fast=yes"]);
        assert!(e.to_string().contains("true or false"), "{e}");
    }
}

#[test]
fn param_sizes_count_distinct_values() {
    use mlres_policy::param_size;
    assert_eq!(param_size(&Param::Value(Scalar::Int(3))), Some(1));
    assert_eq!(
        param_size(&Param::Values(vec![Scalar::Int(1), Scalar::Int(2)])),
        Some(2)
    );
    assert_eq!(param_size(&Param::IntUniform { min: -2, max: 2 }), Some(5));
    assert_eq!(
        param_size(&Param::IntUniform {
            min: i64::MIN,
            max: i64::MAX
        }),
        None
    );
    let q = Param::QUniform {
        min: 0.05,
        max: 1.0,
        q: 0.1,
    };
    assert_eq!(param_size(&q), Some(10));
    assert_eq!(param_size(&Param::Uniform { min: 0.0, max: 1.0 }), None);
}
