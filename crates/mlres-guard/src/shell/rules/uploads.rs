//! Uploads of local files to other machines. Denied: HTTP clients sending a file or standard
//! input as a body or form field (`curl -F f=@x`, `-T x`, `--data-binary @x`, `-d @-`, `wget
//! --post-file`, httpie/xh `field@x`), `scp`/`rsync`/`rclone` to a remote, raw sockets fed a
//! file or a pipe (`nc host port < x`, `socat FILE:x TCP:…`), `ssh host cmd` fed a file or a
//! pipe, cloud storage copies from local paths (`aws s3 cp x s3://…`, `gsutil cp`, `gcloud
//! storage cp`, `azcopy`, `az storage blob upload`), and file-transfer tools (`croc send`,
//! `wormhole send`). Requests to this machine (`localhost`, `127.0.0.1`, `::1`) are let
//! through: that is how a local inference server is tested. Hub uploads have their own rules
//! (`http`, `hf`, `git`) and the sanctioned `mlres hub files upload`.

use crate::shell::{Analyzer, Arg, DYN, R, Stdin};

/// The reason, naming the sanctioned ways.
pub(crate) fn reason(what: &str, to: &str) -> String {
    format!(
        "refused: {what} sends local data to {to}. Files leave this machine through mlres \
         (`mlres hub files upload --repo <approved output repo> <path>`) or the user; ask them \
         if something must be copied elsewhere"
    )
}

/// The host of a URL or `[user@]host[:port]` word, lower case, without brackets.
pub(crate) fn url_host(s: &str) -> Option<String> {
    let t = s.trim();
    let rest = match t.split_once("://") {
        Some((scheme, r))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+') =>
        {
            r
        }
        _ => t,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// This machine: `localhost`, loopback addresses, `0.0.0.0`.
pub(crate) fn is_local_host(h: &str) -> bool {
    h == "localhost"
        || h.ends_with(".localhost")
        || h.starts_with("127.")
        || h == "::1"
        || h == "0.0.0.0"
        || h == "0"
}

/// The hosts an HTTP client's words name (URLs, or bare `host/path` operands), and whether
/// one is computed at run time.
fn request_hosts(rest: &[Arg], with_val: &[&str]) -> (Vec<String>, bool) {
    let mut hosts = Vec::new();
    let mut dynamic = false;
    let mut skip = false;
    for a in rest {
        if skip {
            skip = false;
            continue;
        }
        if a.is_opt() {
            skip = with_val.contains(&a.s());
            continue;
        }
        let s = a.s();
        let urlish = s.contains("://")
            || s.starts_with("localhost")
            || s.split(['/', ':']).next().is_some_and(|h| {
                h.contains('.') && !h.starts_with('.') && !s.contains('=') && !s.contains('@')
            });
        if !urlish {
            continue;
        }
        if a.dynamic && s.trim_matches(DYN).is_empty() {
            dynamic = true;
            continue;
        }
        if let Some(h) = url_host(&s.replace(DYN, "")) {
            if a.dynamic
                && s.find(DYN)
                    .is_some_and(|i| !s[..i].contains('/') || s[..i].ends_with("://"))
            {
                dynamic = true;
            }
            hosts.push(h);
        }
    }
    (hosts, dynamic)
}

/// Where an upload goes: `None` when every host it names is this machine.
fn remote_target(hosts: &[String], dynamic: bool) -> Option<String> {
    if dynamic {
        return Some("a host computed at run time".into());
    }
    if hosts.is_empty() {
        return Some("an unnamed host".into());
    }
    hosts
        .iter()
        .find(|h| !is_local_host(h))
        .map(|h| format!("`{h}`"))
}

/// HTTP clients: the local file or standard input a request would send, if any.
pub(super) fn http_upload(prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    let mut sends: Option<String> = None;
    let piped = matches!(stdin, Stdin::Pipe | Stdin::File | Stdin::Text { .. });
    for (i, a) in rest.iter().enumerate() {
        let s = a.s();
        let next = rest.get(i + 1).map(|n| n.s()).unwrap_or("");
        let what = match prog {
            "curl" | "curlie" => curl_sends(s, next),
            "wget" | "wget2" => wget_sends(s, next),
            "http" | "https" | "httpie" | "xh" | "xhs" => httpie_sends(s),
            _ => None,
        };
        if let Some(w) = what {
            if w == "-" && !piped {
                continue;
            }
            sends = Some(if w == "-" {
                "standard input".to_string()
            } else {
                format!("`{w}`")
            });
            break;
        }
    }
    // A body computed by a command substitution (`-d "$(cat data.jsonl)"`) carries whatever
    // that command read.
    if sends.is_none()
        && rest
            .iter()
            .enumerate()
            .any(|(i, a)| computed_body(prog, rest, i, a))
    {
        sends = Some("the output of a command substitution".into());
    }
    // httpie and xh send what they read on standard input as the body.
    if sends.is_none()
        && matches!(prog, "http" | "https" | "httpie" | "xh" | "xhs")
        && matches!(stdin, Stdin::Pipe | Stdin::File)
        && rest
            .iter()
            .all(|a| a.s() != "--ignore-stdin" && a.s() != "-I")
    {
        sends = Some("standard input".into());
    }
    let Some(file) = sends else { return Ok(()) };
    let with_val = [
        "-o",
        "-O",
        "--output",
        "-H",
        "--header",
        "-X",
        "--request",
        "-F",
        "--form",
        "-d",
        "--data",
        "--data-binary",
        "--data-raw",
        "--data-urlencode",
        "-T",
        "--upload-file",
        "-u",
        "--user",
        "-A",
        "--user-agent",
        "-e",
        "--referer",
        "-b",
        "--cookie",
        "-c",
        "--cookie-jar",
        "-m",
        "--max-time",
        "--json",
        "-w",
        "--write-out",
        "--post-file",
        "--body-file",
        "--header",
        "-a",
        "--auth",
    ];
    let (hosts, dynamic) = request_hosts(rest, &with_val);
    if let Some(to) = remote_target(&hosts, dynamic) {
        return Err(reason(&format!("`{prog}` uploading {file}"), &to));
    }
    Ok(())
}

/// Whether argument `i` is (or holds) a request body computed by a command substitution.
fn computed_body(prog: &str, rest: &[Arg], i: usize, a: &Arg) -> bool {
    const BODY: &[&str] = &[
        "-d",
        "--data",
        "--data-binary",
        "--data-raw",
        "--data-ascii",
        "--data-urlencode",
        "--json",
        "-F",
        "--form",
        "--post-data",
        "--body-data",
        "--raw",
    ];
    let s = a.s();
    let attached = s.split_once('=').is_some_and(|(f, _)| BODY.contains(&f))
        || (s.len() > 2 && (s.starts_with("-d") || s.starts_with("-F")) && !s.starts_with("--"));
    let httpie_field = matches!(prog, "http" | "https" | "httpie" | "xh" | "xhs")
        && !a.is_opt()
        && s.contains('=');
    let value = if BODY.contains(&s) {
        rest.get(i + 1)
    } else if attached || httpie_field {
        Some(a)
    } else {
        None
    };
    value.is_some_and(|v| !v.subs.is_empty())
}

/// curl: `-F name=@file`, `-F 'name=<file'`, `-T file`, `-d @file`, `--data-binary @file`,
/// `--data-urlencode name@file`, `--json @file`.
fn curl_sends(s: &str, next: &str) -> Option<String> {
    let (flag, val) = if let Some((f, v)) = s.split_once('=').filter(|(f, _)| f.starts_with("--")) {
        (f, v)
    } else if s.len() > 2
        && !s.starts_with("--")
        && s.starts_with('-')
        && matches!(&s[..2], "-F" | "-T" | "-d")
    {
        (&s[..2], &s[2..])
    } else {
        (s, next)
    };
    match flag {
        "-F" | "--form" | "--form-string" => {
            if flag == "--form-string" {
                return None;
            }
            let v = val.split_once('=').map(|(_, v)| v).unwrap_or(val);
            let v = v.split(';').next().unwrap_or(v);
            v.strip_prefix('@')
                .or_else(|| v.strip_prefix('<'))
                .map(str::to_string)
        }
        "-T" | "--upload-file" => Some(val.to_string()),
        "-d" | "--data" | "--data-binary" | "--data-ascii" | "--json" => {
            val.strip_prefix('@').map(str::to_string)
        }
        "--data-urlencode" => val
            .split_once('@')
            .filter(|(name, _)| !name.contains('='))
            .map(|(_, f)| f.to_string()),
        _ => None,
    }
}

/// wget: `--post-file=F`, `--body-file=F`.
fn wget_sends(s: &str, next: &str) -> Option<String> {
    for f in ["--post-file", "--body-file"] {
        if s == f {
            return Some(next.to_string());
        }
        if let Some(v) = s.strip_prefix(f).and_then(|r| r.strip_prefix('=')) {
            return Some(v.to_string());
        }
    }
    None
}

/// httpie/xh: `field@file`, `field=@file`, `field:=@file`, `@file` (the raw body).
fn httpie_sends(s: &str) -> Option<String> {
    if s.starts_with('-') || s.contains("://") {
        return None;
    }
    if let Some(f) = s.strip_prefix('@') {
        return Some(f.to_string());
    }
    for sep in [":=@", "=@"] {
        if let Some((_, f)) = s.split_once(sep) {
            return Some(f.to_string());
        }
    }
    let (name, f) = s.split_once('@')?;
    let field = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '[' | ']'));
    (field && !f.is_empty() && !f.contains(':')).then(|| f.to_string())
}

/// A `[user@]host:path` (or `rsync://`, `host::module`) operand of `scp`/`rsync`, or an
/// rclone `remote:path`.
fn is_remote_operand(s: &str) -> bool {
    if s.starts_with("rsync://") || s.starts_with("scp://") || s.starts_with("sftp://") {
        return true;
    }
    match s.split_once(':') {
        Some((host, _)) => !host.is_empty() && !host.contains('/'),
        None => false,
    }
}

/// `scp`, `rsync`, `rclone`: local operands copied to a remote one.
pub(super) fn remote_copy(prog: &str, positionals: &[&Arg]) -> R {
    let ops: Vec<&Arg> = if prog == "rclone" {
        match positionals.first().map(|a| a.s()) {
            Some(
                "copy" | "sync" | "move" | "copyto" | "moveto" | "bisync" | "rcat" | "copyurl",
            ) => positionals[1..].to_vec(),
            _ => return Ok(()),
        }
    } else {
        positionals.to_vec()
    };
    let Some((dest, sources)) = ops.split_last() else {
        return Ok(());
    };
    let dest_remote = dest.dynamic || is_remote_operand(dest.s());
    let local_source = sources.iter().find(|a| !is_remote_operand(a.s()));
    if dest_remote && let Some(src) = local_source {
        let to = url_host(dest.s().split(':').next().unwrap_or(""))
            .map(|h| format!("`{h}`"))
            .unwrap_or_else(|| "another machine".into());
        if dest
            .s()
            .split(':')
            .next()
            .and_then(url_host)
            .is_some_and(|h| is_local_host(&h))
        {
            return Ok(());
        }
        return Err(reason(
            &format!("`{prog}` copying `{}`", src.s().replace(DYN, "…")),
            &to,
        ));
    }
    Ok(())
}

/// `nc`/`ncat`/`netcat`/`telnet HOST PORT` fed a file or a pipe, or told to run a program.
pub(super) fn netcat(_an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    if rest
        .iter()
        .any(|a| a.s() == "-l" || a.s() == "--listen" || a.s() == "-z")
    {
        return Ok(());
    }
    let exec = rest
        .iter()
        .any(|a| matches!(a.s(), "-e" | "-c" | "--exec" | "--sh-exec" | "--lua-exec"));
    let fed = matches!(stdin, Stdin::File | Stdin::Pipe | Stdin::Text { .. });
    if !(exec || fed) {
        return Ok(());
    }
    let host = rest
        .iter()
        .filter(|a| !a.is_opt())
        .find(|a| !a.s().chars().all(|c| c.is_ascii_digit()));
    let h = host.and_then(|a| url_host(a.s()));
    if !exec && h.as_deref().is_some_and(is_local_host) {
        return Ok(());
    }
    let to = h
        .map(|h| format!("`{h}`"))
        .unwrap_or_else(|| "another machine".into());
    if exec {
        return Err(reason(
            &format!("`{prog} -e`, a program wired to a socket,"),
            &to,
        ));
    }
    Err(reason(&format!("`{prog}` fed a file or a pipe"), &to))
}

/// `socat`: a file, standard input or a program wired to a network address off this machine.
pub(super) fn socat_upload(addrs: &[&Arg], stdin: &Stdin) -> R {
    let lower: Vec<String> = addrs.iter().map(|a| a.s().to_ascii_lowercase()).collect();
    let kind = |a: &str| a.split([':', ',']).next().unwrap_or("").to_string();
    let data_src = lower.iter().any(|a| {
        let k = kind(a);
        matches!(
            k.as_str(),
            "file" | "open" | "gopen" | "create" | "exec" | "system" | "stdin" | "stdio"
        ) || (a == "-" && matches!(stdin, Stdin::File | Stdin::Pipe | Stdin::Text { .. }))
    });
    if !data_src {
        return Ok(());
    }
    for a in &lower {
        let k = kind(a);
        let net = matches!(
            k.as_str(),
            "tcp"
                | "tcp4"
                | "tcp6"
                | "udp"
                | "udp4"
                | "udp6"
                | "openssl"
                | "ssl"
                | "sctp"
                | "socks4"
                | "socks4a"
                | "socks5"
                | "proxy"
        );
        if net {
            let host = a.split(':').nth(1).unwrap_or("");
            if is_local_host(host) {
                continue;
            }
            return Err(reason(
                "`socat` wiring a file, a pipe or a program",
                &format!("`{host}`"),
            ));
        }
    }
    Ok(())
}

/// `aws s3 cp|sync|mv`, `gsutil cp|rsync|mv`, `gcloud storage cp|rsync|mv`, `azcopy copy|sync`,
/// `az storage blob upload…`, `croc send`, `wormhole send`: local paths to the cloud or to
/// another person.
pub(super) fn cloud_copy(_an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], _stdin: &Stdin) -> R {
    let pos: Vec<&str> = rest.iter().filter(|a| !a.is_opt()).map(|a| a.s()).collect();
    let remote = |s: &str| s.contains("://");
    let copies = |from: usize| {
        let ops = pos.get(from..).unwrap_or(&[]);
        match ops.split_last() {
            Some((dest, srcs)) => remote(dest) && srcs.iter().any(|s| !remote(s)),
            None => false,
        }
    };
    let (upload, what) = match prog {
        "aws" => (
            pos.first() == Some(&"s3")
                && matches!(pos.get(1), Some(&("cp" | "sync" | "mv")))
                && copies(2),
            "aws s3",
        ),
        "gsutil" => (
            matches!(pos.first(), Some(&("cp" | "rsync" | "mv"))) && copies(1),
            "gsutil",
        ),
        "gcloud" => (
            pos.first() == Some(&"storage")
                && matches!(pos.get(1), Some(&("cp" | "rsync" | "mv")))
                && copies(2),
            "gcloud storage",
        ),
        "azcopy" => (
            matches!(pos.first(), Some(&("copy" | "cp" | "sync"))) && copies(1),
            "azcopy",
        ),
        "az" => (
            pos.first() == Some(&"storage") && pos.iter().any(|p| p.starts_with("upload")),
            "az storage",
        ),
        "croc" | "wormhole" | "magic-wormhole" | "ffsend" => {
            (matches!(pos.first(), Some(&("send" | "upload"))), prog)
        }
        _ => (false, prog),
    };
    if upload {
        return Err(reason(
            &format!("`{what}` copying local files"),
            "remote storage",
        ));
    }
    Ok(())
}

/// `sftp`: a batch file (`-b`) or commands fed on standard input can `put` local files.
pub(super) fn sftp(_an: &mut Analyzer<'_>, prog: &str, rest: &[Arg], stdin: &Stdin) -> R {
    let batch = rest
        .iter()
        .any(|a| a.s() == "-b" || a.s().starts_with("-b"));
    let fed = match stdin {
        Stdin::Text { body, .. } => body.contains("put"),
        Stdin::File | Stdin::Pipe => true,
        Stdin::Tty => false,
    };
    if batch || fed {
        return Err(reason(
            &format!("`{prog}` running batch commands"),
            "another machine",
        ));
    }
    Ok(())
}
