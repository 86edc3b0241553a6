use std::ops::ControlFlow;

use mlres_hf::JobStage;
use mlres_hf::sse::{SseLine, parse_line};
use proptest::prelude::*;

use crate::errors::spec;
use crate::{client, fake};

#[test]
fn parser_cases() {
    assert_eq!(
        parse_line(r#"data: {"data":"hi","timestamp":"t"}"#),
        SseLine::Log {
            text: "hi".into(),
            timestamp: Some("t".into())
        }
    );
    assert_eq!(
        parse_line(r#"data: {"data":"===== Job started at x ====="}"#),
        SseLine::Banner
    );
    for ignored in [
        ": keep-alive",
        "",
        "data:",
        "data: ",
        "data: []",
        "event: metric",
        "data:{\"data\":\"x\"}",
        "data: {bad",
    ] {
        assert_eq!(parse_line(ignored), SseLine::Ignored, "{ignored:?}");
    }
    assert!(matches!(
        parse_line("data: {\"data\":\"x\"}\r"),
        SseLine::Log { .. }
    ));
}

proptest! {
    #[test]
    fn parser_never_panics(s in ".*") {
        let _ = parse_line(&s);
    }

    #[test]
    fn parser_roundtrips_any_text(text in "[^\n]*") {
        prop_assume!(!text.starts_with("===== Job started"));
        let line = format!("data: {}", serde_json::json!({"data": text, "timestamp": "t"}));
        prop_assert_eq!(parse_line(&line), SseLine::Log { text: text.clone(), timestamp: Some("t".into()) });
    }
}

fn run_with_drops(drops: &[usize], n: usize) {
    let f = fake();
    let c = client(&f);
    let mut s = spec();
    // Lines arrive over time (keep-alives in between), so drops hit a live stream.
    s.command = vec![
        "/bin/sh".into(),
        "-c".into(),
        format!(
            "i=0; while [ $i -lt {n} ]; do echo line$i; i=$((i+1)); if [ $((i % 7)) -eq 0 ]; then sleep 0.06; fi; done"
        ),
    ];
    let job = c.create_job("alice", &s).unwrap();
    f.state().drop_sse_after(drops);
    let mut got = Vec::new();
    let end = c
        .stream_logs("alice", &job.id, 0, &mut |l| {
            got.push((l.index, l.text));
            ControlFlow::Continue(())
        })
        .unwrap();
    let want: Vec<(usize, String)> = (0..n).map(|i| (i, format!("line{i}"))).collect();
    assert_eq!(got, want, "drops {drops:?}");
    assert_eq!(end.stage, Some(JobStage::Completed));
    assert!(end.reconnects as usize >= drops.len().min(1));
}

#[test]
fn dropped_once_mid_stream() {
    run_with_drops(&[5], 30);
}

#[test]
fn dropped_repeatedly() {
    run_with_drops(&[3, 3, 3, 8, 12, 1, 20], 30);
}

#[test]
fn resume_from_skip_lines() {
    let f = fake();
    let c = client(&f);
    let mut s = spec();
    s.command = vec![
        "/bin/sh".into(),
        "-c".into(),
        "for i in 0 1 2 3 4; do echo l$i; done".into(),
    ];
    let job = c.create_job("alice", &s).unwrap();
    let mut first = Vec::new();
    let end = c
        .stream_logs("alice", &job.id, 0, &mut |l| {
            first.push(l.text);
            if first.len() == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(end.stage, None);
    let mut rest = Vec::new();
    c.stream_logs("alice", &job.id, end.lines_seen, &mut |l| {
        rest.push(l.text);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(first, vec!["l0", "l1"]);
    assert_eq!(rest, vec!["l2", "l3", "l4"]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
    #[test]
    fn random_drop_points_lose_and_duplicate_nothing(drops in proptest::collection::vec(0usize..25, 0..5)) {
        run_with_drops(&drops, 24);
    }
}
