//! Durations, sizes and money.

use mlres_policy::{
    DurationError, Money, format_duration, format_duration_exact, parse_duration, parse_size,
};

#[test]
fn accepted_durations_are_exact() {
    let cases = [
        ("30m", 1800),
        ("2h", 7200),
        ("1.5h", 5400),
        ("0.5m", 30),
        ("0.25d", 21_600),
        ("45s", 45),
        ("3600", 3600),
        ("0", 0),
        ("1d", 86_400),
        ("1.50h", 5400),
        ("0.001h", 3), /* 3.6s is not whole: checked below */
    ];
    for (s, want) in cases.iter().take(cases.len() - 1) {
        assert_eq!(parse_duration(s), Ok(*want), "{s}");
    }
    assert_eq!(
        parse_duration("0.001h"),
        Err(DurationError::NotWholeSeconds("0.001h".into()))
    );
    assert_eq!(parse_duration("0.01h"), Ok(36));
}

#[test]
fn refused_durations_have_specific_errors() {
    assert_eq!(parse_duration(""), Err(DurationError::Empty));
    assert!(
        matches!(parse_duration("1e5s"), Err(DurationError::Invalid(_, n)) if n.contains("exponent"))
    );
    assert_eq!(
        parse_duration("+86400"),
        Err(DurationError::Sign("+86400".into()))
    );
    assert_eq!(
        parse_duration("-1h"),
        Err(DurationError::Sign("-1h".into()))
    );
    assert!(
        matches!(parse_duration("86_400"), Err(DurationError::Invalid(_, n)) if n.contains('_'))
    );
    assert_eq!(
        parse_duration("2h30m"),
        Err(DurationError::Compound("2h30m".into()))
    );
    assert_eq!(
        parse_duration("1.5"),
        Err(DurationError::NoUnit("1.5".into()))
    );
    assert!(matches!(
        parse_duration("h"),
        Err(DurationError::Invalid(..))
    ));
    assert_eq!(
        parse_duration("1 h"),
        Err(DurationError::Whitespace("1 h".into()))
    );
    assert_eq!(
        parse_duration(" 1h"),
        Err(DurationError::Whitespace(" 1h".into()))
    );
    assert!(matches!(
        parse_duration("1w"),
        Err(DurationError::Invalid(..))
    ));
    assert!(matches!(
        parse_duration("1hr"),
        Err(DurationError::Invalid(..))
    ));
    assert!(matches!(
        parse_duration("01h"),
        Err(DurationError::Invalid(..))
    ));
    assert!(matches!(
        parse_duration(".5h"),
        Err(DurationError::Invalid(..))
    ));
    assert!(matches!(
        parse_duration("5.h"),
        Err(DurationError::Invalid(..))
    ));
    assert!(matches!(
        parse_duration("1.2.3h"),
        Err(DurationError::Invalid(..))
    ));
    assert_eq!(
        parse_duration("99999999999999999999"),
        Err(DurationError::Overflow("99999999999999999999".into()))
    );
    assert_eq!(
        parse_duration("300000000000000d"),
        Err(DurationError::Overflow("300000000000000d".into()))
    );
    assert!(parse_duration("213503982334601d").is_ok());
    // The decimal-timeout trick of the plugin guard: `100.5h` is 100.5 hours, not 5.
    assert_eq!(parse_duration("100.5h"), Ok(361_800));
}

#[test]
fn formatting() {
    assert_eq!(format_duration(5400), "1h30m");
    assert_eq!(format_duration(45), "45s");
    assert_eq!(format_duration(0), "0s");
    assert_eq!(format_duration(90_061), "1d1h1m1s");
    assert_eq!(format_duration_exact(5400), "90m");
    assert_eq!(format_duration_exact(7200), "2h");
    assert_eq!(format_duration_exact(172_800), "2d");
    assert_eq!(format_duration_exact(61), "61s");
    assert_eq!(format_duration_exact(0), "0s");
}

#[test]
fn sizes() {
    assert_eq!(parse_size("2GiB"), Ok(2 << 30));
    assert_eq!(parse_size("1.5GiB"), Ok(1_610_612_736));
    assert_eq!(parse_size("512MiB"), Ok(512 << 20));
    assert_eq!(parse_size("10KB"), Ok(10_000));
    assert_eq!(parse_size("7B"), Ok(7));
    assert_eq!(parse_size("1024"), Ok(1024));
    for bad in [
        "", "2 GiB", "2gib", "-1MiB", "1e3MB", "0.5B", "1.5", "GiB", "1_000B",
    ] {
        assert!(parse_size(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn money() {
    assert_eq!(
        Money::parse("12.50"),
        Ok(Money {
            micro_usd: 12_500_000
        })
    );
    assert_eq!(Money::parse("0.000001"), Ok(Money { micro_usd: 1 }));
    assert_eq!(
        Money::parse("7"),
        Ok(Money {
            micro_usd: 7_000_000
        })
    );
    for bad in ["-1", "1e2", "$5", "1.0000001", "", ".5", "1,000"] {
        assert!(Money::parse(bad).is_err(), "{bad:?} accepted");
    }
    assert_eq!(
        Money {
            micro_usd: 12_500_000
        }
        .to_string(),
        "12.50"
    );
    assert_eq!(
        Money {
            micro_usd: 3_141_593
        }
        .to_string(),
        "3.141593"
    );
    assert_eq!(Money { micro_usd: 50_000 }.to_string(), "0.05");
}
