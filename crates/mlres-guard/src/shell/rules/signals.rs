//! Stopping mlres: `kill`, `pkill`, `killall` (and `pgrep`, `pidof`, `grep` and the like,
//! which select the pids). Denied: a name or pattern that selects an mlres process (a
//! `pkill -f` regex is matched against real mlres command lines, so `ml.es` and `[m]lres`
//! count), every process of a user (`kill -1`, `pkill -u user`), a literal pid the
//! [`crate::Machine`] says is mlres, and a pid computed at run time (`$(pgrep mlres)`, `$(cat
//! …pid)`, `xargs kill`, `$!`) in a command that looked mlres up or started it. The sanctioned
//! way is `mlres loop stop`.

use crate::shell::{Analyzer, Arg, R, Stdin};

/// What mlres processes look like to `pkill -f` (the whole command line).
const BROKER_CMDLINES: &[&str] = &[
    "mlres loop run --json",
    "/usr/local/bin/mlres loop run",
    "/home/user/.cargo/bin/mlres exp wait 3",
    "mlres __supervise --attempt /home/user/.local/state/mlres/attempts/1/2",
    "mlres mcp",
    "mlres guard",
];

/// The reason for denying a command that would stop mlres, naming `mlres loop stop`.
fn reason(what: &str) -> String {
    format!(
        "refused: `{what}` would stop mlres processes (the broker, its loop or a job supervisor). \
         Use `mlres loop stop` (the loop stops at its next step and says what is still running), \
         or ask the user"
    )
}

/// Whether a process-selecting pattern matches mlres: against its process name, or with
/// `full` against its command lines.
pub(super) fn selects_broker(pattern: &str, full: bool, ignore_case: bool) -> bool {
    let p = if ignore_case {
        pattern.to_ascii_lowercase()
    } else {
        pattern.to_string()
    };
    let Some(re) = Regex::parse(&p) else {
        // Not a pattern this matcher understands: fall back to the text.
        return p.contains("mlres");
    };
    if full {
        BROKER_CMDLINES.iter().any(|l| re.find(l))
    } else {
        re.find("mlres")
    }
}

/// `kill [-s SIG | -SIG] PID…`, `pkill [opts] PATTERN`, `killall [opts] NAME…`.
pub(super) fn kill(an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    if prog == "kill" {
        return kill_pids(an, rest);
    }
    let with_val = [
        "-s",
        "--signal",
        "-u",
        "-U",
        "-G",
        "-g",
        "-P",
        "-t",
        "-n",
        "-o",
        "--euid",
        "--uid",
        "--group",
        "--pgroup",
        "--parent",
        "--terminal",
        "--session",
        "--ns",
        "--nslist",
        "-O",
        "--older",
        "-y",
        "--younger-than",
        "-Y",
        "--older-than",
    ];
    let flags: String = rest
        .iter()
        .filter(|a| a.is_opt() && !a.s().starts_with("--"))
        .map(|a| a.s()[1..].to_string())
        .collect();
    let full = prog == "pkill" && (flags.contains('f') || rest.iter().any(|a| a.s() == "--full"));
    let ignore_case = flags.contains('i') || rest.iter().any(|a| a.s() == "--ignore-case");
    let regex = prog == "pkill" || flags.contains('r') || rest.iter().any(|a| a.s() == "--regexp");
    let selectors = rest.iter().any(|a| {
        matches!(
            a.s(),
            "-u" | "-U" | "-G" | "-g" | "-P" | "-s" | "--user" | "--uid" | "--euid" | "--group"
        ) || a.s().starts_with("--user=")
    });
    let mut patterns = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        let s = rest[i].s();
        if with_val.contains(&s) || (prog == "killall" && s == "-u") {
            i += 2;
            continue;
        }
        if !rest[i].is_opt() {
            patterns.push(&rest[i]);
        }
        i += 1;
    }
    if patterns.is_empty() && selectors {
        return Err(reason(&format!("{prog} -u …")));
    }
    for p in patterns {
        if p.dynamic {
            return Err(reason(&format!("{prog} <a pattern built at run time>")));
        }
        let hit = if regex {
            selects_broker(p.s(), full, ignore_case)
        } else {
            let n = if ignore_case {
                p.s().to_ascii_lowercase()
            } else {
                p.s().to_string()
            };
            n == "mlres" || n.ends_with("/mlres")
        };
        if hit {
            return Err(reason(&format!("{prog} {}", p.s())));
        }
    }
    Ok(())
}

/// `kill`: the signal comes first, then pids (`-N` after the signal is a process group,
/// `-1` every process the user may signal).
fn kill_pids(an: &mut Analyzer<'_>, rest: &[Arg]) -> R {
    let mut i = 0;
    if rest.first().is_some_and(|a| a.s() == "-l" || a.s() == "-L") {
        return Ok(());
    }
    if let Some(first) = rest.first() {
        let s = first.s();
        if s == "-s" || s == "-n" || s == "--signal" {
            i = 2;
        } else if s.starts_with('-') && s != "--" && !first.dynamic {
            i = 1;
        }
    }
    if rest.get(i).is_some_and(|a| a.s() == "--") {
        i += 1;
    }
    let pids = &rest[i.min(rest.len())..];
    for p in pids {
        if p.dynamic {
            if an.broker_looked_up || an.mlres_invoked {
                return Err(reason("kill <pids computed at run time>"));
            }
            continue;
        }
        let t = p.s();
        if t == "-1" {
            return Err(reason("kill -1"));
        }
        if let Ok(n) = t.trim_start_matches('-').parse::<u32>()
            && an.machine.is_broker_process(n)
        {
            return Err(reason(&format!("kill {t}")));
        }
    }
    Ok(())
}

impl Analyzer<'_> {
    /// Remembers that this command looks mlres processes up (`pgrep -f mlres`, `pidof mlres`,
    /// `grep '[m]lres'`, any word naming mlres), so that a `kill` of computed pids later in it
    /// is refused.
    pub(in crate::shell) fn note_broker_lookup(&mut self, prog: &str, rest: &[Arg]) {
        if matches!(prog, "mlres" | "kill" | "pkill" | "killall") {
            return;
        }
        let full = prog != "pgrep"
            || rest.iter().any(|a| {
                a.s().starts_with("-f") || a.s() == "-af" || a.s() == "-fa" || a.s() == "--full"
            });
        let patterned = matches!(
            prog,
            "pgrep" | "pidof" | "grep" | "egrep" | "fgrep" | "rg" | "awk" | "gawk" | "mawk" | "sed"
        );
        for a in rest.iter().filter(|a| !a.is_opt()) {
            let s = a.s();
            if s.to_ascii_lowercase().contains("mlres")
                || patterned && selects_broker(s, full, true)
            {
                self.broker_looked_up = true;
                return;
            }
        }
    }
}

/// A small regular-expression matcher (POSIX ERE as `pgrep` takes it: `.`, `[…]`, `*`, `+`,
/// `?`, `^`, `$`, `|`, `( )`, `\` escapes), enough to tell whether a pattern selects mlres.
#[derive(Debug)]
struct Regex {
    alts: Vec<Vec<Piece>>,
}

#[derive(Debug)]
enum Atom {
    Char(char),
    Any,
    Class(Vec<(char, char)>, bool),
    Group(Regex),
    Start,
    End,
}

#[derive(Debug)]
struct Piece {
    atom: Atom,
    min: usize,
    max: usize,
}

impl Regex {
    fn parse(p: &str) -> Option<Regex> {
        let chars: Vec<char> = p.chars().collect();
        let mut i = 0;
        let r = Self::parse_alt(&chars, &mut i, 0)?;
        (i == chars.len()).then_some(r)
    }

    fn parse_alt(c: &[char], i: &mut usize, depth: usize) -> Option<Regex> {
        if depth > 16 {
            return None;
        }
        let mut alts = vec![Vec::new()];
        while *i < c.len() {
            let ch = c[*i];
            let atom = match ch {
                '|' => {
                    *i += 1;
                    alts.push(Vec::new());
                    continue;
                }
                ')' => {
                    if depth == 0 {
                        return None;
                    }
                    break;
                }
                '(' => {
                    *i += 1;
                    let g = Self::parse_alt(c, i, depth + 1)?;
                    if c.get(*i) != Some(&')') {
                        return None;
                    }
                    Atom::Group(g)
                }
                '.' => Atom::Any,
                '^' => Atom::Start,
                '$' => Atom::End,
                '\\' => {
                    *i += 1;
                    Atom::Char(*c.get(*i)?)
                }
                '[' => {
                    let mut j = *i + 1;
                    let neg = c.get(j) == Some(&'^');
                    if neg {
                        j += 1;
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    while j < c.len() && (c[j] != ']' || first) {
                        first = false;
                        let lo = c[j];
                        if c.get(j + 1) == Some(&'-') && c.get(j + 2).is_some_and(|&h| h != ']') {
                            ranges.push((lo, c[j + 2]));
                            j += 3;
                        } else {
                            ranges.push((lo, lo));
                            j += 1;
                        }
                    }
                    if j >= c.len() {
                        return None;
                    }
                    *i = j;
                    Atom::Class(ranges, neg)
                }
                '*' | '+' | '?' | '{' => return None,
                other => Atom::Char(other),
            };
            *i += 1;
            let (min, max) = match c.get(*i) {
                Some('*') => (0, usize::MAX),
                Some('+') => (1, usize::MAX),
                Some('?') => (0, 1),
                _ => (1, 1),
            };
            if (min, max) != (1, 1) {
                *i += 1;
            }
            alts.last_mut()?.push(Piece { atom, min, max });
        }
        Some(Regex { alts })
    }

    /// Whether the pattern matches somewhere in `s`.
    fn find(&self, s: &str) -> bool {
        let t: Vec<char> = s.chars().collect();
        let mut budget = 100_000usize;
        (0..=t.len()).any(|start| !self.ends(&t, start, &mut budget).is_empty())
    }

    /// Every position where a match starting at `pos` can end.
    fn ends(&self, t: &[char], pos: usize, budget: &mut usize) -> Vec<usize> {
        let mut out = Vec::new();
        for alt in &self.alts {
            let mut cur = vec![pos];
            for piece in alt {
                let mut next = Vec::new();
                for &p in &cur {
                    piece_ends(piece, t, p, budget, &mut next);
                }
                next.sort_unstable();
                next.dedup();
                cur = next;
                if cur.is_empty() {
                    break;
                }
            }
            out.extend(cur);
        }
        out
    }
}

fn piece_ends(piece: &Piece, t: &[char], pos: usize, budget: &mut usize, out: &mut Vec<usize>) {
    let mut frontier = vec![pos];
    let mut count = 0;
    if piece.min == 0 {
        out.push(pos);
    }
    while !frontier.is_empty() && count < piece.max && *budget > 0 {
        *budget -= 1;
        let mut next = Vec::new();
        for &p in &frontier {
            next.extend(atom_ends(&piece.atom, t, p, budget));
        }
        next.sort_unstable();
        next.dedup();
        count += 1;
        if count >= piece.min {
            out.extend(next.iter().copied());
        }
        // A zero-width atom makes no progress: repeating it changes nothing.
        if next == frontier {
            break;
        }
        frontier = next;
    }
}

fn atom_ends(a: &Atom, t: &[char], p: usize, budget: &mut usize) -> Vec<usize> {
    match a {
        Atom::Start => (p == 0).then_some(p).into_iter().collect(),
        Atom::End => (p == t.len()).then_some(p).into_iter().collect(),
        Atom::Any => (p < t.len()).then_some(p + 1).into_iter().collect(),
        Atom::Char(c) => (t.get(p) == Some(c)).then_some(p + 1).into_iter().collect(),
        Atom::Class(ranges, neg) => t
            .get(p)
            .filter(|ch| ranges.iter().any(|(lo, hi)| (lo..=hi).contains(ch)) != *neg)
            .map(|_| p + 1)
            .into_iter()
            .collect(),
        Atom::Group(g) => g.ends(t, p, budget),
    }
}

#[cfg(test)]
mod tests {
    use super::{Regex, selects_broker};

    #[test]
    fn regex_basics() {
        let m = |p: &str, s: &str| Regex::parse(p).expect(p).find(s);
        assert!(m("ml.es", "mlres"));
        assert!(m("[m]lres", "mlres loop"));
        assert!(m("^mlres$", "mlres"));
        assert!(!m("^lres", "mlres"));
        assert!(m("m(l|x)res", "mlres"));
        assert!(m("ml*res", "mres"));
        assert!(m("m.+s", "mlres"));
        assert!(!m("train\\.py", "mlres loop run"));
        assert!(m("a|mlr", "mlres"));
        assert!(m("[^x]lres", "mlres"));
    }

    #[test]
    fn patterns_that_select_mlres() {
        assert!(selects_broker("ml.es loop", true, false));
        assert!(selects_broker("__supervise", true, false));
        assert!(selects_broker("ml.*", false, false));
        assert!(selects_broker("MLRES", false, true));
        assert!(!selects_broker("train.py", true, false));
        assert!(!selects_broker("python", false, false));
    }
}
