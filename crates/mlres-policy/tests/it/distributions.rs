//! The W&B distribution set: parsing (with typed, positioned errors), draws inside each
//! distribution's bounds with its quantisation, and agent configs normalised after rounding.

use mlres_policy::{
    Dist, Method, Param, Program, SearchSpace, parse_program, propose, propose_next,
    validate_config,
};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::common::{BASE, doc, expect_err};

fn program(params: &str) -> Program {
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        (
            "Search space",
            &format!("method: random\nparameters:\n{params}"),
        ),
    ]);
    parse_program(&src).unwrap_or_else(|e| panic!("{e}\n{src}"))
}

fn space_of(params: &str) -> SearchSpace {
    program(params).search_space.expect("space")
}

/// Line of the first parameter in a `doc` with BASE and a search space.
const PARAM_LINE: usize = 17;

fn err_of(params: &str, column: usize, needle: &str) -> mlres_policy::ProgramError {
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        (
            "Search space",
            &format!("method: random\nparameters:\n{params}"),
        ),
    ]);
    expect_err(&src, PARAM_LINE, column, needle)
}

#[test]
fn every_wandb_distribution_parses_with_wandb_meaning() {
    let s = space_of(
        "  a: {distribution: q_log_uniform, min: 2.772588722239781, max: 6.238324625039508}\n\
         \x20 b: {distribution: q_log_uniform_values, min: 16, max: 512, q: 8}\n\
         \x20 c: {distribution: inv_log_uniform, min: 1, max: 5}\n\
         \x20 d: {distribution: inv_log_uniform_values, min: 0.001, max: 0.1}\n\
         \x20 e: {distribution: normal}\n\
         \x20 f: {distribution: q_normal, mu: 10, sigma: 2, q: 0.5}\n\
         \x20 g: {distribution: log_normal, mu: 0, sigma: 0.5}\n\
         \x20 h: {distribution: q_log_normal, mu: 3, sigma: 1}\n\
         \x20 i: {distribution: beta, a: 2, b: 5}\n\
         \x20 j: {distribution: q_beta, a: 2, b: 2, q: 0.1}\n\
         \x20 k: {distribution: int_uniform, min: 64, max: 1024, log: true}",
    );
    let p = &s.parameters;
    match p["a"] {
        Param::Shaped {
            dist: Dist::LogUniform { min, max },
            q: Some(q),
            int: true,
        } => {
            // Exponents: e^min = 16, e^max = 512.
            assert!((min.exp() - 16.0).abs() < 1e-9 && (max.exp() - 512.0).abs() < 1e-9);
            assert_eq!(q, 1.0);
        }
        ref other => panic!("a: {other:?}"),
    }
    assert_eq!(
        p["b"],
        Param::Shaped {
            dist: Dist::LogUniformValues {
                min: 16.0,
                max: 512.0
            },
            q: Some(8.0),
            int: true
        }
    );
    assert_eq!(
        p["e"],
        Param::Shaped {
            dist: Dist::Normal {
                mu: 0.0,
                sigma: 1.0
            },
            q: None,
            int: false
        }
    );
    assert_eq!(
        p["f"],
        Param::Shaped {
            dist: Dist::Normal {
                mu: 10.0,
                sigma: 2.0
            },
            q: Some(0.5),
            int: false
        }
    );
    assert_eq!(
        p["i"],
        Param::Shaped {
            dist: Dist::Beta { a: 2.0, b: 5.0 },
            q: None,
            int: false
        }
    );
    assert_eq!(p["k"], Param::IntLogUniform { min: 64, max: 1024 });
    // The approval document names each one as written.
    let docu = mlres_policy::approval_document(&program(
        "  b: {distribution: q_log_uniform_values, min: 16, max: 512}\n\
         \x20 k: {distribution: int_uniform, min: 64, max: 1024, log: true}",
    ));
    assert!(docu.contains("\"q_log_uniform_values\""), "{docu}");
    assert!(docu.contains("\"log\": true"), "{docu}");
}

#[test]
fn bad_distribution_keys_and_values_are_refused_with_their_position() {
    err_of(
        "  x: {distribution: normal, min: 0, max: 1}",
        29,
        "`min` is not used with distribution normal",
    );
    err_of(
        "  x: {distribution: normal, sigma: 0}",
        36,
        "`sigma` must be greater than 0",
    );
    err_of(
        "  x: {distribution: beta, a: -1}",
        30,
        "`a` must be greater than 0",
    );
    err_of(
        "  x: {distribution: q_log_uniform_values, min: 0, max: 10}",
        48,
        "`min` must be greater than 0 for q_log_uniform_values",
    );
    err_of(
        "  x: {distribution: q_log_uniform_values, min: 1, max: 10, q: 0}",
        63,
        "`q` must be greater than 0",
    );
    let e = err_of(
        "  x: {distribution: q_log_uniform, min: 16, max: 512}",
        50,
        "takes natural-log exponents as `min`/`max`: values would reach e^512",
    );
    assert!(
        e.help
            .as_deref()
            .unwrap_or("")
            .contains("q_log_uniform_values"),
        "{e:?}"
    );
    err_of(
        "  x: {distribution: inv_log_uniform, min: -40, max: 1}",
        43,
        "values would reach e^40",
    );
    err_of(
        "  x: {distribution: int_uniform, min: 0, max: 8, log: true}",
        39,
        "`min` must be at least 1 for a log-scaled int_uniform",
    );
    err_of(
        "  x: {distribution: int_uniform, min: 1, max: 8, log: yes}",
        55,
        "`log` must be true or false",
    );
    err_of(
        "  x: {distribution: q_log_uniform_values, min: 1.2, max: 1.8, q: 1}",
        3,
        "no multiple of q = 1 lies in",
    );
    err_of(
        "  x: {distribution: uniform, min: 0, max: 1, mu: 0}",
        46,
        "`mu` is not used with distribution uniform",
    );
    err_of(
        "  x: {distribution: normall}",
        21,
        "unknown distribution `normall`",
    );
}

#[test]
fn tpe_is_a_method_and_unknown_methods_are_refused() {
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        (
            "Search space",
            "method: tpe\nparameters:\n  x: {distribution: uniform, min: 0, max: 1}",
        ),
    ]);
    let p = parse_program(&src).expect("tpe");
    assert_eq!(p.search_space.expect("space").method, Method::Tpe);
    let (src, _) = doc(&[
        ("Budget envelope", BASE),
        (
            "Search space",
            "method: tpee\nparameters:\n  x: {distribution: uniform, min: 0, max: 1}",
        ),
    ]);
    let e = expect_err(&src, 15, 9, "unknown search method `tpee`");
    assert!(
        e.help
            .as_deref()
            .unwrap_or("")
            .contains("did you mean `tpe`"),
        "{e:?}"
    );
}

/// Checks one drawn value against its parameter.
fn check(name: &str, p: &Param, v: &Value) {
    let f = v
        .as_f64()
        .unwrap_or_else(|| panic!("{name}: not a number: {v}"));
    match p {
        Param::IntLogUniform { min, max } => {
            let i = v
                .as_i64()
                .unwrap_or_else(|| panic!("{name}: not an integer: {v}"));
            assert!((*min..=*max).contains(&i), "{name}: {i}");
        }
        Param::Shaped { dist, q, int } => {
            let (lo, hi) = dist.bounds();
            if let Some(lo) = lo {
                assert!(f >= lo - 1e-9, "{name}: {f} < {lo}");
            }
            if let Some(hi) = hi {
                assert!(f <= hi + 1e-9, "{name}: {f} > {hi}");
            }
            if let Some(q) = q {
                let k = f / q;
                assert!(
                    (k - k.round()).abs() < 1e-6,
                    "{name}: {f} not a multiple of {q}"
                );
            }
            if *int {
                assert!(
                    v.is_i64() || v.is_u64(),
                    "{name}: integer expected, got {v}"
                );
            }
        }
        _ => {}
    }
}

const ALL: &str = "  a: {distribution: q_log_uniform, min: 2.7, max: 6.3}\n\
     \x20 b: {distribution: q_log_uniform_values, min: 16, max: 512}\n\
     \x20 c: {distribution: inv_log_uniform, min: 1, max: 5}\n\
     \x20 d: {distribution: inv_log_uniform_values, min: 0.001, max: 0.1}\n\
     \x20 e: {distribution: normal, mu: -3, sigma: 0.1}\n\
     \x20 f: {distribution: q_normal, mu: 10, sigma: 2, q: 0.5}\n\
     \x20 g: {distribution: log_normal, mu: 0, sigma: 0.5}\n\
     \x20 h: {distribution: q_log_normal, mu: 3, sigma: 1, q: 2}\n\
     \x20 i: {distribution: beta, a: 2, b: 5}\n\
     \x20 j: {distribution: q_beta, a: 0.5, b: 0.5, q: 0.1}\n\
     \x20 k: {distribution: int_uniform, min: 64, max: 1024, log: true}";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_draws_respect_every_distribution(seed in any::<u64>(), index in 0u64..1_000_000) {
        let mut s = space_of(ALL);
        s.seed = seed;
        let c = propose(&s, index).expect("random");
        for (name, p) in &s.parameters {
            check(name, p, &c[name]);
        }
        // What the proposer draws, an agent may submit: it validates to itself.
        let back = validate_config(&s, &Value::Object(c.clone())).expect("valid");
        prop_assert_eq!(back, c);
    }

    #[test]
    fn tpe_draws_respect_every_distribution(seed in any::<u64>(), n in 0usize..14) {
        let mut s = space_of(ALL);
        s.method = Method::Tpe;
        s.seed = seed;
        let mut history = Vec::new();
        for i in 0..=n {
            let (_, c) = propose_next(&s, i as u64, &history).expect("tpe");
            for (name, p) in &s.parameters {
                check(name, p, &c[name]);
            }
            prop_assert!(validate_config(&s, &Value::Object(c.clone())).is_ok());
            #[allow(clippy::cast_precision_loss)]
            let loss = c["e"].as_f64().expect("e") + i as f64;
            history.push(mlres_policy::Observation {
                config: c,
                outcome: mlres_policy::Outcome::Done(loss),
            });
        }
    }
}

#[test]
fn log_scaled_integers_are_integers_spread_by_their_logarithm() {
    let s = space_of("  batch_size: {distribution: q_log_uniform_values, min: 16, max: 512}");
    let draws: Vec<i64> = (0..2000)
        .map(|i| {
            let c = propose(&s, i).expect("random");
            c["batch_size"]
                .as_i64()
                .unwrap_or_else(|| panic!("an integer, not {}", c["batch_size"]))
        })
        .collect();
    assert!(draws.iter().all(|b| (16..=512).contains(b)));
    // Log-uniform: about half below the geometric mean sqrt(16 * 512) = 90.5.
    let below = draws.iter().filter(|&&b| b < 91).count();
    assert!((850..=1150).contains(&below), "{below}/2000 below 91");
    assert!(draws.contains(&16) && draws.contains(&512));
}

#[test]
fn shaped_distributions_have_their_documented_shape() {
    let s = space_of(
        "  n: {distribution: normal, mu: 5, sigma: 2}\n\
         \x20 b: {distribution: beta, a: 2, b: 6}\n\
         \x20 inv: {distribution: inv_log_uniform, min: 0, max: 4}",
    );
    let n = 4000;
    let (mut sum_n, mut sq_n, mut sum_b, mut inv_lo) = (0.0, 0.0, 0.0, 0usize);
    for i in 0..n {
        let c = propose(&s, i).expect("random");
        let x = c["n"].as_f64().expect("n");
        sum_n += x;
        sq_n += x * x;
        sum_b += c["b"].as_f64().expect("b");
        let v = c["inv"].as_f64().expect("inv");
        // exp(-U(0, 4)): inside [e^-4, 1], half of it below e^-2.
        assert!(((-4.0f64).exp() - 1e-12..=1.0 + 1e-12).contains(&v), "{v}");
        if v < (-2.0f64).exp() {
            inv_lo += 1;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let nf = n as f64;
    let mean = sum_n / nf;
    let sd = (sq_n / nf - mean * mean).sqrt();
    assert!((mean - 5.0).abs() < 0.15, "normal mean {mean}");
    assert!((sd - 2.0).abs() < 0.15, "normal sd {sd}");
    // Beta(2, 6) has mean 2/8.
    assert!((sum_b / nf - 0.25).abs() < 0.02, "beta mean {}", sum_b / nf);
    assert!((1800..=2200).contains(&inv_lo), "inv_log_uniform: {inv_lo}");
}

#[test]
fn agent_values_are_normalised_after_quantisation() {
    let s = space_of(
        "  batch_size: {distribution: q_log_uniform_values, min: 16, max: 512}\n\
         \x20 drop: {distribution: q_beta, a: 2, b: 2, q: 0.1}\n\
         \x20 units: {distribution: int_uniform, min: 64, max: 1024, log: true}",
    );
    let c = validate_config(
        &s,
        &json!({"batch_size": 243.0, "drop": 0.30000000000000004, "units": 100.0}),
    )
    .expect("valid");
    assert_eq!(
        Value::Object(c),
        json!({"batch_size": 243, "drop": 0.3, "units": 100})
    );
    let bad = [
        (
            json!({"batch_size": 242.758, "drop": 0.3, "units": 100}),
            "`batch_size` = 242.758 is not a multiple of 1",
        ),
        (
            json!({"batch_size": 1024, "drop": 0.3, "units": 100}),
            "above 512",
        ),
        (
            json!({"batch_size": 32, "drop": 0.35, "units": 100}),
            "not a multiple of 0.1",
        ),
        (
            json!({"batch_size": 32, "drop": 0.3, "units": 2000}),
            "outside [64, 1024]",
        ),
    ];
    for (cfg, needle) in bad {
        let e = validate_config(&s, &cfg).expect_err("invalid");
        assert!(e.contains(needle), "{cfg}: {e}");
    }
}

#[test]
fn random_dedups_after_quantisation() {
    // Five values only: the sixth proposal cannot be new, and the history says so.
    let s = space_of("  k: {distribution: int_uniform, min: 1, max: 5}");
    let mut history = Vec::new();
    let mut next = 0;
    let mut seen = std::collections::BTreeSet::new();
    while let Some((i, c)) = propose_next(&s, next, &history) {
        assert!(seen.insert(c["k"].as_i64().expect("k")), "repeated {c:?}");
        history.push(mlres_policy::Observation {
            config: c,
            outcome: mlres_policy::Outcome::Pending,
        });
        next = i + 1;
    }
    assert_eq!(seen.len(), 5);
}

#[test]
fn command_proposals_are_read_strictly() {
    use mlres_policy::{Observation, Outcome, parse_proposal};
    let s = space_of(
        "  x: {values: [1, 2, 3]}\n\
         \x20 b: {distribution: q_log_uniform_values, min: 16, max: 512}",
    );
    let tried = vec![Observation {
        config: serde_json::from_value(json!({"x": 1, "b": 32})).expect("config"),
        outcome: Outcome::Pending,
    }];
    let (h, c) = parse_proposal(
        &s,
        "let me think\n{\"hypothesis\": \"bigger batch\", \"config\": {\"x\": 2, \"b\": 64.0}}\n",
        &tried,
    )
    .expect("chatter before the JSON line is fine");
    assert_eq!(h, "bigger batch");
    assert_eq!(Value::Object(c), json!({"x": 2, "b": 64}));
    let bad = [
        ("no json at all", "not a JSON object"),
        ("[1, 2]", "not a JSON object"),
        (
            r#"{"config": {"x": 2, "b": 64}}"#,
            "`hypothesis` is missing",
        ),
        (
            r#"{"hypothesis": " ", "config": {"x": 2, "b": 64}}"#,
            "non-empty string",
        ),
        (r#"{"hypothesis": "h"}"#, "`config` is missing"),
        (
            r#"{"hypothesis": "h", "config": {"x": 2, "b": 64}, "why": "x"}"#,
            "unknown key `why`",
        ),
        (
            r#"{"hypothesis": "h", "config": {"x": 9, "b": 64}}"#,
            "`x` must be one of",
        ),
        (
            r#"{"hypothesis": "h", "config": {"x": 2, "b": 64, "c": 1}}"#,
            "`c` is not a parameter",
        ),
        (
            r#"{"hypothesis": "h", "config": {"x": 1, "b": 32.0}}"#,
            "duplicate",
        ),
    ];
    for (out, needle) in bad {
        let e = parse_proposal(&s, out, &tried).expect_err(out);
        assert!(e.contains(needle), "{out}: {e}");
    }
}

/// Every `{distribution: …}` the README shows parses as written.
#[test]
fn the_readme_distribution_examples_parse() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .expect("README");
    let snippets: Vec<&str> = readme
        .split('`')
        .filter(|s| s.starts_with("{distribution:"))
        .collect();
    assert!(
        snippets.iter().any(|s| s.contains("log: true")),
        "{snippets:?}"
    );
    for s in snippets {
        let space = space_of(&format!("  p: {s}"));
        assert!(space.parameters.contains_key("p"), "{s}");
    }
}

#[test]
fn log_uniform_takes_exponents_as_in_wandb() {
    // ln(1e-4) .. ln(1e-1): a learning rate between 1e-4 and 0.1, log-uniformly.
    let s = space_of(
        "  lr: {distribution: log_uniform, min: -9.210340371976182, max: -2.302585092994046}",
    );
    assert_eq!(
        s.parameters["lr"],
        Param::Shaped {
            dist: Dist::LogUniform {
                min: -9.210_340_371_976_182,
                max: -std::f64::consts::LN_10
            },
            q: None,
            int: false
        }
    );
    let mut below_1e3 = 0;
    for i in 0..400u64 {
        let c = mlres_policy::propose(&s, i).expect("random proposes");
        let v = c["lr"].as_f64().expect("a float");
        assert!((1e-4 * 0.999_999..=0.1 * 1.000_001).contains(&v), "{v}");
        if v < 1e-3 {
            below_1e3 += 1;
        }
    }
    // Log-uniform: a third of the mass is in [1e-4, 1e-3] (uniform on values would give 1%).
    assert!(
        (90..=180).contains(&below_1e3),
        "{below_1e3}/400 below 1e-3"
    );
    let docu = mlres_policy::approval_document(&program(
        "  lr: {distribution: log_uniform, min: -9.2, max: -2.3}",
    ));
    assert!(docu.contains("\"log_uniform\""), "{docu}");
    // Exponents that would overflow are refused (the values form is named).
    err_of(
        "  x: {distribution: log_uniform, min: 16, max: 512}",
        48,
        "takes natural-log exponents",
    );
}
