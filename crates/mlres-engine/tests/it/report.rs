//! Learning curves as the report and the dashboard read them from an attempt's captured logs.

use mlres_engine::report::{MAX_CURVE_POINTS, curves};

fn attempt(stdout: &str, stderr: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("stdout.log"), stdout).unwrap();
    std::fs::write(d.path().join("stderr.log"), stderr).unwrap();
    d
}

#[test]
fn a_lines_step_is_its_x_and_every_other_metric_a_curve() {
    let d = attempt(
        "step=10 loss=2.5 acc=0.1\nnoise\n{'loss': 2.0, 'step': 20}\r\nstep=30 loss=1.5\n",
        "",
    );
    let c = curves(d.path());
    assert_eq!(c["loss"], vec![[10.0, 2.5], [20.0, 2.0], [30.0, 1.5]]);
    assert_eq!(c["acc"], vec![[10.0, 0.1]]);
    assert!(!c.contains_key("step"), "step is the axis, not a curve");
}

#[test]
fn without_a_step_the_x_is_the_metric_lines_position_stderr_first() {
    // Transformers prints its dicts on stderr; a job's own lines on stdout come after.
    let d = attempt(
        "score=3\n",
        "{'eval_loss': 1.0}\nwarning\n{'eval_loss': 0.5}\n",
    );
    let c = curves(d.path());
    assert_eq!(c["eval_loss"], vec![[0.0, 1.0], [1.0, 0.5]]);
    assert_eq!(c["score"], vec![[2.0, 3.0]]);
}

#[test]
fn non_finite_values_are_left_out_and_a_missing_attempt_has_no_curves() {
    let d = attempt("step=1 loss=nan\nstep=2 loss=inf\nstep=3 loss=1\n", "");
    assert_eq!(curves(d.path())["loss"], vec![[3.0, 1.0]]);
    let gone = d.path().join("pruned");
    assert!(curves(&gone).is_empty());
}

#[test]
fn long_curves_are_thinned_evenly_keeping_both_ends() {
    let n = MAX_CURVE_POINTS * 3 + 7;
    let text: String = (1..=n).map(|s| format!("step={s} loss={s}\n")).collect();
    let d = attempt(&text, "");
    let pts = &curves(d.path())["loss"];
    assert_eq!(pts.len(), MAX_CURVE_POINTS);
    assert_eq!(pts[0], [1.0, 1.0]);
    assert_eq!(pts[MAX_CURVE_POINTS - 1], [n as f64, n as f64]);
    assert!(pts.windows(2).all(|w| w[0][0] < w[1][0]), "in step order");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Whatever a job writes, reading its curves never panics, every point is finite and no
    /// curve is longer than the cap.
    #[test]
    fn any_output_gives_finite_bounded_curves(
        out in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
        err in "(step=[0-9]{1,3} [a-z]{1,4}=-?[0-9.e+-]{1,8}( |\n|\r)){0,40}",
    ) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("stdout.log"), &out).unwrap();
        std::fs::write(d.path().join("stderr.log"), err.as_bytes()).unwrap();
        for pts in curves(d.path()).values() {
            proptest::prop_assert!(pts.len() <= MAX_CURVE_POINTS);
            proptest::prop_assert!(pts.iter().all(|[x, y]| x.is_finite() && y.is_finite()));
        }
    }
}
