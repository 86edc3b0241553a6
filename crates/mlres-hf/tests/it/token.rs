use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mlres_hf::{DEFAULT_ENDPOINT, Endpoint, Token, TokenSource, resolve_token};

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn files(pairs: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
    let m: BTreeMap<PathBuf, String> = pairs
        .iter()
        .map(|(k, v)| (PathBuf::from(k), v.to_string()))
        .collect();
    move |p: &Path| m.get(p).cloned()
}

#[test]
fn resolution_order_table() {
    let all_files = [
        ("/tp/token", "hf_fromTokenPath\n"),
        ("/hfhome/token", "hf_fromHfHome \r\n"),
        ("/xdg/huggingface/token", "hf_fromXdg"),
        ("/home/u/.cache/huggingface/token", "hf_fromDefault"),
        ("/home/u/custom/token", "hf_fromTilde"),
        ("/empty/token", "  \n"),
    ];
    let read = files(&all_files);
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<(&'a str, &'a str)>);
    let cases: &[Case] = &[
        (&[("HOME", "/home/u")], Some(("hf_fromDefault", "file"))),
        (
            &[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")],
            Some(("hf_fromXdg", "file")),
        ),
        (
            &[
                ("HOME", "/home/u"),
                ("XDG_CACHE_HOME", "/xdg"),
                ("HF_HOME", "/hfhome"),
            ],
            Some(("hf_fromHfHome", "file")),
        ),
        (
            &[
                ("HOME", "/home/u"),
                ("HF_HOME", "/hfhome"),
                ("HF_TOKEN_PATH", "/tp/token"),
            ],
            Some(("hf_fromTokenPath", "path")),
        ),
        (
            &[("HOME", "/home/u"), ("HF_TOKEN_PATH", "~/custom/token")],
            Some(("hf_fromTilde", "path")),
        ),
        (
            &[
                ("HOME", "/home/u"),
                ("D", "/home/u/custom"),
                ("HF_TOKEN_PATH", "${D}/token"),
            ],
            Some(("hf_fromTilde", "path")),
        ),
        (
            &[
                ("HOME", "/home/u"),
                ("HF_TOKEN_PATH", "/tp/token"),
                ("HUGGING_FACE_HUB_TOKEN", "hf_legacy"),
            ],
            Some(("hf_legacy", "legacy")),
        ),
        (
            &[
                ("HOME", "/home/u"),
                ("HUGGING_FACE_HUB_TOKEN", "hf_legacy"),
                ("HF_TOKEN", "hf_env"),
            ],
            Some(("hf_env", "env")),
        ),
        // Empty values fall through.
        (
            &[
                ("HOME", "/home/u"),
                ("HF_TOKEN", " "),
                ("HUGGING_FACE_HUB_TOKEN", ""),
            ],
            Some(("hf_fromDefault", "file")),
        ),
        // An empty token file is no token, and does not fall back to HF_HOME.
        (
            &[("HOME", "/home/u"), ("HF_TOKEN_PATH", "/empty/token")],
            None,
        ),
        (
            &[("HOME", "/home/u"), ("HF_TOKEN_PATH", "/missing/token")],
            None,
        ),
        // Disabling implicit tokens wins over everything.
        (
            &[
                ("HOME", "/home/u"),
                ("HF_TOKEN", "hf_env"),
                ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "yes"),
            ],
            None,
        ),
        (
            &[
                ("HOME", "/home/u"),
                ("HF_TOKEN", "hf_env"),
                ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "0"),
            ],
            Some(("hf_env", "env")),
        ),
        (&[], None),
    ];
    for (vars, want) in cases {
        let got = resolve_token(&env(vars), &read);
        match (got, want) {
            (None, None) => {}
            (Some((t, src)), Some((value, kind))) => {
                assert_eq!(t.expose(), *value, "{vars:?}");
                let ok = matches!(
                    (*kind, &src),
                    ("env", TokenSource::EnvHfToken)
                        | ("legacy", TokenSource::EnvHuggingFaceHubToken)
                        | ("path", TokenSource::TokenPathFile(_))
                        | ("file", TokenSource::HfHomeFile(_))
                );
                assert!(ok, "{vars:?}: source {src:?}, wanted {kind}");
            }
            (got, want) => panic!("{vars:?}: got {:?}, want {want:?}", got.map(|g| g.1)),
        }
    }
}

#[test]
fn token_never_prints() {
    let t = Token::new(crate::CANARY_TOKEN_VALUE).unwrap();
    crate::no_canary(&format!("{t} {t:?} {:?}", Some(&t)));
    assert_eq!(format!("{t}"), "hf_***");
    assert_eq!(t.fingerprint().len(), 12);
    assert!(Token::new(" \n").is_none());
}

#[test]
fn endpoint_parsing() {
    assert_eq!(Endpoint::parse(None).unwrap().as_str(), DEFAULT_ENDPOINT);
    assert_eq!(
        Endpoint::parse(Some("")).unwrap().as_str(),
        DEFAULT_ENDPOINT
    );
    assert_eq!(
        Endpoint::parse(Some("http://127.0.0.1:8080//"))
            .unwrap()
            .as_str(),
        "http://127.0.0.1:8080"
    );
    let e = Endpoint::parse(Some("https://hf.example/mirror/")).unwrap();
    assert_eq!(e.url("/api/x"), "https://hf.example/mirror/api/x");
    assert!(e.same_origin("https://HF.example/other"));
    assert!(!e.same_origin("https://hf.example.evil/other"));
    assert!(!e.same_origin("http://hf.example/other"));
    for bad in [
        "ftp://x",
        "huggingface.co",
        "https://",
        "https://u:p@host",
        "https://h/?q=1",
    ] {
        assert!(Endpoint::parse(Some(bad)).is_err(), "{bad}");
    }
    let m = env(&[("HUGGINGFACE_CO_STAGING", "1")]);
    assert_eq!(
        Endpoint::from_env(&m).unwrap().as_str(),
        "https://hub-ci.huggingface.co"
    );
    // Staging overrides HF_ENDPOINT, as in huggingface_hub's constants.py.
    let m = env(&[
        ("HUGGINGFACE_CO_STAGING", "1"),
        ("HF_ENDPOINT", "http://localhost:1/"),
    ]);
    assert_eq!(
        Endpoint::from_env(&m).unwrap().as_str(),
        "https://hub-ci.huggingface.co"
    );
    let m = env(&[
        ("HUGGINGFACE_CO_STAGING", " 1"),
        ("HF_ENDPOINT", "http://localhost:1/"),
    ]);
    assert_eq!(
        Endpoint::from_env(&m).unwrap().as_str(),
        "http://localhost:1"
    );
    assert_eq!(
        Endpoint::from_env(&env(&[])).unwrap().as_str(),
        DEFAULT_ENDPOINT
    );
}
