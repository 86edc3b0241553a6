//! Property tests: `decide` never panics and always yields a well-formed verdict.

use mlres_guard::{Verdict, decide, render};
use proptest::prelude::*;

use crate::{bash, ctx};

fn check(v: &Verdict) {
    if let Verdict::Deny { reason } = v {
        assert!(!reason.trim().is_empty());
    }
    let (code, out) = render(v, "PreToolUse");
    assert_eq!(code, 0);
    if !out.is_empty() {
        let _: serde_json::Value = serde_json::from_str(&out).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_strings_never_panic(s in ".{0,400}") {
        check(&decide(&s, &ctx()));
    }

    #[test]
    fn arbitrary_bash_commands_never_panic(s in r#"[ -~\n\t]{0,300}"#) {
        check(&decide(&bash(&s), &ctx()));
    }

    #[test]
    fn shellish_token_soup_never_panics(toks in proptest::collection::vec(
        prop_oneof![
            Just("hf"), Just("jobs"), Just("run"), Just("|"), Just("&&"), Just(";"), Just("$("),
            Just(")"), Just("`"), Just("'"), Just("\""), Just("<<EOF\n"), Just("\nEOF\n"),
            Just("${"), Just("}"), Just("<("), Just("eval"), Just("bash -c"), Just("~/.cache"),
            Just("\\"), Just("$'\\x68'"), Just("{a,b}"), Just("*"), Just("python -c"), Just("env"),
        ], 0..40)) {
        let cmd = toks.join(" ");
        check(&decide(&bash(&cmd), &ctx()));
    }

    #[test]
    fn hf_jobs_survives_arbitrary_wrapping(prefix in prop_oneof![
            Just(""), Just("command "), Just("env "), Just("nohup "), Just("timeout 5 "),
            Just("sudo "), Just("nice -n 3 "), Just("time "), Just("exec "), Just("xargs "),
            Just("uv run "), Just("env A=1 "),
        ], quote in prop_oneof![Just("hf"), Just("h''f"), Just("\"hf\""), Just("\\hf"), Just("h\\f")]) {
        let cmd = format!("{prefix}{quote} jobs run ubuntu true");
        prop_assert!(decide(&bash(&cmd), &ctx()).is_deny(), "{}", cmd);
    }
}
