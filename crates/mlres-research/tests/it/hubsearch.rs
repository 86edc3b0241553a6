//! Hub models/datasets search against the fake: the Hub's own filters, the local ones
//! (downloads, parameters), datasets' descriptions as untrusted text, typed errors, and the
//! optional token.

use mlres_research::hubsearch::{self, HubKind, HubQuery, HubSort};
use mlres_research::{Cache, Fetcher, ResearchError, Secrets};

use crate::code_support::*;

fn ids(r: &hubsearch::HubSearch) -> Vec<&str> {
    r.items.iter().map(|i| i.id.as_str()).collect()
}

#[test]
fn models_by_task_and_license_sorted_by_downloads() {
    let fake = fake();
    let f = anonymous(&fake);
    let r = hubsearch::search(
        &f,
        &HubQuery {
            task: Some("text-generation".into()),
            license: Some("apache-2.0".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        ids(&r),
        [
            "Qwen/Qwen2.5-0.5B-Instruct",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "trl-lib/Qwen2-0.5B-DPO-lora"
        ]
    );
    let q = &r.items[0];
    assert_eq!(q.license.as_deref(), Some("apache-2.0"));
    assert_eq!(q.task.as_deref(), Some("text-generation"));
    assert_eq!(q.library.as_deref(), Some("transformers"));
    assert_eq!(q.url, "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct");
    assert!(!r.authenticated);
    assert!(
        r.request.contains("filter=license%3Aapache-2.0"),
        "{}",
        r.request
    );
    assert!(
        r.request.contains("sort=downloads&direction=-1"),
        "{}",
        r.request
    );
    let l = log(&fake);
    assert!(l.iter().all(|x| !x.auth));
    // Library, author, sort by likes, limit.
    let r = hubsearch::search(
        &f,
        &HubQuery {
            library: Some("transformers".into()),
            sort: HubSort::Likes,
            limit: 2,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        ids(&r),
        ["openai-community/gpt2", "meta-llama/Llama-3.2-1B"]
    );
    assert_eq!(r.items[1].gated.as_deref(), Some("manual"));
    let r = hubsearch::search(
        &f,
        &HubQuery {
            author: Some("Qwen".into()),
            search: Some("instruct".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(ids(&r), ["Qwen/Qwen2.5-0.5B-Instruct"]);
}

#[test]
fn local_filters_downloads_and_parameters() {
    let fake = fake();
    let f = anonymous(&fake);
    let r = hubsearch::search(
        &f,
        &HubQuery {
            task: Some("text-generation".into()),
            min_downloads: Some(1_000_000),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        ids(&r),
        [
            "openai-community/gpt2",
            "Qwen/Qwen2.5-0.5B-Instruct",
            "meta-llama/Llama-3.2-1B"
        ]
    );
    assert_eq!(r.filtered_out, 2);
    // Parameters come from `expand=safetensors`; a model without them is left out.
    let r = hubsearch::search(
        &f,
        &HubQuery {
            task: Some("text-generation".into()),
            max_params: Some(200_000_000),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        ids(&r),
        [
            "openai-community/gpt2",
            "HuggingFaceTB/SmolLM2-135M-Instruct"
        ]
    );
    assert_eq!(r.items[1].params, Some(134_515_008));
    assert!(r.request.contains("expand=safetensors"));
    assert_eq!(
        r.items[0].license.as_deref(),
        Some("mit"),
        "cardData expanded"
    );
}

#[test]
fn datasets_by_task_and_size_with_untrusted_descriptions() {
    let fake = fake();
    let f = anonymous(&fake);
    let r = hubsearch::search(
        &f,
        &HubQuery {
            kind: HubKind::Dataset,
            task: Some("text-generation".into()),
            size_category: Some("10K<n<100K".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        ids(&r),
        ["trl-lib/ultrafeedback_binarized", "trl-lib/Capybara"]
    );
    let d = &r.items[0];
    assert_eq!(
        d.url,
        "https://huggingface.co/datasets/trl-lib/ultrafeedback_binarized"
    );
    assert_eq!(d.size_category.as_deref(), Some("10K<n<100K"));
    assert_eq!(d.task.as_deref(), Some("text-generation"));
    assert!(d.description.as_ref().unwrap().text.contains("DPO"));
    assert!(
        r.request
            .contains("filter=task_categories%3Atext-generation")
    );
    // A description with an injection string is flagged.
    let r = hubsearch::search(
        &f,
        &HubQuery {
            kind: HubKind::Dataset,
            search: Some("tldr".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        !r.items[0]
            .description
            .as_ref()
            .unwrap()
            .injections
            .is_empty()
    );
}

#[test]
fn errors_are_typed_and_the_token_is_optional() {
    let fake = fake();
    // A token the Hub does not know: 401, typed.
    let f = with_tokens(&fake, None);
    let e = hubsearch::search(&f, &HubQuery::default()).unwrap_err();
    assert!(
        matches!(e, ResearchError::Api { status: 401, ref message, .. } if message.contains("Invalid credentials")),
        "{e}"
    );
    // A known token works and is sent (to this host only).
    let ok = Fetcher::with_pacing(
        endpoints(&fake),
        Secrets {
            hf_token: Some(mlres_fakehf::CANARY_TOKEN.into()),
            ..Secrets::default()
        },
        None,
        quick(),
    );
    let r = hubsearch::search(&ok, &HubQuery::default()).unwrap();
    assert!(r.authenticated && r.items.len() == 6);
    assert!(
        log(&fake).last().unwrap().auth_sha256.as_deref()
            == Some(bearer_sha(mlres_fakehf::CANARY_TOKEN).as_str())
    );
    // Arguments that are not tags are refused before any request.
    let a = anonymous(&fake);
    let n = log(&fake).len();
    for q in [
        HubQuery {
            task: Some("text generation&x=1".into()),
            ..Default::default()
        },
        HubQuery {
            size_category: Some("1K<n<10K".into()),
            ..Default::default()
        },
    ] {
        assert!(matches!(
            hubsearch::search(&a, &q),
            Err(ResearchError::Usage(_))
        ));
    }
    assert_eq!(log(&fake).len(), n);
    // A Hub error body (injected 500, no retries): typed with the Hub's message.
    fake.state().inject(mlres_fakehf::Injection {
        method: "GET".into(),
        path_prefix: "/api/datasets".into(),
        status: 503,
        count: 1,
        location: None,
        message: Some("Service temporarily unavailable".into()),
    });
    let e = hubsearch::search(
        &a,
        &HubQuery {
            kind: HubKind::Dataset,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(e, ResearchError::Api { status: 503, ref message, .. } if message.contains("temporarily")),
        "{e}"
    );
}

#[test]
fn the_cache_answers_a_hub_search_offline() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let f = Fetcher::with_pacing(
        endpoints(&fake),
        Secrets::default(),
        Some(Cache::new(dir.path())),
        quick(),
    );
    let q = HubQuery {
        kind: HubKind::Dataset,
        license: Some("mit".into()),
        ..Default::default()
    };
    let live = hubsearch::search(&f, &q).unwrap();
    let endpoints = endpoints(&fake);
    drop(fake);
    let off =
        Fetcher::new(endpoints, Secrets::default(), Some(Cache::new(dir.path()))).offline(true);
    let cached = hubsearch::search(&off, &q).unwrap();
    assert_eq!(cached.items, live.items);
    assert!(cached.cache_age.is_some() && live.cache_age.is_none());
}
