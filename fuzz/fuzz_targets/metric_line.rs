//! Metric lines come from job output (untrusted): parsing must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let mut scan = mlres_policy::MetricScan::default();
    for (k, _) in mlres_policy::parse_metric_line(&line) {
        assert!(!k.is_empty());
    }
    scan.push_line(&line);
    // The same bytes as a quoted dict value (Transformers 5 quotes its numbers): at most
    // the one metric, and only when the string is a number.
    if !line.contains(['\'', '\\']) {
        let got = mlres_policy::parse_metric_line(&format!("{{'loss': '{line}'}}"));
        assert!(got.len() <= 1);
        if let Some((k, v)) = got.first() {
            assert_eq!(k, "loss");
            let want = line.to_ascii_lowercase().parse::<f64>().ok();
            assert!(want.is_some_and(|w| w.to_bits() == v.to_bits() || (w.is_nan() && v.is_nan())));
        }
    }
});
