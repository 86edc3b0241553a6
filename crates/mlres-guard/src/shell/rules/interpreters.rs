//! Interpreters: `python`, `node`/`bun`/`deno`, `ruby`, `perl`, `php`, `lua`, `Rscript`/`R`,
//! `julia`, `osascript`. Inline programs (`python -c`, `node -e`, `deno eval`, …) and programs
//! read from standard input (a heredoc, a here-string) are scanned as code for Hub SDK calls,
//! credential reads, environment dumps and the shell commands they would run (see
//! `crate::code`). `python -m huggingface_hub…` is the `hf` CLI and `python -m mlres` is
//! mlres; other modules have no rule. Denied: inline programs built at run time, programs
//! piped in (`curl … | python`), read from a process substitution or `/dev/fd`, or from a
//! file written earlier in the same command from content the guard could not see. A script
//! file is analysed when its text can be known (see `shell::scripts`), and so is the script
//! of `torchrun`, `accelerate launch` and `deepspeed`.

use crate::code;
use crate::shell::scripts::Lang;
use crate::shell::{Analyzer, Arg, DYN, R, Stdin, deny_obf};

/// The options that take inline code, and the other options that take a value.
fn flags(prog: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match prog {
        "python" | "pypy" | "ipython" => (&["-c"], &["-W", "-X", "-Q", "--check-hash-based-pycs"]),
        "node" | "bun" | "deno" => (
            &["-e", "--eval", "-p", "--print"],
            &[
                "-r",
                "--require",
                "--import",
                "--loader",
                "-C",
                "--conditions",
                "--input-type",
            ],
        ),
        "ruby" => (&["-e"], &["-r", "-I", "-C", "-E"]),
        "perl" => (&["-e", "-E"], &["-M", "-I", "-m", "-x"]),
        "php" => (&["-r"], &["-d", "-c", "-z"]),
        "lua" | "luajit" => (&["-e"], &["-l"]),
        "rscript" | "r" | "julia" => (&["-e", "-E", "--eval"], &[]),
        "osascript" => (&["-e"], &[]),
        _ => (&[], &[]),
    }
}

/// What an interpreter's command line asks it to run.
#[derive(Default)]
struct Invocation<'x> {
    /// Inline programs (`-c`, `-e`, `deno eval`).
    codes: Vec<&'x Arg>,
    /// The script path (or `-` for standard input).
    script: Option<&'x Arg>,
    /// `python -m MODULE ARGS…`.
    module: Option<(String, Vec<Arg>)>,
}

/// Reads an interpreter's options up to its program.
fn invocation<'x>(prog: &str, rest: &'x [Arg]) -> Invocation<'x> {
    let (code_flags, val_flags) = flags(prog);
    let mut inv = Invocation::default();
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        let s = a.s();
        if s == "--" {
            inv.script = rest.get(i + 1);
            break;
        }
        if code_flags.contains(&s) {
            if let Some(c) = rest.get(i + 1) {
                inv.codes.push(c);
            }
            if prog == "python" {
                break;
            }
            i += 2;
            continue;
        }
        if prog == "python" && s.starts_with("-c") && s.len() > 2 {
            inv.codes.push(a);
            break;
        }
        if prog == "python" && (s == "-m" || s.starts_with("-m") && s.len() > 2) {
            let (m, next) = if s == "-m" {
                (
                    rest.get(i + 1)
                        .map(|a| a.s().to_string())
                        .unwrap_or_default(),
                    i + 2,
                )
            } else {
                (s[2..].to_string(), i + 1)
            };
            inv.module = Some((m, rest[next.min(rest.len())..].to_vec()));
            break;
        }
        if prog == "deno" && s == "eval" {
            if let Some(c) = rest.get(i + 1) {
                inv.codes.push(c);
            }
            break;
        }
        if val_flags.contains(&s) {
            i += 2;
            continue;
        }
        if a.is_opt() {
            i += 1;
            continue;
        }
        inv.script = Some(a);
        break;
    }
    inv
}

pub(super) fn interpreter(an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    let Invocation {
        codes,
        script,
        module,
    } = invocation(prog, rest);
    if let Some((m, args)) = module {
        if m.starts_with("huggingface_hub") {
            return super::hf::hf(an, "hf", &args, stdin);
        }
        if m == "mlres" {
            return super::mlres::mlres(an, "mlres", &args, stdin);
        }
        return Ok(());
    }
    if !codes.is_empty() {
        for c in codes {
            if c.dynamic {
                return Err(deny_obf(
                    "the inline program is built at run time (variables, substitutions or decoding)",
                ));
            }
            code::scan_exec_code(c.s(), an)?;
        }
        return Ok(());
    }
    match script {
        Some(s) => run_script(an, s, stdin),
        None => an.stdin_program(stdin, "interpreter", |this, body| {
            code::scan_exec_code(body, this)
        }),
    }
}

/// `python script.py`, `python -` and `python /dev/stdin`.
fn run_script(an: &mut Analyzer<'_>, s: &Arg, stdin: &Stdin) -> R {
    let t = s.s();
    if s.procsub
        || s.dynamic && !t.trim_matches(DYN).ends_with(".py")
        || t.starts_with("/dev/fd/")
        || t.starts_with("/proc/")
    {
        return Err(deny_obf(
            "the interpreter runs a program from a pipe, process substitution or runtime-built path",
        ));
    }
    if t == "-" || t == "/dev/stdin" {
        return an.stdin_program(stdin, "interpreter", |this, body| {
            code::scan_exec_code(body, this)
        });
    }
    if an.unseen_files.contains(&an.pe.norm(t)) {
        return Err(deny_obf(
            "the interpreter runs a file written earlier in the same command from content the guard cannot see",
        ));
    }
    an.run_script_file(s, Lang::Code)
}

/// Launchers that run a Python script: `torchrun`, `accelerate launch`, `deepspeed`. The
/// first `.py` operand is the script (read like `python3 script.py`).
pub(super) fn launcher(an: &mut Analyzer<'_>, _prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    match rest.iter().find(|a| !a.is_opt() && a.s().ends_with(".py")) {
        Some(script) => an.run_script_file(script, Lang::Code),
        None => Ok(()),
    }
}
