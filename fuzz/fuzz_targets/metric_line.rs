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
});
