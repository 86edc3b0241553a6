//! Inspect: statistics computed correctly on generated data, fitness verdicts with reasons.

use mlres_data::inspect::{InspectOptions, InspectReport, inspect_path};
use serde_json::json;

use crate::read::tmp;

fn inspect(path: &std::path::Path) -> InspectReport {
    let mut calls = 0;
    let r = inspect_path(path, InspectOptions::default(), &mut |_| calls += 1).unwrap();
    assert!(calls >= 2, "progress is reported");
    r
}

fn write_jsonl(path: &std::path::Path, rows: &[serde_json::Value]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn stats_counts_nulls_lengths_ranges_distinct_and_balance() {
    let t = tmp();
    let p = t.path().join("train.jsonl");
    let mut rows = Vec::new();
    for i in 0..1000 {
        let mut r = json!({"text": "x".repeat(i % 10 + 1), "label": if i % 4 == 0 { "neg" } else { "pos" }, "score": i});
        if i % 100 == 0 {
            r["text"] = serde_json::Value::Null;
        }
        if i % 250 == 0 {
            r.as_object_mut().unwrap().remove("score");
        }
        rows.push(r);
    }
    write_jsonl(&p, &rows);
    let r = inspect(&p);
    assert_eq!(r.rows, 1000);
    assert_eq!(r.splits[0].name, "train");
    let col = |n: &str| r.columns.iter().find(|c| c.name == n).unwrap();
    let text = col("text");
    assert_eq!(text.nulls, 10);
    assert_eq!(text.min_len, Some(1));
    assert_eq!(text.max_len, Some(10));
    assert_eq!(text.distinct, 10);
    let label = col("label");
    assert_eq!(
        label.balance,
        vec![("pos".into(), 750), ("neg".into(), 250)]
    );
    let score = col("score");
    assert_eq!(score.nulls, 4, "absent counts as null");
    assert_eq!(score.min, Some(1.0));
    assert_eq!(score.max, Some(999.0));
    assert_eq!(score.distinct, 996);
    assert!(score.distinct_exact);
    assert!(
        score.balance.is_empty(),
        "high-cardinality columns have no balance"
    );
    assert_eq!(r.samples.len(), 3);
}

#[test]
fn distinct_counts_are_estimated_past_the_exact_cap() {
    let t = tmp();
    let p = t.path().join("d.jsonl");
    let rows: Vec<_> = (0..20_000)
        .map(|i| json!({"id": format!("row-{i}")}))
        .collect();
    write_jsonl(&p, &rows);
    let opts = InspectOptions {
        exact_distinct: 1000,
        ..InspectOptions::default()
    };
    let r = inspect_path(&p, opts, &mut |_| {}).unwrap();
    let c = &r.columns[0];
    assert!(!c.distinct_exact);
    let err = (c.distinct as f64 - 20_000.0).abs() / 20_000.0;
    assert!(err < 0.15, "estimate {} too far from 20000", c.distinct);
}

#[test]
fn fitness_names_the_task_layout_and_what_is_wrong() {
    let t = tmp();
    let sft = t.path().join("sft.jsonl");
    write_jsonl(
        &sft,
        &[
            json!({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}),
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            json!({"messages": [{"role": "bot", "content": "x"}]}),
            json!({"messages": "not a list"}),
        ],
    );
    let r = inspect(&sft);
    assert!(!r.fitness.sft.fits);
    assert_eq!(r.fitness.sft.layout.as_deref(), Some("messages"));
    let problems = r.fitness.sft.problems.join("\n");
    assert!(problems.contains("no assistant message"), "{problems}");
    assert!(problems.contains("role other than"), "{problems}");
    assert!(problems.contains("not a list"), "{problems}");
    assert!(!r.fitness.dpo.fits);
    assert!(r.fitness.dpo.problems[0].contains("missing prompt, chosen, rejected"));
    assert!(!r.fitness.grpo.fits);

    let dpo = t.path().join("dpo.jsonl");
    write_jsonl(
        &dpo,
        &[
            json!({"prompt": "p", "chosen": "a", "rejected": "b"}),
            json!({"prompt": "q", "chosen": "a", "rejected": "b"}),
        ],
    );
    let r = inspect(&dpo);
    assert!(r.fitness.dpo.fits, "{:?}", r.fitness.dpo);
    assert!(r.fitness.grpo.fits);
    assert!(!r.fitness.sft.fits, "prompt without completion is not SFT");

    write_jsonl(
        &dpo,
        &[
            json!({"prompt": "p", "chosen": "same", "rejected": "same"}),
            json!({"prompt": "", "chosen": "a", "rejected": "b"}),
        ],
    );
    let r = inspect(&dpo);
    assert!(!r.fitness.dpo.fits);
    let p = r.fitness.dpo.problems.join("\n");
    assert!(p.contains("identical `chosen` and `rejected`"), "{p}");
    assert!(p.contains("empty or missing `prompt`"), "{p}");
    assert!(!r.fitness.grpo.fits);

    let text = t.path().join("text.csv");
    std::fs::write(&text, "text\nhello\nworld\n").unwrap();
    let r = inspect(&text);
    assert!(r.fitness.sft.fits);
    assert_eq!(r.fitness.sft.layout.as_deref(), Some("text"));

    // A `text` that is a list or blank is named with its count and first row.
    let text = t.path().join("text.jsonl");
    write_jsonl(
        &text,
        &[
            json!({"text": "fine"}),
            json!({"text": ["a", "list"]}),
            json!({"text": "   "}),
            json!({"text": null}),
        ],
    );
    let r = inspect(&text);
    assert!(!r.fitness.sft.fits);
    assert_eq!(
        r.fitness.sft.problems,
        ["3 rows with an empty or non-string `text` (first: text.jsonl:2)"]
    );
    // Messages whose content is missing are named too.
    write_jsonl(
        &sft,
        &[json!({"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]})],
    );
    let r = inspect(&sft);
    let problems = r.fitness.sft.problems.join("\n");
    assert!(
        problems.contains("empty or missing `content`"),
        "{problems}"
    );
}

#[test]
fn long_strings_in_samples_are_cut() {
    let t = tmp();
    let p = t.path().join("s.jsonl");
    write_jsonl(&p, &[json!({"text": "z".repeat(5000)})]);
    let r = inspect(&p);
    let s = r.samples[0]["text"].as_str().unwrap();
    assert!(s.len() < 400, "{}", s.len());
    assert!(s.contains("5000 chars"));
}

#[test]
fn parquet_directories_are_inspected_across_row_groups_and_files() {
    let t = tmp();
    let d = t.path().join("data");
    std::fs::create_dir_all(&d).unwrap();
    crate::read::write_parquet(
        &d.join("train-00000-of-00002.parquet"),
        &["a", "b"],
        &[0, 1],
    );
    crate::read::write_parquet(&d.join("train-00001-of-00002.parquet"), &["c"], &[1]);
    crate::read::write_parquet(&d.join("test-00000-of-00001.parquet"), &["d"], &[0]);
    let r = inspect(t.path());
    assert_eq!(r.rows, 4);
    assert_eq!(r.splits.len(), 2);
    assert_eq!(r.splits[0].rows, 3);
    assert_eq!(r.splits[1].name, "test");
    let label = r.columns.iter().find(|c| c.name == "label").unwrap();
    assert_eq!(label.types.get("int"), Some(&4));
}

#[test]
fn samples_never_show_a_secret_in_full() {
    let t = tmp();
    let p = t.path().join("s.jsonl");
    let token = "hf_mlresCANARYtoken0123456789abcdefXYZ";
    write_jsonl(
        &p,
        &[
            json!({"text": format!("my key is {token} ok"), "messages": [{"role": "user", "content": token}]}),
        ],
    );
    let r = inspect(&p);
    let shown = serde_json::to_string(&r.samples).unwrap();
    assert!(!shown.contains("mlresCANARY"), "{shown}");
    assert!(shown.contains("my key is"), "{shown}");
}

#[test]
fn rows_with_arbitrary_keys_track_a_bounded_number_of_columns() {
    use mlres_data::inspect::MAX_COLUMNS;
    let t = tmp();
    let p = t.path().join("wide.jsonl");
    let extra = 250;
    let rows: Vec<serde_json::Value> = (0..MAX_COLUMNS + extra)
        .map(|i| json!({"text": format!("row {i}"), format!("k{i}"): i}))
        .collect();
    write_jsonl(&p, &rows);
    let r = inspect(&p);
    assert_eq!(r.rows, rows.len() as u64);
    assert_eq!(r.columns.len(), MAX_COLUMNS);
    // `text` plus MAX_COLUMNS - 1 of the keys are tracked; the rest are only counted.
    assert_eq!(r.untracked_columns, (extra + 1) as u64);
    let text = r.columns.iter().find(|c| c.name == "text").unwrap();
    assert_eq!(text.nulls, 0);
    assert_eq!(text.distinct, rows.len() as u64);
    assert!(text.distinct_exact);
    // A tracked key present in one row is null in all others.
    let k0 = r.columns.iter().find(|c| c.name == "k0").unwrap();
    assert_eq!(k0.nulls, rows.len() as u64 - 1);
}

#[test]
fn progress_advances_through_one_large_file_and_ends_at_its_size() {
    let t = tmp();
    let p = t.path().join("train.jsonl");
    let rows: Vec<serde_json::Value> = (0..35_000)
        .map(|i| json!({"text": format!("row number {i}")}))
        .collect();
    write_jsonl(&p, &rows);
    let size = std::fs::metadata(&p).unwrap().len();
    let mut seen = Vec::new();
    let r = inspect_path(&p, InspectOptions::default(), &mut |p| seen.push(p)).unwrap();
    assert_eq!(r.rows, 35_000);
    assert!(seen.iter().all(|p| p.total_bytes == size));
    assert!(
        seen.windows(2)
            .all(|w| w[0].bytes_done <= w[1].bytes_done && w[0].rows <= w[1].rows),
        "{seen:?}"
    );
    // Some report falls strictly inside the file, and the last one is at its end.
    assert!(
        seen.iter().any(|p| p.bytes_done > 0 && p.bytes_done < size),
        "{seen:?}"
    );
    let last = seen.last().unwrap();
    assert_eq!(
        (last.bytes_done, last.rows, last.files_done),
        (size, 35_000, 1)
    );
}

#[test]
fn fitness_counts_every_row_not_only_those_with_the_column() {
    let t = tmp();
    // One `text` row among 999 rows without it: SFT does not fit, and says how many rows do.
    let p = t.path().join("mixed.jsonl");
    let mut rows = vec![json!({"text": "a real sentence"})];
    rows.extend((0..999).map(|i| json!({"foo": i})));
    write_jsonl(&p, &rows);
    let r = inspect(&p);
    let v = &r.fitness.sft;
    assert!(!v.fits, "{v:?}");
    assert_eq!(v.layout.as_deref(), Some("text"));
    assert_eq!((v.rows, v.fitting_rows), (1000, 1));
    assert_eq!(
        v.problems,
        ["999 rows with no `text` (first: mixed.jsonl:2)"]
    );
    assert_eq!(r.fitness.grpo.fitting_rows, 0);

    // A directory of four files in different layouts: 25 of 30 rows lack `text`.
    let d = t.path().join("ds");
    std::fs::create_dir(&d).unwrap();
    let many = |n: usize, row: serde_json::Value| vec![row; n];
    write_jsonl(&d.join("a.jsonl"), &many(5, json!({"text": "some text"})));
    write_jsonl(&d.join("b.jsonl"), &many(10, json!({"foo": 1})));
    write_jsonl(&d.join("c.jsonl"), &many(10, json!({"bar": "x"})));
    write_jsonl(&d.join("d.jsonl"), &many(5, json!({"prompt": "p"})));
    let r = inspect(&d);
    let v = &r.fitness.sft;
    assert!(!v.fits);
    assert_eq!((v.rows, v.fitting_rows), (30, 5), "{v:?}");
    assert_eq!(v.problems, ["25 rows with no `text` (first: b.jsonl:1)"]);
    let g = &r.fitness.grpo;
    assert_eq!((g.fits, g.fitting_rows), (false, 5));
    assert!(g.problems[0].contains("25 rows with no `prompt` (first: a.jsonl:1)"));

    // When every row fits, the verdict says so.
    let ok = t.path().join("ok.jsonl");
    write_jsonl(&ok, &many(3, json!({"prompt": "p", "completion": "c"})));
    let v = inspect(&ok).fitness.sft;
    assert!(v.fits);
    assert_eq!(
        (v.layout.as_deref(), v.rows, v.fitting_rows),
        (Some("prompt+completion"), 3, 3)
    );
}

#[test]
fn a_text_label_file_is_a_classification_set() {
    let t = tmp();
    let p = t.path().join("sentiment.csv");
    std::fs::write(&p, "text,label\ngood film,pos\nbad film,neg\n,pos\n").unwrap();
    let r = inspect(&p);
    let c = &r.fitness.classification;
    assert_eq!(c.layout.as_deref(), Some("text+label"));
    assert!(!c.fits);
    assert_eq!((c.rows, c.fitting_rows), (3, 2));
    assert_eq!(
        c.problems,
        ["1 row with an empty or missing text (first: sentiment.csv:4)"]
    );
    let s = &r.fitness.sft;
    assert!(!s.fits, "{s:?}");
    assert!(
        s.problems
            .iter()
            .any(|p| p.contains("this is a classification set (text → label)")),
        "{s:?}"
    );
    // Without a label column it is plain text, and no classification set.
    let p = t.path().join("plain.csv");
    std::fs::write(&p, "text\nhello\n").unwrap();
    let r = inspect(&p);
    assert!(r.fitness.sft.fits);
    assert!(!r.fitness.classification.fits);
    assert_eq!(r.fitness.classification.layout, None);
}

#[test]
fn problems_name_the_file_line_even_past_blank_lines() {
    let t = tmp();
    let p = t.path().join("gaps.jsonl");
    std::fs::write(
        &p,
        "{\"text\": \"one\"}\n\n\n{\"text\": \"\"}\n{broken\n\n{\"text\": 3}\n",
    )
    .unwrap();
    let r = inspect(&p);
    assert_eq!(
        r.fitness.sft.problems,
        ["2 rows with an empty or non-string `text` (first: gaps.jsonl:4)"]
    );
    let e = &r.splits[0].errors[0];
    assert_eq!((e.file.as_str(), e.row), ("gaps.jsonl", 5));
}
