//! The slurm backend's parsers and quoting, by property: whatever the words of an approved
//! command are, the job script hands them to the program unchanged and the shell expands none
//! of them; markers round-trip; Slurm's durations parse; no queue line makes a parser panic.
//! (The backend itself runs on a real cluster in the `mlres` crate's tests.)

use mlres_backends::{SlurmMarker, job_script, parse_slurm_duration, sh_quote};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_quoted_word_reaches_the_program_unchanged(word in "[^\u{0}]{0,40}") {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("printf '%s' {}", sh_quote(&word)))
            .env_clear()
            .output()
            .unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&out.stdout), word);
    }
}

proptest! {
    #[test]
    fn the_job_script_is_one_exec_line_of_quoted_words(words in proptest::collection::vec("[^\u{0}]{0,12}", 1..6)) {
        let s = job_script(&words);
        let exec: Vec<&str> = s.lines().filter(|l| l.starts_with("exec ")).collect();
        prop_assert_eq!(exec.len(), 1);
        let quoted: Vec<String> = words.iter().map(|w| sh_quote(w)).collect();
        let want = format!("exec {}\n", quoted.join(" "));
        prop_assert!(s.ends_with(&want), "{} vs {}", s, want);
    }

    #[test]
    fn markers_round_trip(campaign in "c-[0-9a-f]{8}-[0-9]{1,3}", exp in 1i64..1_000_000, attempt in 1u32..1000) {
        let m = SlurmMarker { campaign, exp, attempt };
        prop_assert_eq!(SlurmMarker::parse(&m.comment()), Some(Ok(m.clone())));
        prop_assert!(m.job_name().starts_with("mlres."));
    }

    #[test]
    fn durations_parse(d in 0u64..30, h in 0u64..24, m in 0u64..60, s in 0u64..60) {
        let text = if d > 0 { format!("{d}-{h:02}:{m:02}:{s:02}") } else { format!("{h:02}:{m:02}:{s:02}") };
        prop_assert_eq!(parse_slurm_duration(&text), Some(d * 86400 + h * 3600 + m * 60 + s));
        prop_assert_eq!(parse_slurm_duration(&format!("{m}:{s:02}")), Some(m * 60 + s));
    }

    #[test]
    fn no_line_makes_the_parsers_panic(line in "\\PC{0,120}") {
        let _ = mlres_backends::SlurmMarker::parse(&line);
        let _ = parse_slurm_duration(&line);
    }
}

#[test]
fn bad_durations_are_none() {
    for t in ["", "UNLIMITED", "INVALID", "1:2:3:4", "x", "-1", "1-2"] {
        assert_eq!(parse_slurm_duration(t), None, "{t}");
    }
}
