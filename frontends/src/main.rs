//! The `girok` binary.

fn main() -> std::process::ExitCode {
    girok_frontends::cli::main()
}
