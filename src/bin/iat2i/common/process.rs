//! How the examples that run CLIP start: allocator tuning, then the async runtime.

use std::future::Future;
use std::process::ExitCode;

/// Run `main` on a multi-threaded Tokio runtime, after capping glibc's malloc arenas (which
/// must happen before any thread starts). A runtime that cannot start is a failure exit
/// with the reason on stderr.
pub fn run<F: Future<Output = ExitCode>>(main: impl FnOnce() -> F) -> ExitCode {
    limit_malloc_arenas();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(main()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Cap glibc's malloc arenas at one per core (glibc's default is eight per core). ONNX
/// Runtime, the decode pool and the async runtime allocate from many threads; with an arena
/// each, freed memory stays spread over arenas it cannot be reused from. On the selection
/// benchmark this holds about 100 MiB less at the peak at no measurable cost in speed. An
/// application embedding the library can do the same, or set `MALLOC_ARENA_MAX`.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return; // the user's choice wins
        }
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only changes allocator parameters; `run` calls it before the
        // runtime starts any thread, and an unsupported value only makes it return 0.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
