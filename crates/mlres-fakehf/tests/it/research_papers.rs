//! The papers services of the fake over raw HTTP: the contract's shapes and error bodies
//! (`research/api-contracts.md` §6), the redirect of arXiv HTML, and the test controls.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mlres_fakehf::research_papers::{S2_CANARY_KEY, api_keys_seen};
use mlres_fakehf::sha256_hex;

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

fn get(url: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    Reply {
        status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        headers: head.to_string(),
        body: body.to_string(),
    }
}

fn json(r: &Reply) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

#[test]
fn hf_papers_shapes_and_errors() {
    let f = super::fake();
    let u = f.url();
    let r = get(&u, "/api/papers/search?q=low-rank+adaptation&limit=5", &[]);
    let v = json(&r);
    assert_eq!(v[0]["paper"]["id"], "2106.09685", "items nest the paper");
    for k in [
        "numComments",
        "publishedAt",
        "submittedBy",
        "summary",
        "thumbnail",
        "title",
        "isAuthorParticipating",
    ] {
        assert!(v[0].get(k).is_some(), "{k}");
    }
    for k in [
        "id",
        "authors",
        "discussionId",
        "publishedAt",
        "summary",
        "title",
        "upvotes",
    ] {
        assert!(v[0]["paper"].get(k).is_some(), "{k}");
    }
    let r = get(&u, "/api/daily_papers?date=2023-13-01", &[]);
    assert_eq!(r.status, 400);
    assert!(json(&r)["error"].is_string());
    let r = get(&u, "/api/papers/2305.18290", &[]);
    assert_eq!(json(&r)["numTotalModels"], 3);
    let r = get(&u, "/api/papers/2301.00000", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(json(&r)["error"], "Paper not found");
    // Hub listings tagged with the paper.
    let r = get(
        &u,
        "/api/models?filter=arxiv:2305.18290&sort=likes&limit=1",
        &[],
    );
    assert_eq!(json(&r)[0]["id"], "HuggingFaceH4/zephyr-7b-beta");
}

#[test]
fn arxiv_feed_error_feed_html_redirect_and_404() {
    let f = super::fake();
    let u = f.url();
    let r = get(
        &u,
        "/arxiv-export/api/query?search_query=ti:LoRA&start=0&max_results=5",
        &[],
    );
    assert_eq!(r.status, 200);
    assert!(r.headers.contains("application/atom+xml"));
    assert!(
        r.body
            .contains("<id>http://arxiv.org/abs/2106.09685v2</id>")
    );
    assert!(r.body.contains("<opensearch:totalResults xmlns:opensearch=\"http://a9.com/-/spec/opensearch/1.1/\">1</opensearch:totalResults>"));
    let r = get(&u, "/arxiv-export/api/query?id_list=1234.1234", &[]);
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .contains("<id>http://arxiv.org/api/errors#incorrect_id_format_for_1234.1234</id>")
    );
    assert!(r.body.contains("<title>Error</title>"));
    let r = get(
        &u,
        "/arxiv-export/api/query?search_query=all:x&start=abc",
        &[],
    );
    assert_eq!(r.status, 400);
    let r = get(&u, "/arxiv/html/2305.18290", &[]);
    assert_eq!(r.status, 301);
    assert!(
        r.headers.contains("Location: /arxiv/html/2305.18290v3"),
        "{}",
        r.headers
    );
    let r = get(&u, "/arxiv/html/2305.18290v3", &[]);
    assert!(r.body.contains("<h2 class=\"ltx_title ltx_title_section\"><span class=\"ltx_tag ltx_tag_section\">4 </span>Hyperparameters</h2>"));
    assert_eq!(get(&u, "/arxiv/html/1706.03762", &[]).status, 404);
    assert_eq!(get(&u, "/ar5iv/html/1706.03762", &[]).status, 200);
    assert_eq!(get(&u, "/ar5iv/html/2402.01306", &[]).status, 404);
}

#[test]
fn semantic_scholar_shapes_errors_keys_and_rate_limits() {
    let f = super::fake();
    let u = f.url();
    let p = "/s2/graph/v1/paper/ARXIV:2305.18290/citations?fields=title,externalIds,contexts,isInfluential&limit=2";
    let v = json(&get(&u, p, &[]));
    assert_eq!(v["offset"], 0);
    assert_eq!(v["next"], 2);
    assert_eq!(
        v["data"][0]["citingPaper"]["externalIds"]["ArXiv"],
        "2402.01306"
    );
    assert!(v["data"][0]["contexts"].is_array() && v["data"][0].get("intents").is_none());
    let last = json(&get(
        &u,
        "/s2/graph/v1/paper/ARXIV:2305.18290/citations?offset=4&limit=2",
        &[],
    ));
    assert!(last.get("next").is_none(), "no next on the last page");
    let r = get(
        &u,
        "/s2/graph/v1/paper/ARXIV:2305.18290/references?fields=title,author.creditCardNumber,garbage",
        &[],
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        json(&r)["error"],
        "Unrecognized or unsupported fields: [author.creditCardNumber, garbage]"
    );
    let r = get(&u, "/s2/graph/v1/paper/ARXIV:0000.00000", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(
        json(&r)["error"],
        "Paper with id ARXIV:0000.00000 not found"
    );
    let r = get(
        &u,
        "/s2/graph/v1/snippet/search?paperIds=ARXIV:2305.18290",
        &[],
    );
    assert_eq!(r.status, 400);
    // The key: the canary is accepted, anything else is 403; only hashes are kept.
    let r = get(
        &u,
        "/s2/recommendations/v1/papers/forpaper/ARXIV:2305.18290?fields=title",
        &[("x-api-key", S2_CANARY_KEY)],
    );
    assert!(
        json(&r)["recommendedPapers"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    let r = get(
        &u,
        "/s2/graph/v1/paper/ARXIV:2305.18290",
        &[("x-api-key", "wrong")],
    );
    assert_eq!(
        (r.status, json(&r)["message"].as_str()),
        (403, Some("Forbidden"))
    );
    let seen = api_keys_seen(f.state());
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].1, sha256_hex(S2_CANARY_KEY.as_bytes()));
    let listed = get(&u, "/_research/api-keys", &[]);
    assert!(!listed.body.contains(S2_CANARY_KEY) && listed.body.contains(&seen[0].1));
    // 429 in S2's own shape, with Retry-After, while the control says so.
    let c = super::raw(
        &u,
        "POST",
        "/_research/s2-rate-limit",
        None,
        r#"{"count":1}"#,
    );
    assert_eq!(c.status, 200);
    let r = get(&u, "/s2/graph/v1/paper/ARXIV:2305.18290", &[]);
    assert_eq!(r.status, 429);
    assert!(r.headers.contains("Retry-After: 1"));
    assert_eq!(json(&r)["code"], "429");
    assert!(
        json(&r)["message"]
            .as_str()
            .unwrap()
            .starts_with("Too Many Requests")
    );
    assert_eq!(
        get(&u, "/s2/graph/v1/paper/ARXIV:2305.18290", &[]).status,
        200
    );
    // An override: a malformed answer once.
    let c = super::raw(
        &u,
        "POST",
        "/_research/override",
        None,
        r#"{"path_prefix":"/api/daily_papers","body":"[{"}"#,
    );
    assert_eq!(c.status, 200);
    assert_eq!(get(&u, "/api/daily_papers", &[]).body, "[{");
    assert!(
        get(&u, "/api/daily_papers", &[])
            .body
            .starts_with("[{\"paper\"")
    );
}
