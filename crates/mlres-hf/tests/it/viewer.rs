//! The dataset viewer client against the fake's viewer routes (same port as the fake Hub).

use std::time::Duration;

use mlres_fakehf::viewer::{
    DPO_DATASET, FIRST_ROWS_CELL_CHARS, GATED_DATASET, NOT_READY_DATASET, SFT_DATASET,
    ViewerDataset, add_dataset,
};
use mlres_fakehf::{CANARY_TOKEN, FakeHf, Injection, LoggedRequest, TokenConfig, sha256_hex};
use mlres_hf::{
    DEFAULT_VIEWER_ENDPOINT, HfError, MAX_ROWS_PER_PAGE, RetryPolicy, SplitRef, Token,
    ViewerClient, type_name, viewer_endpoint,
};
use proptest::prelude::*;
use serde_json::json;

use crate::{fake, no_canary};

const RETRIES: u32 = 2;

fn viewer(f: &FakeHf, token: Option<&str>) -> ViewerClient {
    ViewerClient::new(
        viewer_endpoint(Some(&f.url())).unwrap(),
        token.and_then(Token::new),
    )
    .with_retry(RetryPolicy {
        max_retries: RETRIES,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(10),
    })
}

fn requests(f: &FakeHf) -> Vec<LoggedRequest> {
    f.state().lock().requests.clone()
}

fn requests_to(f: &FakeHf, path: &str) -> Vec<LoggedRequest> {
    requests(f)
        .into_iter()
        .filter(|r| r.path.split('?').next() == Some(path))
        .collect()
}

fn inject(f: &FakeHf, prefix: &str, status: u16, count: u32, location: Option<&str>) {
    f.state().inject(Injection {
        method: String::new(),
        path_prefix: prefix.into(),
        status,
        count,
        location: location.map(str::to_string),
        message: None,
    });
}

fn show(e: &HfError) -> String {
    let s = format!("{e} {e:?}");
    no_canary(&s);
    s
}

fn add_bob(f: &FakeHf) -> &'static str {
    let tok = "hf_bobTOKENnotgranted000000000000";
    f.state().add_token(TokenConfig {
        token: tok.into(),
        user: "bob".into(),
        orgs: vec![],
        role: "read".into(),
        fine_grained: None,
        display_name: "bob".into(),
    });
    tok
}

#[test]
fn base_url_defaults_to_the_public_viewer_and_is_validated() {
    assert_eq!(
        viewer_endpoint(None).unwrap().as_str(),
        DEFAULT_VIEWER_ENDPOINT
    );
    assert_eq!(
        viewer_endpoint(Some("")).unwrap().as_str(),
        DEFAULT_VIEWER_ENDPOINT
    );
    assert_eq!(
        viewer_endpoint(Some("http://127.0.0.1:9/"))
            .unwrap()
            .as_str(),
        "http://127.0.0.1:9"
    );
    for bad in ["ftp://x", "no-scheme", "http://u:p@host", "http://h/?q=1"] {
        let e = viewer_endpoint(Some(bad)).unwrap_err();
        assert!(matches!(e, HfError::BadEndpoint(_)), "{bad}: {e}");
    }
    let c = ViewerClient::from_url(None, None).unwrap();
    assert_eq!(c.base().as_str(), DEFAULT_VIEWER_ENDPOINT);
    assert!(!c.has_token());
}

#[test]
fn is_valid_splits_info_and_size_agree() {
    let f = fake();
    let c = viewer(&f, None);
    let v = c.is_valid(SFT_DATASET).unwrap();
    assert!(v.preview && v.viewer && v.search && v.filter && v.statistics);
    let nr = c.is_valid(NOT_READY_DATASET).unwrap();
    assert!(!nr.preview && !nr.viewer, "{nr:?}");

    let splits = c.splits(SFT_DATASET).unwrap();
    let names: Vec<(&str, &str)> = splits
        .iter()
        .map(|s| (s.config.as_str(), s.split.as_str()))
        .collect();
    assert_eq!(names, vec![("default", "train"), ("default", "test")]);

    let info = c.info(SFT_DATASET, "default").unwrap();
    assert_eq!(info.config_name.as_deref(), Some("default"));
    assert!(info.features.contains_key("messages"), "{info:?}");
    assert_eq!(
        info.splits.keys().collect::<Vec<_>>(),
        vec!["test", "train"]
    );

    let size = c.size(SFT_DATASET).unwrap();
    assert!(!size.partial);
    assert_eq!(size.splits.len(), splits.len());
    assert_eq!(
        size.num_rows,
        size.splits.iter().map(|s| s.num_rows).sum::<u64>()
    );
    for s in &size.splits {
        // Each split's row count matches /info and /rows.
        assert_eq!(
            info.splits[&s.split].num_examples,
            Some(s.num_rows),
            "{s:?}"
        );
        let page = c.rows(SFT_DATASET, &s.config, &s.split, 0, 1).unwrap();
        assert_eq!(page.num_rows_total, Some(s.num_rows));
        assert_eq!(s.num_columns, Some(1));
        assert!(s.num_bytes_memory.unwrap() > 0);
    }
    assert!(size.num_bytes_parquet_files.unwrap() > 0);
}

#[test]
fn first_rows_returns_at_most_100_rows_and_names_cut_cells() {
    let f = fake();
    let c = viewer(&f, None);
    let p = c.first_rows(SFT_DATASET, "default", "train").unwrap();
    assert_eq!(p.rows.len(), MAX_ROWS_PER_PAGE);
    assert_eq!(p.row_indices, (0..100).collect::<Vec<u64>>());
    assert_eq!(p.features.len(), 1);
    assert_eq!(p.features[0].name, "messages");
    assert_eq!(
        p.features[0].type_name(),
        "list<struct{role,content}>",
        "{:?}",
        p.features[0]
    );
    assert!(p.rows[0]["messages"].is_array());
    assert!(p.truncated_cells.is_empty());
    assert!(!p.truncated);

    let d = c.first_rows(DPO_DATASET, "default", "train").unwrap();
    let cols: Vec<&str> = d.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(cols, vec!["prompt", "chosen", "rejected"]);
    assert!(d.features.iter().all(|f| f.type_name() == "string"));
    assert_eq!(d.truncated_cells.iter().collect::<Vec<_>>(), vec!["chosen"]);
    // The cut cell is shorter than the full one /rows returns.
    let cut = d
        .rows
        .iter()
        .map(|r| r["chosen"].as_str().unwrap().len())
        .max();
    assert_eq!(cut, Some(FIRST_ROWS_CELL_CHARS));
    let full = c.rows(DPO_DATASET, "default", "train", 0, 30).unwrap();
    let longest = full
        .rows
        .iter()
        .map(|r| r["chosen"].as_str().unwrap().len())
        .max()
        .unwrap();
    assert!(longest > FIRST_ROWS_CELL_CHARS);
    assert!(full.truncated_cells.is_empty());
}

#[test]
fn rows_pages_by_offset_and_length() {
    let f = fake();
    let c = viewer(&f, None);
    let total = c.size(SFT_DATASET).unwrap().splits[0].num_rows;
    let first = c.rows(SFT_DATASET, "default", "train", 0, 10).unwrap();
    assert_eq!(first.rows.len(), 10);
    assert!(first.truncated, "more rows follow");
    let last = c
        .rows(SFT_DATASET, "default", "train", total - 7, 100)
        .unwrap();
    assert_eq!(last.rows.len(), 7);
    assert_eq!(last.row_indices, ((total - 7)..total).collect::<Vec<u64>>());
    assert!(!last.truncated, "the last page ends the split");
    let past = c
        .rows(SFT_DATASET, "default", "train", total + 5, 10)
        .unwrap();
    assert!(past.rows.is_empty());
    // Pages overlap consistently: row 5 of page 0 is row 0 of the page at offset 5.
    let shifted = c.rows(SFT_DATASET, "default", "train", 5, 3).unwrap();
    assert_eq!(shifted.rows[0], first.rows[5]);
    assert_eq!(shifted.row_indices, vec![5, 6, 7]);
}

#[test]
fn rows_length_outside_1_to_100_is_refused_before_any_request() {
    let f = fake();
    let c = viewer(&f, None);
    for len in [0, MAX_ROWS_PER_PAGE + 1, 10_000] {
        let e = c.rows(SFT_DATASET, "default", "train", 0, len).unwrap_err();
        assert!(
            matches!(e, HfError::BadRequest { .. }),
            "{len}: {}",
            show(&e)
        );
    }
    assert!(c.rows(SFT_DATASET, "default", "train", 0, 100).is_ok());
    assert_eq!(requests_to(&f, "/rows").len(), 1);
}

#[test]
fn sample_rows_pages_in_chunks_of_at_most_100() {
    let f = fake();
    let c = viewer(&f, None);
    let s = c.sample_rows(SFT_DATASET, "default", "train", 230).unwrap();
    assert_eq!(s.rows.len(), 230);
    assert_eq!(s.row_indices, (0..230).collect::<Vec<u64>>());
    assert!(s.truncated);
    assert_eq!(s.features[0].name, "messages");
    let pages = requests_to(&f, "/rows");
    assert_eq!(pages.len(), 3, "{pages:?}");
    let lengths: Vec<String> = pages
        .iter()
        .map(|r| {
            r.path
                .split(['?', '&'])
                .find_map(|kv| kv.strip_prefix("length="))
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(lengths, vec!["100", "100", "30"]);
    // Content equals single-row reads at the same indices.
    for i in [0u64, 99, 100, 229] {
        let one = c.rows(SFT_DATASET, "default", "train", i, 1).unwrap();
        assert_eq!(one.rows[0], s.rows[i as usize], "row {i}");
    }

    // Asking for more than the split holds stops at its end.
    let all = c.sample_rows(SFT_DATASET, "default", "test", 1000).unwrap();
    assert_eq!(Some(all.rows.len() as u64), all.num_rows_total);
    assert!(!all.truncated);
    let zero = c.sample_rows(SFT_DATASET, "default", "test", 0).unwrap();
    assert!(zero.rows.is_empty());
    assert!(
        zero.truncated,
        "a zero-row sample of a non-empty split is truncated"
    );
    assert_eq!(zero.num_rows_total, all.num_rows_total);
}

#[test]
fn gated_dataset_needs_a_granted_token() {
    let f = fake();
    let bob = add_bob(&f);

    let e = viewer(&f, None).splits(GATED_DATASET).unwrap_err();
    assert!(
        matches!(e, HfError::DatasetInaccessible { authenticated: false, ref dataset } if dataset == GATED_DATASET),
        "{}",
        show(&e)
    );
    let msg = e.to_string();
    assert!(
        msg.contains("HF_TOKEN") && msg.contains(GATED_DATASET),
        "{msg}"
    );

    let e = viewer(&f, Some(bob)).first_rows(GATED_DATASET, "default", "train");
    let e = e.unwrap_err();
    assert!(
        matches!(
            e,
            HfError::DatasetInaccessible {
                authenticated: true,
                ..
            }
        ),
        "{}",
        show(&e)
    );
    assert!(e.to_string().contains("request access"), "{e}");
    assert!(!format!("{e:?}").contains(bob));

    let alice = viewer(&f, Some(CANARY_TOKEN));
    let rows = alice.first_rows(GATED_DATASET, "default", "train").unwrap();
    assert_eq!(
        rows.rows.len() as u64,
        alice.size(GATED_DATASET).unwrap().num_rows
    );
    assert_eq!(
        rows.features
            .iter()
            .map(|f| (f.name.as_str(), f.type_name()))
            .collect::<Vec<_>>(),
        vec![
            ("text", "string".to_string()),
            ("label", "int64".to_string())
        ]
    );
}

#[test]
fn unknown_dataset_config_or_split_is_a_typed_error() {
    let f = fake();
    let anon = viewer(&f, None);
    let authed = viewer(&f, Some(CANARY_TOKEN));
    let e = anon.info("nobody/nothing", "default").unwrap_err();
    assert!(
        matches!(
            e,
            HfError::DatasetInaccessible {
                authenticated: false,
                ..
            }
        ),
        "{}",
        show(&e)
    );
    let e = authed.size("nobody/nothing").unwrap_err();
    assert!(
        matches!(
            e,
            HfError::DatasetInaccessible {
                authenticated: true,
                ..
            }
        ),
        "{}",
        show(&e)
    );
    let e = anon
        .first_rows(SFT_DATASET, "default", "validation")
        .unwrap_err();
    match &e {
        HfError::DatasetNotFound { dataset, what, .. } => {
            assert_eq!(dataset, SFT_DATASET);
            assert!(what.contains("validation"), "{what}");
        }
        other => panic!("{}", show(other)),
    }
    let e = anon.info(SFT_DATASET, "nope").unwrap_err();
    assert!(matches!(e, HfError::DatasetNotFound { .. }), "{}", show(&e));
    let e = anon.rows(SFT_DATASET, "nope", "train", 0, 5).unwrap_err();
    assert!(matches!(e, HfError::DatasetNotFound { .. }), "{}", show(&e));
}

#[test]
fn invalid_dataset_names_are_refused_before_any_request() {
    let f = fake();
    let c = viewer(&f, None);
    for bad in ["", "a/b/c", "../etc", "a b/c", "ns/na&me", "ns/", "/x"] {
        let e = c.splits(bad).unwrap_err();
        assert!(matches!(e, HfError::BadRequest { .. }), "{bad:?}: {e}");
    }
    assert!(requests(&f).is_empty(), "{:?}", requests(&f));
}

#[test]
fn not_ready_is_retried_then_reported() {
    let f = fake();
    let c = viewer(&f, None);
    let e = c
        .first_rows(NOT_READY_DATASET, "default", "train")
        .unwrap_err();
    match &e {
        HfError::ViewerNotReady { dataset, message } => {
            assert_eq!(dataset, NOT_READY_DATASET);
            assert!(message.contains("not ready"), "{message}");
        }
        other => panic!("{}", show(other)),
    }
    assert!(e.to_string().contains("retry"), "{e}");
    assert_eq!(
        requests_to(&f, "/first-rows").len() as u32,
        RETRIES + 1,
        "bounded retries"
    );
    for r in [
        c.splits(NOT_READY_DATASET).map(|_| ()),
        c.info(NOT_READY_DATASET, "default").map(|_| ()),
        c.size(NOT_READY_DATASET).map(|_| ()),
        c.sample_rows(NOT_READY_DATASET, "default", "train", 5)
            .map(|_| ()),
    ] {
        let e = r.unwrap_err();
        assert!(matches!(e, HfError::ViewerNotReady { .. }), "{}", show(&e));
    }
}

#[test]
fn splits_with_only_pending_configs_is_not_ready() {
    // A server answering 200 with no split yet but pending configs.
    let f = fake();
    add_dataset(
        f.state(),
        "acme/pending",
        &ViewerDataset {
            broken_body: Some(
                json!({"splits": [], "pending": [{"kind": "config-split-names", "dataset": "acme/pending", "config": "default", "split": null}], "failed": []})
                    .to_string(),
            ),
            ..ViewerDataset::default()
        },
    );
    let e = viewer(&f, None).splits("acme/pending").unwrap_err();
    assert!(matches!(e, HfError::ViewerNotReady { .. }), "{}", show(&e));
}

#[test]
fn server_errors_are_retried_and_typed() {
    let f = fake();
    let c = viewer(&f, None);
    // One 503 then success.
    inject(&f, "/splits", 503, 1, None);
    assert_eq!(c.splits(DPO_DATASET).unwrap().len(), 1);
    // Persistent 500.
    inject(&f, "/size", 500, RETRIES + 1, None);
    let e = c.size(DPO_DATASET).unwrap_err();
    assert!(
        matches!(e, HfError::Server { status: 500, .. }),
        "{}",
        show(&e)
    );
    // Persistent 429.
    inject(&f, "/info", 429, RETRIES + 1, None);
    let e = c.info(DPO_DATASET, "default").unwrap_err();
    assert!(matches!(e, HfError::RateLimited { .. }), "{}", show(&e));
    // 422 is not retried.
    let before = requests_to(&f, "/rows").len();
    inject(&f, "/rows", 422, 5, None);
    let e = c.rows(DPO_DATASET, "default", "train", 0, 5).unwrap_err();
    assert!(
        matches!(e, HfError::BadRequest { status: 422, .. }),
        "{}",
        show(&e)
    );
    assert_eq!(requests_to(&f, "/rows").len(), before + 1);
}

#[test]
fn bad_json_from_the_server_is_a_decode_error() {
    let f = fake();
    let c = viewer(&f, Some(CANARY_TOKEN));
    let bodies = [
        "{\"splits\": [",
        "<html>oops</html>",
        "{\"splits\": \"nope\", \"rows\": 7, \"size\": [], \"dataset_info\": 3, \"preview\": \"yes\"}",
        "null",
        "",
    ];
    for (i, body) in bodies.iter().enumerate() {
        let name = format!("acme/broken-{i}");
        add_dataset(
            f.state(),
            &name,
            &ViewerDataset {
                broken_body: Some((*body).into()),
                ..ViewerDataset::default()
            },
        );
        let results = [
            c.is_valid(&name).map(|_| ()),
            c.splits(&name).map(|_| ()),
            c.info(&name, "default").map(|_| ()),
            c.first_rows(&name, "default", "train").map(|_| ()),
            c.rows(&name, "default", "train", 0, 10).map(|_| ()),
            c.sample_rows(&name, "default", "train", 10).map(|_| ()),
            c.size(&name).map(|_| ()),
        ];
        for (j, r) in results.into_iter().enumerate() {
            match r {
                Err(HfError::Decode { what, .. }) => assert!(what.contains("viewer"), "{what}"),
                // `/is-valid` tolerates missing flags (all default to false) on an object.
                Ok(()) if j == 0 && body.starts_with('{') && body.ends_with('}') => {}
                other => panic!("body {body:?}, call {j}: {other:?}"),
            }
        }
    }
}

#[test]
fn token_goes_only_to_the_configured_host() {
    let f = fake();
    let other = fake();
    let c = viewer(&f, Some(CANARY_TOKEN));
    c.splits(SFT_DATASET).unwrap();
    let want = sha256_hex(format!("Bearer {CANARY_TOKEN}").as_bytes());
    let logged = requests_to(&f, "/splits");
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].auth_sha256.as_deref(), Some(want.as_str()));

    // Anonymous clients send no Authorization header at all.
    viewer(&f, None).splits(SFT_DATASET).unwrap();
    assert!(!requests_to(&f, "/splits")[1].auth);

    // A redirect to another host is refused; the other host sees nothing.
    let elsewhere = format!("{}/splits?dataset={SFT_DATASET}", other.url());
    inject(&f, "/splits", 302, 1, Some(&elsewhere));
    let e = c.splits(SFT_DATASET).unwrap_err();
    assert!(matches!(e, HfError::Redirect { .. }), "{}", show(&e));
    assert!(requests(&other).is_empty(), "{:?}", requests(&other));

    // A same-host redirect is followed without the token.
    let same = format!("/splits?dataset={DPO_DATASET}");
    inject(&f, "/splits", 302, 1, Some(&same));
    let got = c.splits(SFT_DATASET).unwrap();
    assert_eq!(
        got,
        vec![SplitRef {
            config: "default".into(),
            split: "train".into()
        }]
    );
    let last = requests_to(&f, "/splits").pop().unwrap();
    assert!(!last.auth, "{last:?}");
}

#[test]
fn rejected_token_is_unauthorized_without_the_token_in_the_error() {
    let f = fake();
    let bogus = "hf_mlresCANARYtoken0123456789abcdefXYZ_unknown";
    let e = viewer(&f, Some(bogus)).splits(SFT_DATASET).unwrap_err();
    assert!(matches!(e, HfError::Unauthorized { .. }), "{}", show(&e));
    assert!(!format!("{e} {e:?}").contains(bogus));
}

#[test]
fn datasets_added_by_a_test_are_served_with_inferred_features() {
    let f = fake();
    let rows = vec![
        json!({"prompt": "p0", "score": 0.5, "ok": true, "tags": ["a", "b"], "meta": null}),
        json!({"prompt": "p1", "score": 1.5, "ok": false, "tags": [], "meta": {"src": "x"}}),
    ];
    let mut ds = ViewerDataset::public(vec![("train", rows.clone()), ("eval", vec![])]);
    ds.configs.push(ds.configs[0].clone());
    ds.configs[1].name = "second".into();
    add_dataset(f.state(), "acme/custom", &ds);
    let c = viewer(&f, None);
    assert_eq!(c.splits("acme/custom").unwrap().len(), 4);
    let p = c.first_rows("acme/custom", "second", "train").unwrap();
    let types: Vec<(String, String)> = p
        .features
        .iter()
        .map(|f| (f.name.clone(), f.type_name()))
        .collect();
    assert_eq!(
        types,
        vec![
            ("prompt".into(), "string".into()),
            ("score".into(), "float64".into()),
            ("ok".into(), "bool".into()),
            ("tags".into(), "list<string>".into()),
            ("meta".into(), "struct{src}".into()),
        ]
    );
    assert_eq!(serde_json::Value::Object(p.rows[1].clone()), rows[1]);
    let empty = c.sample_rows("acme/custom", "default", "eval", 50).unwrap();
    assert!(empty.rows.is_empty() && !empty.truncated);
    assert_eq!(c.size("acme/custom").unwrap().num_rows, 4);
    // Adding a dataset under a built-in name overrides it.
    add_dataset(f.state(), SFT_DATASET, &ds);
    assert_eq!(c.splits(SFT_DATASET).unwrap().len(), 4);
}

#[test]
fn type_names_of_datasets_feature_types() {
    let cases = [
        (json!({"dtype": "string", "_type": "Value"}), "string"),
        (
            json!({"names": ["neg", "pos"], "_type": "ClassLabel"}),
            "class_label[neg,pos]",
        ),
        (
            json!({"feature": {"dtype": "int32", "_type": "Value"}, "_type": "Sequence"}),
            "list<int32>",
        ),
        (
            json!([{"role": {"dtype": "string", "_type": "Value"}}]),
            "list<struct{role}>",
        ),
        (json!({"_type": "Image"}), "image"),
        (json!(7), "?"),
    ];
    for (t, want) in cases {
        assert_eq!(type_name(&t), want, "{t}");
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-z_]{0,6}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn type_name_never_panics(t in arb_json()) {
        let _ = type_name(&t);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Whatever the split size and the cap, a sample is the first min(n, cap) rows in order.
    #[test]
    fn sample_rows_is_a_prefix_of_the_split(n in 0usize..260, cap in 0usize..320) {
        let f = fake();
        let rows = (0..n).map(|i| json!({"i": i})).collect();
        add_dataset(f.state(), "acme/p", &ViewerDataset::public(vec![("train", rows)]));
        let c = viewer(&f, None);
        let s = c.sample_rows("acme/p", "default", "train", cap).unwrap();
        let want = n.min(cap);
        prop_assert_eq!(s.rows.len(), want);
        for (k, r) in s.rows.iter().enumerate() {
            prop_assert_eq!(r["i"].as_u64(), Some(k as u64));
        }
        prop_assert_eq!(s.truncated, cap < n);
        for r in requests_to(&f, "/rows") {
            let len: usize = r.path.split(['?', '&'])
                .find_map(|kv| kv.strip_prefix("length=")).unwrap().parse().unwrap();
            prop_assert!((1..=MAX_ROWS_PER_PAGE).contains(&len));
        }
    }
}

#[test]
fn config_and_split_names_are_encoded_in_the_query() {
    let f = fake();
    let mut ds = ViewerDataset::public(vec![("train+1 &x=y", vec![json!({"t": "a"})])]);
    ds.configs[0].name = "en us/ä?#%".into();
    add_dataset(f.state(), "acme/odd.names_1-2", &ds);
    let c = viewer(&f, None);
    let splits = c.splits("acme/odd.names_1-2").unwrap();
    assert_eq!(splits.len(), 1);
    let s = &splits[0];
    assert_eq!(s.config, "en us/ä?#%");
    assert_eq!(s.split, "train+1 &x=y");
    let p = c
        .first_rows("acme/odd.names_1-2", &s.config, &s.split)
        .unwrap();
    assert_eq!(p.rows.len(), 1);
    let r = c
        .rows("acme/odd.names_1-2", &s.config, &s.split, 0, 1)
        .unwrap();
    assert_eq!(r.rows, p.rows);
    assert!(c.info("acme/odd.names_1-2", &s.config).is_ok());
}

#[test]
fn out_of_process_tests_can_add_datasets_through_the_seed_control() {
    let f = fake();
    let ds = ViewerDataset::public(vec![("train", vec![json!({"text": "hello"})])]);
    let body = json!({
        "type": "datasets", "repo": "acme/seeded",
        "path": mlres_fakehf::viewer::VIEWER_FILE,
        "content": serde_json::to_string(&ds).unwrap(),
    });
    let resp = ureq::post(format!("{}/_fake/seed", f.url()))
        .send(serde_json::to_vec(&body).unwrap())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let c = viewer(&f, None);
    let p = c.first_rows("acme/seeded", "default", "train").unwrap();
    assert_eq!(p.rows[0]["text"], "hello");
}
