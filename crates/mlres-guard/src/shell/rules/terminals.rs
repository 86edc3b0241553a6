//! Terminal fakers: `script`, `expect`, `unbuffer`, `empty`, zsh's `zpty` (and `socat`'s
//! `pty` address, see `net`). They give the program they run a pseudo-terminal, so a program
//! that insists on a human at a terminal (`mlres approve` asks for the approval secret there)
//! can be driven by the agent, and what they type into it is invisible to the guard. All of
//! them are denied, whatever they wrap; `crate::code` denies the same in interpreter code
//! (`pty.spawn`, `pexpect`, …).

use crate::shell::{Analyzer, Arg, R, Stdin};

/// The reason for denying a terminal faker, naming the sanctioned ways to get what people
/// usually want from one (unbuffered output).
pub(crate) fn reason(what: &str) -> String {
    format!(
        "refused: `{what}` runs a program on a fake terminal, which lets the agent drive prompts \
         meant for a human at the keyboard (`mlres approve` asks for the approval secret there). \
         Run the command directly; for unbuffered output use `python3 -u …`, \
         `PYTHONUNBUFFERED=1 …` or `stdbuf -oL …`"
    )
}

/// `script`, `expect`, `unbuffer`, `empty`, `zpty`: denied whatever they run.
pub(super) fn faker(_an: &mut Analyzer<'_>, prog: &str, _rest: &[Arg], _stdin: &Stdin) -> R {
    Err(reason(prog))
}

/// Whether a `socat` address gives the other side a pseudo-terminal (`EXEC:…,pty`, `PTY`).
pub(super) fn pty_address(addr: &str) -> bool {
    let lower = addr.to_ascii_lowercase();
    lower.starts_with("pty")
        || lower
            .split(',')
            .skip(1)
            .any(|o| o == "pty" || o.starts_with("pty="))
}
