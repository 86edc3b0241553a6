//! The job's `limits` keys added for cgroup enforcement: `address_space` (an explicit
//! RLIMIT_AS, off by default) and `cpus` (a CPU quota). Strict like the other limit keys.

use mlres_policy::{
    JobLimits, ProgramError, approval_document, approval_hash, format_cpus, parse_program,
};

const FIXTURE: &str = include_str!("fixtures/program.md");

/// The fixture with `extra` (one `key: value` line) added to its `limits`, and the line
/// number it lands on.
fn with_limit(extra: &str) -> (String, usize) {
    let at = FIXTURE
        .lines()
        .position(|l| l == "  log_size: 4MiB")
        .expect("fixture has log_size");
    let src = FIXTURE.replace(
        "  log_size: 4MiB\n",
        &format!("  log_size: 4MiB\n  {extra}\n"),
    );
    (src, at + 2)
}

fn limits(extra: &str) -> JobLimits {
    let (src, _) = with_limit(extra);
    let p = parse_program(&src).unwrap_or_else(|e| panic!("{extra}: {e}"));
    p.job.expect("job").limits
}

/// Parse error for `extra`, which must be reported on its own line.
fn refused(extra: &str, needle: &str) -> ProgramError {
    let (src, line) = with_limit(extra);
    let e = match parse_program(&src) {
        Ok(_) => panic!("{extra:?} was accepted"),
        Err(e) => e,
    };
    assert_eq!(e.line, line, "{extra:?}: {e}");
    assert!(e.message.contains(needle), "{extra:?}: {e}");
    e
}

#[test]
fn no_address_space_cap_and_no_cpu_quota_by_default() {
    let d = JobLimits::default();
    assert_eq!(d.address_space_bytes, None);
    assert_eq!(d.cpu_millis, None);
    assert_eq!(d.memory_bytes, 2 << 30);
    let p = parse_program(FIXTURE).unwrap();
    let l = p.job.expect("job").limits;
    assert_eq!((l.address_space_bytes, l.cpu_millis), (None, None));
}

#[test]
fn address_space_takes_a_size() {
    assert_eq!(
        limits("address_space: 64GiB").address_space_bytes,
        Some(64 << 30)
    );
    assert_eq!(
        limits("address_space: 1.5TiB").address_space_bytes,
        Some(3 << 39)
    );
    assert_eq!(
        limits("address_space: 500MB").address_space_bytes,
        Some(500_000_000)
    );
}

#[test]
fn address_space_bad_values_are_refused() {
    refused("address_space: 64 GiB", "whitespace");
    refused("address_space: 64Gi", "unit");
    refused("address_space: 64gb", "unit");
    refused("address_space: 0", "greater than 0");
    refused("address_space: 0GiB", "greater than 0");
    refused("address_space: -1GiB", "address_space");
    refused("address_space: 1.5", "whole bytes");
    refused("address_space: true", "must be a size");
    refused("address_space: ~", "must be a size");
    refused("address_space: [1GiB]", "must be a size");
}

#[test]
fn cpus_takes_a_decimal_number_of_cpus() {
    assert_eq!(limits("cpus: 2").cpu_millis, Some(2000));
    assert_eq!(limits("cpus: 0.5").cpu_millis, Some(500));
    assert_eq!(limits("cpus: 1.25").cpu_millis, Some(1250));
    assert_eq!(limits("cpus: 0.01").cpu_millis, Some(10));
    assert_eq!(limits("cpus: 4096").cpu_millis, Some(4_096_000));
    assert_eq!(format_cpus(2000), "2");
    assert_eq!(format_cpus(500), "0.5");
    assert_eq!(format_cpus(1250), "1.25");
    assert_eq!(format_cpus(10), "0.01");
}

#[test]
fn cpus_bad_values_are_refused() {
    refused("cpus: 0", "greater than 0");
    refused("cpus: 0.0", "greater than 0");
    refused("cpus: -1", "greater than 0");
    refused("cpus: -0.5", "greater than 0");
    refused("cpus: 0.001", "at least 0.01");
    refused("cpus: 0.0005", "more than three decimals");
    refused("cpus: 4097", "at most 4096");
    refused("cpus: 2cores", "must be a number of CPUs");
    refused("cpus: 2 cpus", "must be a number of CPUs");
    refused("cpus: 1e3", "plain decimal");
    refused("cpus: .5", "cpus");
    refused("cpus: true", "must be a number of CPUs");
    let e = refused("cpus: \"2\"", "must be a number of CPUs");
    assert_eq!(
        e.help.as_deref(),
        Some("remove the quotes: a quoted number is a string")
    );
}

#[test]
fn unknown_limit_keys_are_refused_with_a_suggestion() {
    let e = refused("adress_space: 64GiB", "unknown key `adress_space`");
    assert_eq!(e.help.as_deref(), Some("did you mean `address_space`?"));
    let e = refused("cpu: 2", "unknown key `cpu`");
    assert!(
        e.help.as_deref().unwrap_or("").contains("`cpus`"),
        "{e} {:?}",
        e.help
    );
    let e = refused("gpus: 1", "unknown key `gpus`");
    assert!(e.help.is_some(), "{e}");
    refused("swap: 0", "unknown key `swap`");
}

#[test]
fn new_keys_change_the_approval_only_when_set() {
    let base = parse_program(FIXTURE).unwrap();
    let doc = approval_document(&base);
    assert!(!doc.contains("address_space"), "{doc}");
    assert!(!doc.contains("\"cpus\""), "{doc}");
    let (src, _) = with_limit("address_space: 64GiB");
    let with_as = approval_document(&parse_program(&src).unwrap());
    assert!(
        with_as.contains("\"address_space\": \"64GiB\""),
        "{with_as}"
    );
    let (src, _) = with_limit("cpus: 1.5");
    let with_cpus = approval_document(&parse_program(&src).unwrap());
    assert!(with_cpus.contains("\"cpus\": \"1.5\""), "{with_cpus}");
    let hashes = [&doc, &with_as, &with_cpus].map(|d| approval_hash(d));
    assert_ne!(hashes[0], hashes[1]);
    assert_ne!(hashes[0], hashes[2]);
    assert_ne!(hashes[1], hashes[2]);
}
