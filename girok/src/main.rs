//! The `girok` binary. Its allocator is mimalloc: the read paths allocate many small, short-lived
//! objects per request (JSON values, GraphQL field results), where glibc's malloc took about a
//! sixth of the server's CPU under read load. The `system-allocator` feature keeps the system's
//! malloc, for heap profilers that hook it.
//!
//! mimalloc is built without transparent huge pages (`no_thp`) and told to return freed pages
//! to the system at once rather than a second later: with both defaults a server held 60 %
//! more anonymous memory after a start (pages a start's batches had freed, and 2 MiB huge pages
//! a few live objects kept whole), and after a million and a half writes nearly twice the live
//! heap (README, "The allocator").

#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    #[cfg(not(feature = "system-allocator"))]
    purge_freed_pages_at_once();
    girok::cli::main()
}

/// Sets mimalloc's purge delay to 0, unless the operator chose one (`MIMALLOC_PURGE_DELAY`,
/// which mimalloc reads when the process loads).
#[cfg(not(feature = "system-allocator"))]
#[allow(unsafe_code)]
fn purge_freed_pages_at_once() {
    /// `mi_option_purge_delay` in mimalloc.h's `mi_option_t` (the same in its v2 and v3; the
    /// sys crate does not name it).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: an FFI call with plain integers; mimalloc's options are not synchronized,
        // and this runs first in `main`, before any other thread exists.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
    }
}
