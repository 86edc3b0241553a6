//! Papers against the fake papers services (`mlres_fakehf::research_papers`): every
//! operation's happy path and error paths, the reading fallbacks, section lookup, injected
//! text flagged, tokens and keys only where they belong (across a redirect too), and the
//! cache answering offline.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlres_fakehf::research_papers::{
    ABSTRACT_ONLY_PAPER, AR5IV_PAPER, INJECTED_PAPER, Override, S2_CANARY_KEY, api_keys_seen,
    override_next, rate_limit_s2,
};
use mlres_fakehf::{FakeConfig, FakeHf, Injection, LoggedRequest, sha256_hex};
use mlres_research::fetch::Sleeper;
use mlres_research::papers::{
    self, ArxivSort, Direction, LinkedSort, Origin, ReadSource, RepoKind, SearchQuery, SearchSource,
};
use mlres_research::{Cache, Endpoints, Fetcher, Pacing, ResearchError, Secrets};
use proptest::prelude::*;

const HF_CANARY: &str = "hf_PAPERScanary0123456789abcdefGHIJ";
const DPO: &str = "2305.18290";
const LORA: &str = "2106.09685";

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Duration>>>);
impl Sleeper for Recorder {
    fn sleep(&self, d: Duration) {
        self.0.lock().unwrap().push(d);
    }
}

fn fake() -> FakeHf {
    FakeHf::start(FakeConfig::default()).unwrap()
}

/// Every papers base on `papers`, HF on `hf`.
fn endpoints(hf: &FakeHf, papers: &FakeHf) -> Endpoints {
    let u = papers.url();
    Endpoints {
        hf: hf.url(),
        arxiv_export: format!("{u}/arxiv-export"),
        arxiv_html: format!("{u}/arxiv"),
        ar5iv: format!("{u}/ar5iv"),
        s2: format!("{u}/s2"),
        ..Endpoints::default()
    }
}

fn fetcher(e: Endpoints, s: Secrets, cache: Option<Cache>) -> (Fetcher, Recorder) {
    let rec = Recorder::default();
    let pacing = Pacing {
        backoff: Duration::from_millis(1),
        ..Pacing::default()
    };
    let f = Fetcher::with_pacing(e, s, cache, pacing).sleeper(Box::new(rec.clone()));
    (f, rec)
}

fn plain(fake: &FakeHf) -> Fetcher {
    fetcher(endpoints(fake, fake), Secrets::default(), None).0
}

fn log(fake: &FakeHf) -> Vec<LoggedRequest> {
    fake.state().lock().requests.clone()
}

fn q(query: &str, source: SearchSource) -> SearchQuery {
    SearchQuery {
        source,
        ..SearchQuery::new(query)
    }
}

#[test]
fn search_hf_arxiv_and_both_merged_by_arxiv_id() {
    let fake = fake();
    let f = plain(&fake);
    let hf = papers::search(&f, &q("direct preference optimization", SearchSource::Hf)).unwrap();
    let dpo = &hf.papers[0];
    assert_eq!(dpo.arxiv_id, DPO);
    assert_eq!(dpo.origins, [Origin::Hf]);
    assert_eq!(dpo.upvotes, Some(42));
    assert!(
        dpo.authors
            .as_ref()
            .unwrap()
            .text
            .starts_with("Rafael Rafailov, Archit Sharma")
    );
    assert!(dpo.ai_summary.is_some() && dpo.github_repo.is_some());
    assert_eq!(hf.arxiv_total, None);

    let ax = papers::search(
        &f,
        &SearchQuery {
            sort: ArxivSort::SubmittedDate,
            ..q("preference optimization", SearchSource::Arxiv)
        },
    )
    .unwrap();
    let a = ax.papers.iter().find(|p| p.arxiv_id == DPO).unwrap();
    assert_eq!(a.version.as_deref(), Some("v3"));
    assert_eq!(
        a.title.text,
        "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
        "whitespace collapsed"
    );
    assert!(!a.summary.as_ref().unwrap().text.contains('\n'));
    assert_eq!(a.categories, ["cs.LG", "cs.AI", "cs.CL"]);
    assert_eq!(ax.arxiv_total, Some(ax.papers.len() as u64));
    let sent = log(&fake);
    let query = sent
        .iter()
        .find(|r| r.path.starts_with("/arxiv-export/api/query"))
        .unwrap();
    assert!(
        query
            .path
            .contains("search_query=all:preference AND all:optimization")
            && query.path.contains("sortBy=submittedDate")
            && query.path.contains("max_results=10")
            && query.path.contains("start=0"),
        "{}",
        query.path
    );

    let both = papers::search(&f, &q("preference optimization", SearchSource::Both)).unwrap();
    let merged: Vec<_> = both.papers.iter().filter(|p| p.arxiv_id == DPO).collect();
    assert_eq!(merged.len(), 1, "one entry per arXiv id");
    assert_eq!(merged[0].origins, [Origin::Hf, Origin::Arxiv]);
    assert_eq!(merged[0].version.as_deref(), Some("v3"));
    assert_eq!(merged[0].upvotes, Some(42));

    let e = papers::search(&f, &q("  ", SearchSource::Both)).unwrap_err();
    assert!(matches!(e, ResearchError::Usage(_)), "{e}");
}

#[test]
fn arxiv_error_feed_is_a_typed_error() {
    let fake = fake();
    let f = plain(&fake);
    let e = papers::search(&f, &q("id:1234.1234", SearchSource::Arxiv)).unwrap_err();
    match e {
        ResearchError::Api {
            source_name: "arxiv",
            status: 400,
            message,
        } => assert_eq!(message, "incorrect id format for 1234.1234"),
        e => panic!("{e:?}"),
    }
    // No results: an empty list, not an error.
    let none = papers::search(&f, &q("zyzzyva", SearchSource::Arxiv)).unwrap();
    assert!(none.papers.is_empty());
    assert_eq!(none.arxiv_total, Some(0));
}

#[test]
fn trending_by_limit_and_date_and_a_bad_date() {
    let fake = fake();
    let f = plain(&fake);
    let t = papers::trending(&f, 2, None).unwrap();
    assert_eq!(t.papers.len(), 2);
    assert_eq!(t.papers[0].arxiv_id, INJECTED_PAPER, "newest first");
    let d = papers::trending(&f, 10, Some("2023-05-30")).unwrap();
    assert_eq!(
        d.papers
            .iter()
            .map(|p| p.arxiv_id.as_str())
            .collect::<Vec<_>>(),
        [DPO]
    );
    let e = papers::trending(&f, 10, Some("2023-02-30")).unwrap_err();
    assert!(
        matches!(&e, ResearchError::Api { status: 400, message, .. } if message.contains("Invalid date")),
        "{e:?}"
    );
    assert!(
        log(&fake)
            .iter()
            .any(|r| r.path == "/api/daily_papers?limit=2")
    );
}

#[test]
fn details_with_links_and_not_found() {
    let fake = fake();
    let f = plain(&fake);
    let d = papers::details(&f, "https://arxiv.org/abs/2305.18290v2").unwrap();
    assert_eq!(d.paper.arxiv_id, DPO);
    assert_eq!(
        d.paper.github_repo.as_ref().unwrap().text,
        "https://github.com/eric-mitchell/direct-preference-optimization"
    );
    assert!(
        d.paper
            .ai_summary
            .as_ref()
            .unwrap()
            .text
            .starts_with("DPO optimizes")
    );
    assert_eq!(d.paper.upvotes, Some(42));
    assert_eq!(
        (d.linked_models, d.linked_datasets, d.linked_spaces),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(d.ai_keywords.len(), 2);
    assert_eq!(d.pdf_url, "https://arxiv.org/pdf/2305.18290");
    assert_eq!(d.cache_age, None);
    let e = papers::details(&f, "2301.00000").unwrap_err();
    assert!(matches!(e, ResearchError::NotFound(_)), "{e:?}");
    let e = papers::details(&f, "../../api/whoami-v2").unwrap_err();
    assert!(matches!(e, ResearchError::Usage(_)), "{e:?}");
}

#[test]
fn read_outline_and_sections_from_arxiv_html_after_its_redirect() {
    let fake = fake();
    let f = plain(&fake);
    let r = papers::read(&f, DPO, None).unwrap();
    assert_eq!(r.source, ReadSource::ArxivHtml);
    assert_eq!(
        r.title.as_ref().unwrap().text,
        "Direct Preference Optimization: Your Language Model is Secretly a Reward Model"
    );
    assert!(
        r.abstract_text
            .as_ref()
            .unwrap()
            .text
            .starts_with("While large-scale")
    );
    let ids: Vec<&str> = r.outline.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(
        ids,
        ["1", "2", "2.1", "3", "3.1", "4", "A.1"],
        "no heading from the script or nav"
    );
    let titles: Vec<&str> = r.outline.iter().map(|o| o.title.text.as_str()).collect();
    assert_eq!(titles[..2], ["Introduction", "Method"]);
    assert!(
        r.outline
            .iter()
            .all(|o| o.preview.text.chars().count() <= 280)
    );
    assert!(r.section.is_none());
    let paths: Vec<String> = log(&fake)
        .into_iter()
        .map(|l| format!("{} {}", l.status, l.path))
        .collect();
    assert!(
        paths.contains(&"301 /arxiv/html/2305.18290".to_string()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"200 /arxiv/html/2305.18290v3".to_string()),
        "{paths:?}"
    );

    // Lookup: exact id, exact title (any case), title substring.
    let s = papers::read(&f, DPO, Some("2.1")).unwrap().section.unwrap();
    assert_eq!(
        (s.id.as_str(), s.title.text.as_str()),
        ("2.1", "Deriving the DPO Objective")
    );
    let s = papers::read(&f, DPO, Some("hyperparameters"))
        .unwrap()
        .section
        .unwrap();
    assert_eq!(s.id, "4");
    assert!(
        s.text.text.contains("$\\beta$ = 0.1, a batch size of 64")
            && s.text.text.contains("\n\nWe linearly warm up"),
        "markdown with math: {}",
        s.text.text
    );
    let s = papers::read(&f, DPO, Some("abstract"))
        .unwrap()
        .section
        .unwrap();
    assert_eq!(s.title.text, "Abstract");
    assert!(s.text.text.starts_with("While large-scale"));
    let s = papers::read(&f, DPO, Some("sweep"))
        .unwrap()
        .section
        .unwrap();
    assert_eq!(s.id, "A.1");
    // An h2 section holds its subsections, as ml-intern reads siblings.
    let s = papers::read(&f, DPO, Some("Experiments"))
        .unwrap()
        .section
        .unwrap();
    assert!(
        s.text.text.contains("### 3.1 Summarization"),
        "{}",
        s.text.text
    );
    assert!(s.text.text.chars().count() <= papers::SECTION_CAP);
    let e = papers::read(&f, DPO, Some("Broader impact")).unwrap_err();
    assert!(
        matches!(&e, ResearchError::NotFound(m) if m.contains("1, 2, 2.1, 3, 3.1, 4, A.1")),
        "{e:?}"
    );
}

#[test]
fn read_falls_back_to_ar5iv_then_to_the_abstract() {
    let fake = fake();
    let f = plain(&fake);
    let r = papers::read(&f, AR5IV_PAPER, Some("Hyperparameters")).unwrap();
    assert_eq!(r.source, ReadSource::Ar5iv);
    assert_eq!(r.section.unwrap().id, "5.3");
    let paths: Vec<String> = log(&fake)
        .into_iter()
        .map(|l| format!("{} {}", l.status, l.path))
        .collect();
    assert!(
        paths.contains(&format!("404 /arxiv/html/{AR5IV_PAPER}")),
        "{paths:?}"
    );
    assert!(
        paths.contains(&format!("200 /ar5iv/html/{AR5IV_PAPER}")),
        "{paths:?}"
    );

    let r = papers::read(&f, ABSTRACT_ONLY_PAPER, None).unwrap();
    assert_eq!(r.source, ReadSource::Abstract);
    assert!(r.outline.is_empty());
    assert!(r.title.unwrap().text.starts_with("KTO"));
    assert!(r.abstract_text.unwrap().text.contains("prospect theory"));
    assert_eq!(r.pdf_url, "https://arxiv.org/pdf/2402.01306");
    let e = papers::read(&f, ABSTRACT_ONLY_PAPER, Some("Method")).unwrap_err();
    assert!(
        matches!(&e, ResearchError::NotFound(m) if m.contains("only its abstract")),
        "{e:?}"
    );
    // Nothing anywhere: the HF 404.
    let e = papers::read(&f, "2301.00000", None).unwrap_err();
    assert!(matches!(e, ResearchError::NotFound(_)), "{e:?}");
}

#[test]
fn injected_text_comes_back_wrapped_flagged_and_shown() {
    let fake = fake();
    let f = plain(&fake);
    let r = papers::read(&f, INJECTED_PAPER, Some("Method")).unwrap();
    let t = r.section.unwrap().text;
    assert!(
        t.injections.iter().any(|k| k == "instruction_override"),
        "{t:?}"
    );
    assert!(t.text.contains("⟨U+202E⟩txt.exe"), "{}", t.text);
    assert!(!t.text.contains('\u{202E}'));
    let shown = t.render();
    assert!(
        shown.starts_with("warning: text from arxiv html 2501.00001 looks like instructions"),
        "{shown}"
    );
    assert!(shown.contains("<<<EXTERNAL CONTENT from arxiv html 2501.00001"));
    assert!(shown.trim_end().ends_with("<<<END EXTERNAL CONTENT>>>"));
    // The outline's preview of the section is flagged too, and the abstract in search.
    let o = papers::read(&f, INJECTED_PAPER, None).unwrap();
    assert!(!o.outline[1].preview.injections.is_empty());
    let s = papers::search(&f, &q("distribution shift", SearchSource::Hf)).unwrap();
    let p = s
        .papers
        .iter()
        .find(|p| p.arxiv_id == INJECTED_PAPER)
        .unwrap();
    assert!(!p.summary.as_ref().unwrap().injections.is_empty());
    // A citation context carrying one is flagged as well.
    let c = papers::citations(&f, DPO, Direction::Citations, 0, 100).unwrap();
    let inj = c
        .edges
        .iter()
        .find(|e| e.paper.arxiv_id.as_deref() == Some(INJECTED_PAPER))
        .unwrap();
    assert!(!inj.contexts[0].injections.is_empty());
}

#[test]
fn citations_and_references_page_with_next() {
    let fake = fake();
    let f = plain(&fake);
    let p1 = papers::citations(&f, DPO, Direction::Citations, 0, 2).unwrap();
    assert_eq!((p1.offset, p1.next, p1.edges.len()), (0, Some(2), 2));
    let kto = &p1.edges[0];
    assert_eq!(kto.paper.arxiv_id.as_deref(), Some("2402.01306"));
    assert_eq!(kto.paper.year, Some(2024));
    assert_eq!(kto.paper.citation_count, Some(400));
    assert_eq!(kto.intents, ["methodology"]);
    assert_eq!(kto.is_influential, Some(true));
    assert!(kto.contexts[0].text.starts_with("We build on DPO"));
    let last = papers::citations(&f, DPO, Direction::Citations, 4, 2).unwrap();
    assert_eq!(
        (last.next, last.edges.len()),
        (None, 1),
        "no next on the last page"
    );
    let sent = log(&fake);
    assert!(
        sent.iter().any(|r| r.path
            == "/s2/graph/v1/paper/ARXIV:2305.18290/citations?fields=title,externalIds,year,citationCount,influentialCitationCount,contexts,intents,isInfluential&offset=0&limit=2"),
        "{:?}",
        sent.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    let refs = papers::citations(&f, DPO, Direction::References, 0, 100).unwrap();
    assert_eq!(refs.edges.len(), 3);
    assert!(refs.edges.iter().any(|e| {
        e.paper.arxiv_id.is_none()
            && e.paper
                .title
                .as_ref()
                .unwrap()
                .text
                .starts_with("Rank Analysis")
    }));
    let e = papers::citations(&f, "2301.00000", Direction::Citations, 0, 10).unwrap_err();
    assert!(
        matches!(&e, ResearchError::NotFound(m) if m.contains("citations of 2301.00000")),
        "{e:?}"
    );
}

#[test]
fn s2_errors_are_typed_and_429_is_retried_then_rate_limited() {
    let fake = fake();
    let (f, rec) = fetcher(endpoints(&fake, &fake), Secrets::default(), None);
    // A 400 in S2's shape {"error": …}.
    fake.state().inject(Injection {
        method: "GET".into(),
        path_prefix: "/s2/graph/v1/paper/ARXIV:2305.18290/references".into(),
        status: 400,
        count: 1,
        location: None,
        message: Some("Unrecognized or unsupported fields: [garbage]".into()),
    });
    let e = papers::citations(&f, DPO, Direction::References, 0, 10).unwrap_err();
    match e {
        ResearchError::Api {
            source_name: "semantic scholar",
            status: 400,
            message,
        } => assert_eq!(message, "Unrecognized or unsupported fields: [garbage]"),
        e => panic!("{e:?}"),
    }
    // Two 429s with Retry-After, then an answer.
    fake.state().inject(Injection {
        method: "GET".into(),
        path_prefix: "/s2/recommendations/".into(),
        status: 429,
        count: 2,
        location: None,
        message: None,
    });
    let r = papers::recommendations(&f, DPO, 10).unwrap();
    assert!(!r.papers.is_empty());
    // S2's own 429 ({"message","code"}, Retry-After: 1) for longer than the retries last.
    rate_limit_s2(fake.state(), 100);
    rec.0.lock().unwrap().clear();
    let e = papers::snippets(&f, DPO, "learning rate", 5).unwrap_err();
    assert!(
        matches!(&e, ResearchError::RateLimited { retry_after: Some(d), .. } if *d == Duration::from_secs(1)),
        "{e:?}"
    );
    assert_eq!(
        *rec.0.lock().unwrap(),
        vec![Duration::from_secs(1); 3],
        "Retry-After honoured"
    );
    rate_limit_s2(fake.state(), 0);
}

#[test]
fn recommendations_and_snippets() {
    let fake = fake();
    let f = plain(&fake);
    let r = papers::recommendations(&f, DPO, 3).unwrap();
    assert_eq!(r.papers.len(), 3);
    assert!(r.papers.iter().all(|p| p.arxiv_id.as_deref() != Some(DPO)));
    assert!(
        r.papers
            .iter()
            .all(|p| p.title.is_some() && p.year.is_some())
    );
    let e = papers::recommendations(&f, "2301.00000", 3).unwrap_err();
    assert!(matches!(e, ResearchError::NotFound(_)), "{e:?}");

    let s = papers::snippets(&f, DPO, "learning rate warm up", 5).unwrap();
    assert!(!s.snippets.is_empty());
    let best = &s.snippets[0];
    assert_eq!(best.kind.as_deref(), Some("body"));
    assert_eq!(best.section.as_ref().unwrap().text, "Hyperparameters");
    assert!(best.text.text.contains("1e-6"));
    assert!(
        best.paper_title
            .as_ref()
            .unwrap()
            .text
            .starts_with("Direct Preference")
    );
    assert!(
        log(&fake)
            .iter()
            .any(|l| l.path.starts_with("/s2/graph/v1/snippet/search?")
                && l.path.contains("paperIds=ARXIV:2305.18290"))
    );
    let e = papers::snippets(&f, DPO, " ", 5).unwrap_err();
    assert!(matches!(e, ResearchError::Usage(_)), "{e:?}");
}

#[test]
fn linked_models_datasets_and_spaces() {
    let fake = fake();
    let f = plain(&fake);
    let m = papers::linked(&f, DPO, RepoKind::Models, LinkedSort::Downloads, 2).unwrap();
    let ids: Vec<&str> = m.repos.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "HuggingFaceH4/zephyr-7b-beta",
            "HuggingFaceH4/mistral-7b-sft-beta"
        ]
    );
    assert_eq!(
        m.repos[0].url,
        "https://huggingface.co/HuggingFaceH4/zephyr-7b-beta"
    );
    assert_eq!(m.repos[0].pipeline_tag.as_deref(), Some("text-generation"));
    let d = papers::linked(&f, DPO, RepoKind::Datasets, LinkedSort::Likes, 10).unwrap();
    assert_eq!(d.repos[0].id, "HuggingFaceH4/ultrafeedback_binarized");
    assert_eq!(
        d.repos[0].url,
        "https://huggingface.co/datasets/HuggingFaceH4/ultrafeedback_binarized"
    );
    let s = papers::linked(&f, DPO, RepoKind::Spaces, LinkedSort::Downloads, 10).unwrap();
    assert_eq!(s.repos[0].likes, Some(900));
    let none = papers::linked(&f, LORA, RepoKind::Spaces, LinkedSort::Likes, 10).unwrap();
    assert!(none.repos.is_empty());
    let sent = log(&fake);
    assert!(sent.iter().any(
        |l| l.path == "/api/models?filter=arxiv:2305.18290&sort=downloads&direction=-1&limit=2"
    ));
    assert!(
        sent.iter()
            .any(|l| l.path
                == "/api/spaces?filter=arxiv:2305.18290&sort=likes&direction=-1&limit=10")
    );
}

fn answer(path_prefix: &str, status: u16, content_type: &str, body: &str) -> Override {
    Override {
        path_prefix: path_prefix.into(),
        status,
        content_type: content_type.into(),
        body: body.into(),
        size: 0,
        delay_ms: 0,
        count: 1,
    }
}

fn inject(fake: &FakeHf, path_prefix: &str, status: u16, count: u32) {
    fake.state().inject(Injection {
        method: "GET".into(),
        path_prefix: path_prefix.into(),
        status,
        count,
        location: None,
        message: None,
    });
}

#[test]
fn malformed_huge_slow_and_failing_answers_are_typed_errors() {
    let fake = fake();
    let (f, _) = fetcher(endpoints(&fake, &fake), Secrets::default(), None);
    let st = fake.state();
    // Malformed JSON from HF, and from S2.
    override_next(
        st,
        answer(
            "/api/papers/search",
            200,
            "application/json",
            "{\"oops\": [1,",
        ),
    );
    let e = papers::search(&f, &q("dpo", SearchSource::Hf)).unwrap_err();
    assert!(matches!(e, ResearchError::Decode { .. }), "{e:?}");
    override_next(
        st,
        answer(
            "/s2/graph/v1/paper/",
            200,
            "text/html",
            "<html>maintenance</html>",
        ),
    );
    let e = papers::citations(&f, DPO, Direction::Citations, 0, 5).unwrap_err();
    assert!(matches!(e, ResearchError::Decode { .. }), "{e:?}");
    // Not a feed at all, and a feed cut short (what was complete is kept: nothing here).
    override_next(
        st,
        answer(
            "/arxiv-export/",
            200,
            "text/html",
            "<html><body>Bad gateway</body></html>",
        ),
    );
    let e = papers::search(&f, &q("dpo", SearchSource::Arxiv)).unwrap_err();
    assert!(matches!(e, ResearchError::Decode { .. }), "{e:?}");
    override_next(
        st,
        answer(
            "/arxiv-export/",
            200,
            "application/atom+xml",
            "<feed><entry><id>http://arxiv.org/abs/2305.18290v3</id><title>Direct Pref",
        ),
    );
    let cut = papers::search(&f, &q("dpo", SearchSource::Arxiv)).unwrap();
    assert!(cut.papers.is_empty());
    // A 5xx that outlasts the retries: the status, typed; with both sources, the other
    // source's results and a warning.
    inject(&fake, "/arxiv-export/", 503, 4);
    let e = papers::search(&f, &q("preference", SearchSource::Arxiv)).unwrap_err();
    assert!(
        matches!(
            e,
            ResearchError::Api {
                source_name: "arxiv",
                status: 503,
                ..
            }
        ),
        "{e:?}"
    );
    inject(&fake, "/arxiv-export/", 503, 4);
    let both = papers::search(&f, &q("preference", SearchSource::Both)).unwrap();
    assert!(both.papers.iter().any(|p| p.arxiv_id == DPO));
    assert!(
        both.warnings.len() == 1 && both.warnings[0].starts_with("arXiv: "),
        "{:?}",
        both.warnings
    );
    inject(&fake, "/api/daily_papers", 500, 4);
    let e = papers::trending(&f, 5, None).unwrap_err();
    assert!(matches!(e, ResearchError::Api { status: 500, .. }), "{e:?}");
    // A huge body is refused, never cut silently.
    override_next(
        st,
        Override {
            size: 9 << 20,
            ..answer("/api/papers/2305.18290", 200, "application/json", "[")
        },
    );
    let e = papers::details(&f, DPO).unwrap_err();
    assert!(matches!(e, ResearchError::TooLarge { .. }), "{e:?}");
    // A slow answer: the timeout, then a transport error.
    let slow = Fetcher::with_pacing(
        endpoints(&fake, &fake),
        Secrets::default(),
        None,
        Pacing {
            retries: 0,
            timeout: Duration::from_millis(300),
            ..Pacing::default()
        },
    );
    override_next(
        st,
        Override {
            delay_ms: 1500,
            ..answer("/api/daily_papers", 200, "application/json", "[]")
        },
    );
    let e = papers::trending(&slow, 5, None).unwrap_err();
    assert!(matches!(e, ResearchError::Transport { .. }), "{e:?}");
}

/// Runs every operation (ignoring errors) and returns everything as JSON.
fn everything(f: &Fetcher) -> String {
    let mut out = Vec::new();
    let j = |v: Result<serde_json::Value, ResearchError>| match v {
        Ok(v) => v.to_string(),
        Err(e) => e.to_string(),
    };
    out.push(j(papers::search(
        f,
        &q("preference optimization", SearchSource::Both),
    )
    .map(js)));
    out.push(j(papers::trending(f, 5, None).map(js)));
    out.push(j(papers::details(f, DPO).map(js)));
    for id in [DPO, AR5IV_PAPER, ABSTRACT_ONLY_PAPER, INJECTED_PAPER] {
        out.push(j(papers::read(f, id, None).map(js)));
        out.push(j(papers::read(f, id, Some("Method")).map(js)));
    }
    for d in [Direction::Citations, Direction::References] {
        out.push(j(papers::citations(f, DPO, d, 0, 100).map(js)));
    }
    out.push(j(papers::recommendations(f, DPO, 5).map(js)));
    out.push(j(papers::snippets(f, DPO, "beta", 5).map(js)));
    for k in [RepoKind::Models, RepoKind::Datasets, RepoKind::Spaces] {
        out.push(j(
            papers::linked(f, DPO, k, LinkedSort::Downloads, 5).map(js)
        ));
    }
    out.join("\n")
}

fn js<T: serde::Serialize>(x: T) -> serde_json::Value {
    serde_json::to_value(x).unwrap()
}

fn secrets() -> Secrets {
    Secrets {
        hf_token: Some(HF_CANARY.into()),
        github_token: None,
        s2_key: Some(S2_CANARY_KEY.into()),
    }
}

#[test]
fn the_hf_token_never_reaches_arxiv_or_s2_even_across_a_redirect() {
    let hf = fake();
    let other = fake();
    let (f, _) = fetcher(endpoints(&hf, &other), secrets(), None);
    // The HF papers API redirects one paper to the other host.
    hf.state().inject(Injection {
        method: "GET".into(),
        path_prefix: format!("/api/papers/{DPO}"),
        status: 302,
        count: 100,
        location: Some(format!("{}/api/papers/{DPO}", other.url())),
        message: None,
    });
    let out = everything(&f);
    let d = papers::details(&f, DPO).unwrap();
    assert_eq!(d.paper.arxiv_id, DPO, "answered by the other host");
    let bearer = sha256_hex(format!("Bearer {HF_CANARY}").as_bytes());
    let other_log = log(&other);
    assert!(
        other_log
            .iter()
            .any(|l| l.path == format!("/api/papers/{DPO}")),
        "the redirect was followed"
    );
    assert!(other_log.iter().any(|l| l.path.starts_with("/s2/")));
    assert!(
        other_log
            .iter()
            .any(|l| l.path.starts_with("/arxiv-export/"))
    );
    for l in &other_log {
        assert!(
            !l.auth && l.auth_sha256.as_deref() != Some(bearer.as_str()),
            "{l:?}"
        );
    }
    // The token did go to HF (so the check above means something).
    assert!(
        log(&hf)
            .iter()
            .any(|l| l.auth_sha256.as_deref() == Some(bearer.as_str()))
    );
    // The S2 key went to S2 paths on the other host only.
    let key = sha256_hex(S2_CANARY_KEY.as_bytes());
    assert!(api_keys_seen(hf.state()).is_empty());
    let seen = api_keys_seen(other.state());
    assert!(!seen.is_empty());
    for (path, h) in seen {
        assert!(path.starts_with("/s2/") && h == key, "{path}");
    }
    assert!(!out.contains(HF_CANARY) && !out.contains(S2_CANARY_KEY));
}

#[test]
fn on_one_host_each_credential_is_still_sent_only_with_its_own_requests() {
    // Every service on one fake (one host): only the request's tag decides what is sent.
    let fake = fake();
    let (f, _) = fetcher(endpoints(&fake, &fake), secrets(), None);
    let _ = everything(&f);
    let bearer = sha256_hex(format!("Bearer {HF_CANARY}").as_bytes());
    let mut hf_seen = 0;
    for l in log(&fake) {
        let non_hf = ["/arxiv", "/ar5iv", "/s2/"]
            .iter()
            .any(|p| l.path.starts_with(p));
        if non_hf {
            assert!(!l.auth, "the HF token went to {}", l.path);
        } else {
            assert_eq!(
                l.auth_sha256.as_deref(),
                Some(bearer.as_str()),
                "{}",
                l.path
            );
            hf_seen += 1;
        }
    }
    assert!(hf_seen > 0);
    let seen = api_keys_seen(fake.state());
    assert!(seen.len() >= 4, "{seen:?}");
    assert!(seen.iter().all(|(p, _)| p.starts_with("/s2/")), "{seen:?}");
}

#[test]
fn the_cache_answers_offline_with_its_age() {
    let fake = fake();
    let dir = tempfile::tempdir().unwrap();
    let e = endpoints(&fake, &fake);
    let (f, _) = fetcher(e.clone(), Secrets::default(), Some(Cache::new(dir.path())));
    let live = everything(&f);
    let n = log(&fake).len();
    let (off, _) = fetcher(e, Secrets::default(), Some(Cache::new(dir.path())));
    let off = off.offline(true);
    let d = papers::details(&off, DPO).unwrap();
    // Within the TTL, so not stale; `cache_age` says how old.
    assert!(
        d.cache_age.is_some() && !d.stale,
        "{:?} {}",
        d.cache_age,
        d.stale
    );
    let r = papers::read(&off, DPO, Some("Hyperparameters")).unwrap();
    assert_eq!(r.source, ReadSource::ArxivHtml);
    assert!(r.cache_age.is_some());
    let r = papers::read(&off, AR5IV_PAPER, None).unwrap();
    assert_eq!(
        r.source,
        ReadSource::Ar5iv,
        "the uncached arXiv 404 falls through offline"
    );
    let s = papers::search(&off, &q("preference optimization", SearchSource::Both)).unwrap();
    assert!(s.cache_age.is_some());
    let c = papers::citations(&off, DPO, Direction::Citations, 0, 100).unwrap();
    assert!(c.cache_age.is_some());
    assert_eq!(everything(&off).lines().count(), live.lines().count());
    assert_eq!(
        log(&fake).len(),
        n,
        "offline: no request reached the network"
    );
    let e = papers::details(&off, LORA).unwrap_err();
    assert!(matches!(e, ResearchError::Offline { .. }), "{e:?}");
    // Online again, within the TTL: the cache answers, fresh.
    let d = papers::details(&f, DPO).unwrap();
    assert!(d.cache_age.is_some() && !d.stale);
    assert_eq!(log(&fake).len(), n);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_latexml_reader_never_panics(s in "\\PC{0,400}") {
        let d = mlres_research::latexml::parse(&s);
        for sec in &d.sections {
            prop_assert!(sec.level == 2 || sec.level == 3);
        }
    }

    #[test]
    fn the_latexml_reader_never_panics_on_markup_soup(parts in proptest::collection::vec(prop_oneof![
        Just("<h2 class=\"ltx_title\">".to_string()), Just("</h2>".to_string()),
        Just("<h3 class='ltx_title'>".to_string()), Just("</h3>".to_string()),
        Just("<h1 class=ltx_title>".to_string()), Just("</h1>".to_string()),
        Just("<div class=\"ltx_abstract\">".to_string()), Just("</div>".to_string()),
        Just("<h6>".to_string()), Just("<math alttext=\"x\">".to_string()), Just("</math>".to_string()),
        Just("<nav>".to_string()), Just("</nav>".to_string()), Just("<script>".to_string()),
        Just("<!--".to_string()), Just("<![CDATA[".to_string()), Just("&#x".to_string()),
        Just("<p>".to_string()), Just("4.1 ".to_string()), Just("A.1 ".to_string()),
        Just(" =".to_string()), Just("'x'".to_string()), Just("\"".to_string()), Just("é".to_string()),
        Just("<a".to_string()), Just(">".to_string()),
        "\\PC{0,12}",
    ], 0..40)) {
        let html = parts.concat();
        let d = mlres_research::latexml::parse(&html);
        let _ = mlres_research::latexml::find_section(&d.sections, "1");
    }

    #[test]
    fn the_atom_reader_never_panics_and_keeps_only_valid_ids(parts in proptest::collection::vec(prop_oneof![
        Just("<entry>".to_string()), Just("</entry>".to_string()),
        Just("<id>http://arxiv.org/abs/2305.18290v3</id>".to_string()),
        Just("<id>http://arxiv.org/api/errors#x</id>".to_string()),
        Just("<id>".to_string()), Just("</id>".to_string()),
        Just("<title>".to_string()), Just("</title>".to_string()),
        Just("<author><name>".to_string()), Just("</name></author>".to_string()),
        Just("<category term=\"cs.LG\"/>".to_string()),
        Just("<opensearch:totalResults>".to_string()), Just("</opensearch:totalResults>".to_string()),
        Just("<link title=\"pdf\" href=\"http://arxiv.org/pdf/1\"/>".to_string()),
        "\\PC{0,16}",
    ], 0..40)) {
        let feed = papers::parse_atom(&parts.concat());
        for e in feed.entries {
            prop_assert!(papers::parse_arxiv_id(&e.id).is_some_and(|(id, v)| id == e.id && v.is_none()));
        }
    }

    #[test]
    fn the_atom_reader_never_panics_on_anything(s in "\\PC{0,400}") {
        let _ = papers::parse_atom(&s);
    }
}
