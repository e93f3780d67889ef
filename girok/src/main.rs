//! The `girok` binary. Its allocator is mimalloc: the read paths allocate many small, short-lived
//! objects per request (JSON values, GraphQL field results), where glibc's malloc took about a
//! sixth of the server's CPU under read load.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    girok::cli::main()
}
