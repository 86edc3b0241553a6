//! Arithmetic generator and JSONL loading.

use mlres_train::{
    DataSource, Example, JsonlErrorKind, TrainError, arithmetic_problems, load_dataset, load_jsonl,
    load_jsonl_dataset, render_messages,
};
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

#[test]
fn arithmetic_splits_are_disjoint_and_deterministic() {
    let (tr, ev) = arithmetic_problems(2, &['+', '-', '*'], 3000, 200, 42).unwrap();
    assert_eq!(tr.len(), 3000);
    assert_eq!(ev.len(), 200);
    let train: HashSet<_> = tr.iter().collect();
    assert_eq!(train.len(), 3000, "train problems are distinct");
    let eval: HashSet<_> = ev.iter().collect();
    assert_eq!(eval.len(), 200);
    assert!(ev.iter().all(|p| !train.contains(p)), "eval overlaps train");
    for p in tr.iter().chain(&ev) {
        assert!(p.a < 100 && p.b < 100);
    }
    let ops: HashSet<char> = tr.iter().map(|p| p.op).collect();
    assert_eq!(ops.len(), 3);
    // Same seed, same split; the eval split does not depend on train_size.
    let (tr2, ev2) = arithmetic_problems(2, &['+', '-', '*'], 3000, 200, 42).unwrap();
    assert_eq!((tr.clone(), ev.clone()), (tr2, ev2));
    let (_, ev3) = arithmetic_problems(2, &['+', '-', '*'], 500, 200, 42).unwrap();
    assert_eq!(ev, ev3);
    let (_, ev4) = arithmetic_problems(2, &['+', '-', '*'], 3000, 200, 43).unwrap();
    assert_ne!(ev, ev4);
}

#[test]
fn dense_split_uses_every_problem_once() {
    // 1-digit addition has exactly 100 problems: all of them, no duplicates, disjoint.
    let (tr, ev) = arithmetic_problems(1, &['+'], 90, 10, 7).unwrap();
    let all: HashSet<_> = tr.iter().chain(&ev).map(|p| (p.a, p.b)).collect();
    assert_eq!(all.len(), 100);
    assert!(arithmetic_problems(1, &['+'], 91, 10, 7).is_err());
}

#[test]
fn arithmetic_prompts_and_answers_are_exact() {
    let (tr, _) = arithmetic_problems(3, &['+', '-', '*'], 500, 10, 1).unwrap();
    for p in &tr {
        let want = match p.op {
            '+' => p.a as i64 + p.b as i64,
            '-' => p.a as i64 - p.b as i64,
            _ => p.a as i64 * p.b as i64,
        };
        assert_eq!(p.prompt(), format!("{}{}{}=", p.a, p.op, p.b));
        assert_eq!(p.answer().parse::<i64>().unwrap(), want);
    }
    let ds = load_dataset(&DataSource::Arithmetic {
        digits: 2,
        ops: vec!['+'],
        train_size: 10,
        eval_size: 5,
        data_seed: 3,
    })
    .unwrap();
    match &ds.eval[0] {
        Example::PromptCompletion { prompt, completion } => {
            let (a, b) = prompt.trim_end_matches('=').split_once('+').unwrap();
            let sum = a.parse::<u32>().unwrap() + b.parse::<u32>().unwrap();
            assert_eq!(completion, &sum.to_string());
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn bad_arithmetic_settings_are_rejected() {
    assert!(arithmetic_problems(0, &['+'], 10, 10, 1).is_err());
    assert!(arithmetic_problems(10, &['+'], 10, 10, 1).is_err());
    assert!(arithmetic_problems(2, &[], 10, 10, 1).is_err());
    assert!(arithmetic_problems(2, &['/'], 10, 10, 1).is_err());
    assert!(arithmetic_problems(2, &['+', '+'], 10, 10, 1).is_err());
    assert!(arithmetic_problems(2, &['+'], 0, 10, 1).is_err());
    assert!(arithmetic_problems(2, &['+'], 10, 0, 1).is_err());
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

#[test]
fn jsonl_formats_load() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "t.jsonl",
        br#"{"prompt": "2+2=", "completion": "4"}

{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
{"text": "just text"}
"#,
    );
    let ex = load_jsonl(&p).unwrap();
    assert_eq!(ex.len(), 3);
    assert_eq!(
        ex[0],
        Example::PromptCompletion {
            prompt: "2+2=".into(),
            completion: "4".into()
        }
    );
    let want_prompt = render_messages(&[
        ("system".into(), "be brief".into()),
        ("user".into(), "hi".into()),
    ]);
    assert!(want_prompt.contains("be brief") && want_prompt.ends_with("<|assistant|>\n"));
    assert_eq!(
        ex[1],
        Example::PromptCompletion {
            prompt: want_prompt,
            completion: "hello".into()
        }
    );
    assert_eq!(ex[2], Example::Text("just text".into()));
}

#[test]
fn jsonl_holdout_is_last_tenth_or_eval_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::new();
    for i in 0..20 {
        body.push_str(&format!(
            "{{\"prompt\": \"q{i}\", \"completion\": \"a{i}\"}}\n"
        ));
    }
    let p = write(dir.path(), "t.jsonl", body.as_bytes());
    let ds = load_jsonl_dataset(&p, None).unwrap();
    assert_eq!((ds.train.len(), ds.eval.len()), (18, 2));
    assert_eq!(
        ds.eval[1],
        Example::PromptCompletion {
            prompt: "q19".into(),
            completion: "a19".into()
        }
    );
    let e = write(dir.path(), "e.jsonl", b"{\"text\": \"x\"}\n");
    let ds = load_jsonl_dataset(&p, Some(&e)).unwrap();
    assert_eq!((ds.train.len(), ds.eval.len()), (20, 1));
    // A single example cannot be split.
    let one = write(dir.path(), "one.jsonl", b"{\"text\": \"x\"}\n");
    assert!(matches!(
        load_jsonl_dataset(&one, None),
        Err(TrainError::InvalidConfig(_))
    ));
}

fn line_error(body: &[u8]) -> (usize, JsonlErrorKind, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.jsonl", body);
    match load_jsonl(&p) {
        Err(e @ TrainError::Jsonl { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("bad.jsonl"), "message names the file: {msg}");
            let TrainError::Jsonl { line, kind, .. } = e else {
                unreachable!()
            };
            (line, kind, msg)
        }
        other => panic!("expected a JSONL error, got {other:?}"),
    }
}

#[test]
fn jsonl_errors_are_typed_with_line_numbers() {
    let good = b"{\"text\": \"ok\"}\n";
    let (line, kind, msg) = line_error(&[good.as_slice(), b"{\"prompt\": \"x\", \n"].concat());
    assert_eq!(line, 2);
    assert!(matches!(kind, JsonlErrorKind::InvalidJson(_)));
    assert!(msg.contains(":2:"), "{msg}");

    let (line, kind, _) = line_error(
        &[
            good.as_slice(),
            good.as_slice(),
            b"{\"prompt\": \"x\"}\n".as_slice(),
        ]
        .concat(),
    );
    assert_eq!(line, 3);
    assert_eq!(kind, JsonlErrorKind::MissingField("completion".into()));

    let (line, kind, _) = line_error(
        &[
            b"{\"prompt\": \"a\", \"completion\": \"b\"}\n".as_slice(),
            b"\xff\xfe{}\n",
        ]
        .concat(),
    );
    assert_eq!(line, 2);
    assert_eq!(kind, JsonlErrorKind::NotUtf8 { byte_offset: 0 });

    let (line, kind, _) = line_error(b"{\"foo\": 1}\n");
    assert_eq!(line, 1);
    assert!(matches!(kind, JsonlErrorKind::MissingField(_)));

    let (_, kind, _) = line_error(b"{\"text\": 5}\n");
    assert!(matches!(kind, JsonlErrorKind::WrongType { .. }));

    let (_, kind, _) = line_error(b"[1, 2]\n");
    assert_eq!(kind, JsonlErrorKind::NotAnObject);

    let (_, kind, _) = line_error(b"{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}\n");
    assert_eq!(kind, JsonlErrorKind::BadRole("robot".into()));

    let (_, kind, _) = line_error(b"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n");
    assert_eq!(kind, JsonlErrorKind::NoFinalAssistant);

    let (_, kind, _) = line_error(b"{\"messages\": [{\"role\": \"user\"}]}\n");
    assert!(matches!(kind, JsonlErrorKind::MissingField(f) if f.contains("content")));
}

#[test]
fn empty_or_missing_jsonl_file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "empty.jsonl", b"");
    assert!(matches!(
        load_jsonl(&p),
        Err(TrainError::EmptyDataset { .. })
    ));
    let p = write(dir.path(), "blank.jsonl", b"\n  \n");
    assert!(matches!(
        load_jsonl(&p),
        Err(TrainError::EmptyDataset { .. })
    ));
    assert!(matches!(
        load_jsonl(&dir.path().join("nope.jsonl")),
        Err(TrainError::Io { .. })
    ));
}

#[test]
fn encoding_truncates_and_masks_prompt() {
    let e = Example::PromptCompletion {
        prompt: "ab".into(),
        completion: "cd".into(),
    };
    let s = e.encode(32);
    assert_eq!(
        s.tokens,
        vec![256, b'a' as u32, b'b' as u32, b'c' as u32, b'd' as u32, 257]
    );
    assert_eq!(s.loss_start, 3);
    assert_eq!(s.n_targets(), 3); // c, d, EOS
    let t = e.encode(3);
    assert_eq!(t.tokens.len(), 4);
    assert_eq!(t.n_targets(), 1);
    let txt = Example::Text("xy".into()).encode(32);
    assert_eq!(txt.loss_start, 1);
    assert_eq!(txt.n_targets(), 3);
}
