fn main() -> std::process::ExitCode {
    mlres::run()
}
