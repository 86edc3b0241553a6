//! Property tests.

use std::collections::BTreeSet;

use mlres_policy::{
    Method, Param, Scalar, SearchSpace, format_duration, format_duration_exact, grid_size,
    parse_duration, parse_metric_line, parse_program, propose, validate_config,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_duration_never_panics(s in ".{0,24}") {
        let _ = parse_duration(&s);
    }

    #[test]
    fn parse_duration_never_panics_on_near_misses(s in "[0-9.smhdeE+_ -]{0,16}") {
        if let Ok(v) = parse_duration(&s) {
            // anything accepted formats back to the same value
            prop_assert_eq!(parse_duration(&format_duration_exact(v)), Ok(v));
        }
    }

    #[test]
    fn exact_format_round_trips(n in any::<u64>()) {
        prop_assert_eq!(parse_duration(&format_duration_exact(n)), Ok(n));
    }

    #[test]
    fn display_format_components_sum_back(n in 0u64..10_000_000_000) {
        let shown = format_duration(n);
        // split `1d2h3m4s` into single-unit parts and parse each with the one parser
        let mut total = 0u64;
        let mut part = String::new();
        for c in shown.chars() {
            part.push(c);
            if c.is_ascii_alphabetic() {
                total += parse_duration(&part).expect("component parses");
                part.clear();
            }
        }
        prop_assert!(part.is_empty());
        prop_assert_eq!(total, n);
    }

    #[test]
    fn decimal_units_are_exact(whole in 0u64..100_000, frac in 0u32..100, unit in prop::sample::select(vec![('s', 1u64), ('m', 60), ('h', 3600), ('d', 86_400)])) {
        let s = format!("{whole}.{frac:02}{}", unit.0);
        let hundredths = (u128::from(whole) * 100 + u128::from(frac)) * u128::from(unit.1);
        match parse_duration(&s) {
            Ok(v) => {
                prop_assert_eq!(hundredths % 100, 0);
                prop_assert_eq!(u128::from(v), hundredths / 100);
            }
            Err(_) => prop_assert_ne!(hundredths % 100, 0),
        }
    }

    #[test]
    fn parse_metric_line_never_panics(s in ".{0,200}") {
        let _ = parse_metric_line(&s);
    }

    #[test]
    fn parse_metric_line_never_panics_on_dict_like(s in "[{}'\":,=a-z0-9. \\[\\]()_-]{0,120}") {
        for (k, _) in parse_metric_line(&s) {
            prop_assert!(!k.is_empty());
        }
    }

    #[test]
    fn a_numeric_string_reads_as_its_number(
        x in prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            (-1e6f64..1e6).prop_map(|v| (v * 1e4).round() / 1e4),
        ],
        form in 0usize..3,
        quote in prop_oneof![Just('\''), Just('"')],
    ) {
        // Numbers longer than 64 characters are not read at all (bounded work per
        // token); every f64 has a short exponent form.
        let text = match form {
            0 if format!("{x}").len() <= 64 => format!("{x}"),
            2 => format!("{x:?}"),
            _ => format!("{x:e}"),
        };
        let bare = parse_metric_line(&format!("{{{quote}loss{quote}: {text}}}"));
        let quoted = parse_metric_line(&format!("{{{quote}loss{quote}: {quote}{text}{quote}}}"));
        prop_assert_eq!(bare.len(), 1);
        prop_assert_eq!(quoted.len(), 1);
        let (a, b) = (bare[0].1, quoted[0].1);
        prop_assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{} vs {}", a, b);
        prop_assert!(a.to_bits() == x.to_bits() || (a.is_nan() && x.is_nan()), "{} vs {}", a, x);
    }

    #[test]
    fn any_string_value_is_a_number_or_nothing(
        s in prop_oneof![
            "[^'\\\\]{0,40}",
            "[-+]?[0-9]{0,4}(\\.[0-9]{0,4})?([eE][-+]?[0-9]{1,3})?",
            "[-+]?(nan|NaN|inf|Infinity|infinity)",
        ],
    ) {
        let got = parse_metric_line(&format!("{{'eval_loss': '{s}', 'epoch': 1}}"));
        let number = s.to_ascii_lowercase().parse::<f64>().ok();
        match number {
            Some(v) => {
                prop_assert_eq!(got.len(), 2);
                prop_assert_eq!(got[0].0.as_str(), "eval_loss");
                prop_assert!(got[0].1.to_bits() == v.to_bits() || (v.is_nan() && got[0].1.is_nan()));
            }
            None => prop_assert_eq!(got, vec![("epoch".to_string(), 1.0)]),
        }
    }

    #[test]
    fn parse_metric_line_never_panics_on_log_like(s in "[\r\x1b\\[A{}'\":,=a-z0-9. ()_|%-]{0,200}") {
        for (k, _) in parse_metric_line(&s) {
            prop_assert!(!k.is_empty());
        }
    }

    #[test]
    fn parse_program_never_panics_on_any_text(s in ".{0,300}") {
        let _ = parse_program(&s);
    }

    #[test]
    fn parse_program_never_panics(s in "(## Budget envelope\n```yaml\n)?[a-z_:\\[\\]{}0-9 .\n-]{0,120}(```)?") {
        let _ = parse_program(&s);
    }
}

fn param_strategy() -> impl Strategy<Value = Param> {
    prop_oneof![
        (-1000.0f64..1000.0, 0.001f64..1000.0)
            .prop_map(|(min, w)| Param::Uniform { min, max: min + w }),
        (-1000i64..1000, 1i64..1000).prop_map(|(min, w)| Param::IntUniform { min, max: min + w }),
        (any::<i64>(), any::<i64>()).prop_filter_map("min < max", |(a, b)| (a < b)
            .then_some(Param::IntUniform { min: a, max: b })),
        (1e-8f64..10.0, 1.001f64..1e6)
            .prop_map(|(min, f)| Param::LogUniformValues { min, max: min * f }),
        (
            -100.0f64..100.0,
            0.0f64..100.0,
            prop::sample::select(vec![0.1, 0.05, 0.25, 1.0, 3.0, 0.001])
        )
            .prop_filter_map("has a multiple", |(min, w, q)| {
                let max = min + w + q; // always contains at least one multiple
                Some(Param::QUniform { min, max, q })
            }),
        prop::collection::btree_set(-50i64..50, 1..5)
            .prop_map(|s| Param::Values(s.into_iter().map(Scalar::Int).collect())),
        prop::collection::btree_set("[a-z]{1,4}", 1..4)
            .prop_map(|s| Param::Values(s.into_iter().map(Scalar::Str).collect())),
        any::<bool>().prop_map(|b| Param::Value(Scalar::Bool(b))),
    ]
}

fn random_space() -> impl Strategy<Value = SearchSpace> {
    (
        prop::collection::btree_map("[a-z]{1,6}", param_strategy(), 1..6),
        any::<u64>(),
    )
        .prop_map(|(parameters, seed)| SearchSpace {
            method: Method::Random,
            parameters,
            seed,
            command: None,
        })
}

fn grid_space() -> impl Strategy<Value = SearchSpace> {
    let p = prop_oneof![
        prop::collection::btree_set(-20i64..20, 1..5)
            .prop_map(|s| Param::Values(s.into_iter().map(Scalar::Int).collect())),
        prop::collection::btree_set("[a-z]{1,3}", 1..4)
            .prop_map(|s| Param::Values(s.into_iter().map(Scalar::Str).collect())),
        (0u32..5).prop_map(|i| Param::Value(Scalar::Float(f64::from(i) / 4.0))),
    ];
    prop::collection::btree_map("[a-z]{1,5}", p, 1..4).prop_map(|parameters| SearchSpace {
        method: Method::Grid,
        parameters,
        seed: 0,
        command: None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_proposals_are_valid_and_deterministic(space in random_space(), index in any::<u64>()) {
        let a = propose(&space, index).expect("random never ends");
        let b = propose(&space, index).expect("random never ends");
        prop_assert_eq!(&a, &b);
        let keys: Vec<&String> = a.keys().collect();
        let want: Vec<&String> = space.parameters.keys().collect();
        prop_assert_eq!(keys, want);
        let v = validate_config(&space, &serde_json::Value::Object(a.clone()));
        prop_assert!(v.is_ok(), "{:?} rejected: {:?}", a, v);
        prop_assert_eq!(v.expect("valid"), a);
    }

    #[test]
    fn grid_enumerates_exactly_grid_size_distinct_points(space in grid_space()) {
        let n = grid_size(&space).expect("grid");
        let expected: u64 = space.parameters.values().map(|p| match p {
            Param::Values(v) => v.len() as u64,
            _ => 1,
        }).product();
        prop_assert_eq!(n, expected);
        let mut seen = BTreeSet::new();
        for i in 0..n {
            let c = propose(&space, i).expect("in range");
            prop_assert!(validate_config(&space, &serde_json::Value::Object(c.clone())).is_ok());
            seen.insert(serde_json::to_string(&c).expect("json"));
        }
        prop_assert_eq!(seen.len() as u64, n);
        prop_assert_eq!(propose(&space, n), None);
    }
}
