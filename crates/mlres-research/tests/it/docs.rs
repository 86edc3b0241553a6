//! HF docs against the fake: the sidebar's pages, the local BM25 search (also offline from
//! the cache), single pages (the injected page comes back wrapped, flagged and redacted),
//! and the OpenAPI finder's curl examples.

use mlres_fakehf::research_code::{DOC_SECRET_SHAPED, INJECTED_DOC_PAGE};
use mlres_research::fetch::host_of;
use mlres_research::untrusted::{BEGIN, END};
use mlres_research::{Cache, Fetcher, ResearchError, docs};
use proptest::prelude::*;

use crate::code_support::*;

#[test]
fn explore_lists_the_sidebar_and_searches_the_pages() {
    let fake = fake();
    let f = with_tokens(&fake, None);
    let all = docs::explore(&f, "trl", None, 5).unwrap();
    assert_eq!(all.sites, ["trl"]);
    let urls: Vec<&str> = all.pages.iter().map(|p| p.url.as_str()).collect();
    for slug in [
        "index",
        "sft_trainer",
        "dpo_trainer",
        "grpo_trainer",
        INJECTED_DOC_PAGE,
    ] {
        let u = format!("{}/docs/trl/{slug}", fake.url());
        assert!(urls.contains(&u.as_str()), "{u} not in {urls:?}");
    }
    assert!(
        !urls.iter().any(|u| u.contains("github.com")),
        "off-host links dropped"
    );
    assert!(
        all.hits.is_empty() && all.pages_searched == 0,
        "no query: no page fetched"
    );
    let sft = all
        .pages
        .iter()
        .find(|p| p.url.ends_with("/sft_trainer"))
        .unwrap();
    assert_eq!(sft.title, "SFT Trainer");
    // /docs/trl redirected (same host: the token stays) to /docs/trl/index.
    let l = log(&fake);
    let first: Vec<_> = l
        .iter()
        .filter(|r| r.path.starts_with("/docs/trl"))
        .take(2)
        .collect();
    assert_eq!(first[0].status, 302);
    assert_eq!(first[1].path, "/docs/trl/index");
    assert_eq!(
        first[1].auth_sha256.as_deref(),
        Some(bearer_sha(HF_CANARY).as_str())
    );
    // With a query: every page's markdown, ranked.
    let r = docs::explore(&f, "trl", Some("DPO beta KL penalty"), 3).unwrap();
    assert_eq!(r.pages_searched, all.pages.len());
    assert!(r.hits[0].url.ends_with("/dpo_trainer"), "{r:#?}");
    assert!(
        r.hits[0].snippet.text.contains("beta"),
        "{:?}",
        r.hits[0].snippet
    );
    assert!(r.hits.len() <= 3);
    let md: Vec<_> = log(&fake)
        .into_iter()
        .filter(|r| r.path.ends_with(".md"))
        .collect();
    assert_eq!(md.len(), all.pages.len());
    assert!(
        md.iter()
            .all(|r| r.accept.as_deref() == Some("text/markdown"))
    );
    // Nested page paths work too.
    let t = docs::explore(
        &f,
        "transformers",
        Some("TrainingArguments learning rate"),
        1,
    )
    .unwrap();
    assert!(
        t.hits[0]
            .url
            .ends_with("/docs/transformers/main_classes/trainer"),
        "{t:#?}"
    );
}

#[test]
fn composite_libraries_expand_and_skip_missing_sites() {
    let fake = fake();
    let f = anonymous(&fake);
    let r = docs::explore(&f, "optimum", None, 5).unwrap();
    assert_eq!(r.sites.len(), 6);
    assert_eq!(
        r.pages.len(),
        2,
        "optimum and optimum-neuron exist in the fake: {r:#?}"
    );
    assert_eq!(r.pages_failed.len(), 4);
    // Validation and errors.
    assert!(matches!(
        docs::explore(&f, "gradio", None, 5),
        Err(ResearchError::Usage(_))
    ));
    assert!(matches!(
        docs::explore(&f, "nonsense-lib", None, 5),
        Err(ResearchError::Usage(_))
    ));
    let e = docs::explore(&f, "diffusers", None, 5).unwrap_err();
    assert!(matches!(e, ResearchError::NotFound(_)), "{e}");
}

#[test]
fn a_page_that_fails_is_listed_and_the_rest_are_searched() {
    let fake = fake();
    let f = anonymous(&fake);
    fake.state().inject(mlres_fakehf::Injection {
        method: "GET".into(),
        path_prefix: "/docs/trl/grpo_trainer.md".into(),
        status: 500,
        count: 1,
        location: None,
        message: None,
    });
    let r = docs::explore(&f, "trl", Some("GRPO reward functions"), 3).unwrap();
    assert_eq!(r.pages_failed.len(), 1, "{r:#?}");
    assert!(r.pages_failed[0].ends_with("/docs/trl/grpo_trainer.md"));
    assert_eq!(r.pages_searched, r.pages.len() - 1);
    assert!(!r.hits.iter().any(|h| h.url.ends_with("/grpo_trainer")));
    // A sidebar that fails is the error of a single library.
    fake.state().inject(mlres_fakehf::Injection {
        method: "GET".into(),
        path_prefix: "/docs/peft".into(),
        status: 503,
        count: 1,
        location: None,
        message: None,
    });
    let e = docs::explore(&f, "peft", None, 3).unwrap_err();
    assert!(matches!(e, ResearchError::Api { status: 503, .. }), "{e}");
}

#[test]
fn the_injected_page_comes_back_wrapped_flagged_and_redacted() {
    let fake = fake();
    let f = with_tokens(&fake, None);
    let p = docs::fetch_page(&f, &format!("trl/{INJECTED_DOC_PAGE}")).unwrap();
    assert!(p.url.ends_with("/docs/trl/community_tutorials.md"));
    assert!(!p.content.injections.is_empty(), "{:?}", p.content);
    assert!(
        !p.content.text.contains(DOC_SECRET_SHAPED),
        "{}",
        p.content.text
    );
    assert!(p.content.redacted >= 1);
    let shown = p.content.render();
    assert!(shown.starts_with("warning:"), "{shown}");
    assert!(shown.contains(BEGIN) && shown.trim_end().ends_with(END));
    // Found by a search, the snippet is flagged the same way.
    let r = docs::explore(&f, "trl", Some("community tutorials token"), 1).unwrap();
    assert!(r.hits[0].url.ends_with(INJECTED_DOC_PAGE));
    assert!(!r.hits[0].snippet.text.contains(DOC_SECRET_SHAPED));
}

#[test]
fn fetch_page_accepts_the_usual_forms_and_refuses_other_hosts() {
    let fake = fake();
    let f = anonymous(&fake);
    for form in [
        "trl/sft_trainer".to_string(),
        "/docs/trl/sft_trainer".to_string(),
        "https://huggingface.co/docs/trl/sft_trainer".to_string(),
        "https://huggingface.co/docs/trl/sft_trainer.md#packing".to_string(),
        format!("{}/docs/trl/sft_trainer", fake.url()),
    ] {
        let p = docs::fetch_page(&f, &form).unwrap();
        assert_eq!(
            p.url,
            format!("{}/docs/trl/sft_trainer.md", fake.url()),
            "{form}"
        );
        assert!(p.content.text.contains("## Packing"));
    }
    for bad in [
        "https://evil.example/docs/trl/x",
        "/models/x",
        "trl/../../api/whoami-v2",
        "",
    ] {
        assert!(
            matches!(docs::fetch_page(&f, bad), Err(ResearchError::Usage(_))),
            "{bad}"
        );
    }
    let e = docs::fetch_page(&f, "trl/no_such_page").unwrap_err();
    assert!(matches!(e, ResearchError::NotFound(_)), "{e}");
}

#[test]
fn the_cache_answers_a_docs_search_offline_with_its_age() {
    let fake = fake();
    let swept = mlres_testkit::SweptDir::new_in(env!("CARGO_TARGET_TMPDIR"));
    let cache = || Some(Cache::new(swept.path().join("cache")));
    let f = with_tokens(&fake, cache());
    let live = docs::explore(&f, "trl", Some("grpo reward functions"), 2).unwrap();
    assert_eq!(live.cache_age, None);
    let api = docs::find_api(&f, "list datasets", None, 2).unwrap();
    let endpoints = endpoints(&fake);
    drop(fake);
    let off = Fetcher::new(endpoints, canaries(), cache()).offline(true);
    let cached = docs::explore(&off, "trl", Some("grpo reward functions"), 2).unwrap();
    assert_eq!(cached.hits, live.hits);
    assert!(cached.cache_age.is_some());
    // Another query over the same pages is answered offline too (the search is local).
    let other = docs::explore(&off, "trl", Some("dpo beta"), 1).unwrap();
    assert!(other.hits[0].url.ends_with("/dpo_trainer"));
    assert_eq!(
        docs::find_api(&off, "list datasets", None, 2)
            .unwrap()
            .endpoints,
        api.endpoints
    );
    let e = docs::fetch_page(&off, "peft/index").unwrap_err();
    assert!(matches!(e, ResearchError::Offline { .. }), "{e}");
    swept.record("live", serde_json::to_string(&live).unwrap().as_bytes());
}

#[test]
fn find_api_matches_endpoints_and_shows_curl_with_the_token_name_only() {
    let fake = fake();
    let f = with_tokens(&fake, None);
    let r = docs::find_api(&f, "list models", None, 3).unwrap();
    let top = &r.endpoints[0];
    assert_eq!(
        (top.method.as_str(), top.path.as_str()),
        ("GET", "/api/models")
    );
    assert_eq!(
        top.curl.as_deref(),
        Some(
            "curl -X GET 'https://huggingface.co/api/models' -H 'Authorization: Bearer $HF_TOKEN'"
        )
    );
    assert!(top.parameters.iter().any(|p| p == "search (query)"));
    assert_eq!(r.server, "https://huggingface.co");
    assert!(r.total_endpoints >= 9);
    let jobs = docs::find_api(&f, "create job", Some("jobs"), 5).unwrap();
    assert!(jobs.endpoints.iter().all(|e| e.tags == ["jobs"]));
    let create = jobs
        .endpoints
        .iter()
        .find(|e| e.method == "POST" && e.path == "/api/jobs/{namespace}")
        .unwrap();
    assert!(
        create
            .curl
            .as_deref()
            .unwrap()
            .ends_with("-H 'Content-Type: application/json' -d '{}'")
    );
    assert!(
        create
            .parameters
            .contains(&"namespace (path, required)".to_string())
    );
    // A path that would break out of the quotes gets no curl line.
    let bait = docs::find_api(&f, "space info", Some("spaces"), 5).unwrap();
    assert_eq!(bait.endpoints.len(), 1);
    assert_eq!(bait.endpoints[0].curl, None);
    // The spec is fetched without the token.
    let spec: Vec<_> = log(&fake)
        .into_iter()
        .filter(|r| r.path == "/.well-known/openapi.json")
        .collect();
    assert!(!spec.is_empty() && spec.iter().all(|r| !r.auth));
    let all = serde_json::to_string(&r).unwrap();
    assert!(!all.contains(HF_CANARY));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn sidebar_extraction_never_panics(html in ".{0,600}", url in ".{0,40}") {
        let _ = docs::extract_sidebar(&html, &url);
        for l in docs::extract_sidebar(&html, "https://huggingface.co/docs/trl/index") {
            prop_assert_eq!(host_of(&l.url), Some("huggingface.co".to_string()));
        }
    }

    #[test]
    fn sidebar_extraction_never_panics_on_tag_soup(
        parts in prop::collection::vec(prop::sample::select(vec![
            "<nav", "<nav class=\"flex-auto\">", "</nav>", "<a href=\"/docs/x\">", "<a href='y'", "</a>",
            "<a", ">", "\"", "'", "&amp;", "<a href=\"https://evil.example/x\">", "<a href=\"//evil.example/y\">",
            "<a href=\"HTTPS://HuggingFace.co/docs/z\">", "<a href=\"https://u@huggingface.co/docs/w\">", "&#x1F600;", "&#99999999;", "é", "\u{202E}", " ", "href=", "class=flex-auto",
        ]), 0..60)
    ) {
        let html: String = parts.concat();
        for l in docs::extract_sidebar(&html, "https://huggingface.co/docs/trl/index") {
            prop_assert_eq!(host_of(&l.url), Some("huggingface.co".to_string()));
        }
    }

    #[test]
    fn sidebar_extraction_finds_generated_links(
        slugs in prop::collection::btree_set("[a-z][a-z_]{0,12}", 1..8),
        extra_class in "[a-z -]{0,20}",
    ) {
        let mut html = format!("<html><nav class=\"top\"><a href=\"/nope\">x</a></nav><nav class=\"{extra_class} flex-auto lg:block\"><ul>");
        for s in &slugs {
            html.push_str(&format!("<li><a class=\"x\" href=\"/docs/lib/{s}\">{s}</a></li>"));
        }
        html.push_str("</ul></nav></html>");
        let links = docs::extract_sidebar(&html, "https://huggingface.co/docs/lib/index");
        let got: Vec<String> = links.iter().map(|l| l.title.clone()).collect();
        let want: Vec<String> = slugs.iter().cloned().collect();
        prop_assert_eq!(got, want);
    }
}
