//! `mlres-fakehf [--config FILE.json] [--port N]`: serve the fake until killed. The first
//! stdout line is `listening on http://127.0.0.1:PORT`.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut config = mlres_fakehf::FakeConfig::default();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--config" if i + 1 < args.len() => {
                let text = match std::fs::read_to_string(&args[i + 1]) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("mlres-fakehf: cannot read {}: {e}", args[i + 1]);
                        std::process::exit(2);
                    }
                };
                config = match serde_json::from_str(&text) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("mlres-fakehf: bad config: {e}");
                        std::process::exit(2);
                    }
                };
                i += 2;
            }
            "--port" if i + 1 < args.len() => {
                config.port = args[i + 1].parse().unwrap_or(0);
                i += 2;
            }
            other => {
                eprintln!(
                    "mlres-fakehf: unknown argument {other:?}; usage: mlres-fakehf [--config FILE.json] [--port N]"
                );
                std::process::exit(2);
            }
        }
    }
    let fake = match mlres_fakehf::FakeHf::start(config) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mlres-fakehf: cannot start: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on {}", fake.url());
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}
