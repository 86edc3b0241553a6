//! Integration tests of mlres-policy.

mod approval;
mod bayes;
mod budget;
mod code;
mod distributions;
mod durations;
mod gpus;
mod hfjobs;
mod hub;
mod keep;
mod limits;
mod malformed;
mod metrics;
mod outputs;
mod program;
mod props;
mod runnable;
mod search;
mod tpe;

/// Shared builders for `program.md` test documents.
pub mod common {
    use mlres_policy::{ProgramError, parse_program};

    /// A minimal valid envelope (4 lines).
    pub const BASE: &str =
        "max_jobs: 3\nmax_walltime: 8h\nallowed_flavors: [cpu-basic]\nmax_timeout: 1h";

    /// Builds `# T` followed by `## heading` + one yaml block per entry. Returns the
    /// document and, per block, the `program.md` line of its first content line.
    ///
    /// Layout: line 1 `# T`, line 2 blank; each section is `## H`, blank, fence,
    /// content (n lines), fence, blank.
    pub fn doc(sections: &[(&str, &str)]) -> (String, Vec<usize>) {
        let mut s = String::from("# T\n\n");
        let mut line = 3;
        let mut starts = Vec::new();
        for (h, y) in sections {
            s.push_str(&format!("## {h}\n\n```yaml\n{y}\n```\n\n"));
            starts.push(line + 3);
            line += 5 + y.lines().count();
        }
        (s, starts)
    }

    /// Envelope-only document.
    pub fn env_doc(yaml: &str) -> String {
        doc(&[("Budget envelope", yaml)]).0
    }

    /// Parses and expects an error at exactly `line`:`column` whose message contains
    /// `needle`.
    #[track_caller]
    pub fn expect_err(src: &str, line: usize, column: usize, needle: &str) -> ProgramError {
        let e = match parse_program(src) {
            Ok(p) => panic!("expected an error, parsed {p:#?}\nsource:\n{src}"),
            Err(e) => e,
        };
        assert_eq!(
            (e.line, e.column),
            (line, column),
            "wrong position for error {e}\nsource:\n{src}"
        );
        assert!(
            e.message.contains(needle),
            "message {:?} does not contain {needle:?}",
            e.message
        );
        e
    }
}
