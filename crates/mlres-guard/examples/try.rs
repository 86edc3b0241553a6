fn main() {
    let ctx = mlres_guard::GuardContext {
        project_dir: Some("/home/user/proj".into()), home: Some("/home/user".into()),
        state_dir: "/home/user/.local/state/mlres".into(),
        plugin_dir: Some("/home/user/.claude/plugins/cache/mlres".into()),
        claude_config_dir: Some("/home/user/.claude".into()),
    };
    for l in std::io::read_to_string(std::io::stdin()).unwrap().split("\n---\n") {
        if l.trim().is_empty() { continue; }
        let j = serde_json::json!({"tool_name":"Bash","cwd":"/home/user/proj","tool_input":{"command":l}}).to_string();
        let s = match mlres_guard::decide(&j, &ctx) { mlres_guard::Verdict::Deny{reason} => format!("DENY {}", reason.chars().take(140).collect::<String>()), o => format!("{o:?}") };
        println!("{:<60} => {}", l.replace('\n', "⏎").chars().take(60).collect::<String>(), s);
    }
}
