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

/// Walks a PNG's chunks, checking each CRC; returns (type, data) pairs.
fn chunks(png: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let mut out = Vec::new();
    let mut i = 8;
    while i < png.len() {
        let n = u32::from_be_bytes(png[i..i + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = png[i + 4..i + 8].try_into().unwrap();
        let crc = u32::from_be_bytes(png[i + 8 + n..i + 12 + n].try_into().unwrap());
        assert_eq!(mlres_engine::png::crc32(&png[i + 4..i + 8 + n]), crc);
        out.push((kind, png[i + 8..i + 8 + n].to_vec()));
        i += 12 + n;
    }
    out
}

#[test]
fn the_summary_chart_is_a_valid_two_bit_palette_png() {
    use mlres_engine::png::{Canvas, LINE};
    // The CRC is the standard one (PNG's IEND chunk CRC is a well-known constant).
    assert_eq!(mlres_engine::png::crc32(b"IEND"), 0xAE42_6082);
    let mut c = Canvas::new(5, 2);
    c.set(0, 0, LINE);
    c.set(4, 1, 2);
    let png = c.encode();
    let ch = chunks(&png);
    let kinds: Vec<&[u8]> = ch.iter().map(|(k, _)| &k[..]).collect();
    assert_eq!(kinds, [&b"IHDR"[..], b"PLTE", b"IDAT", b"IEND"]);
    assert_eq!(ch[0].1, [0, 0, 0, 5, 0, 0, 0, 2, 2, 3, 0, 0, 0]);
    // One stored deflate block holding the filtered scanlines, then the Adler-32.
    let z = &ch[2].1;
    assert_eq!(&z[..2], [0x78, 0x01]);
    assert_eq!(z[2], 1, "final stored block");
    let len = u16::from_le_bytes([z[3], z[4]]) as usize;
    assert_eq!(u16::from_le_bytes([z[5], z[6]]), !(len as u16));
    let raw = &z[7..7 + len];
    // Row 0: filter 0, pixels 3,0,0,0 | 0 (padded); row 1: 0,0,0,0 | 2.
    assert_eq!(raw, [0, 0b1100_0000, 0, 0, 0, 0b1000_0000]);
    assert_eq!(z.len(), 7 + len + 4);
    assert!(
        mlres_engine::png::best_so_far_chart(&[(1, 0.5)]).is_none(),
        "one point: no chart"
    );
    let chart = mlres_engine::png::best_so_far_chart(&[(1, 0.5), (2, 0.7), (5, 0.9)]).unwrap();
    assert!(chart.len() < 32 * 1024, "{} bytes", chart.len());
    chunks(&chart);
}
