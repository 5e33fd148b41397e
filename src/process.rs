//! The process around the node: logging, the runtime, and the stop signal.

/// Logs to stderr, filtered by `level` (a tracing directive such as `info` or
/// `m2m_connector=debug`); falls back to `info` with a warning when the directive is invalid.
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|error| {
        eprintln!("LOG_LEVEL {level:?} is not a valid filter ({error}); using info");
        tracing_subscriber::EnvFilter::new("info")
    });
    use std::io::IsTerminal;
    // Colour only on a terminal: log files and collectors get plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Keeps this process's memory on ordinary 4 KiB pages: no transparent huge pages (Linux
/// `PR_SET_THP_DISABLE`), unless `MIMALLOC_ALLOW_THP` is set, which then decides as mimalloc
/// documents it. Call first thing in `main`.
///
/// mimalloc asks for huge pages on its arenas (`madvise(MADV_HUGEPAGE)`), and the first touch of
/// a fresh one zeroes all 2 MiB of it inside the thread that touched it. The node keeps touching
/// fresh memory (sled's page cache and log buffers fill, batches live until the last projection
/// drops them), and the journal writer, the one thread every Fulfill waits for, spent 12-17 % of
/// its time in those zeroings at W=256 (`perf`, BENCHMARKS.md, "thirteenth session"); with 4 KiB
/// pages, page faults are ~1.5 % of it. A failure (an old kernel) leaves things as they were.
pub fn disable_transparent_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some_and(|value| !value.is_empty()) {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with integer arguments only; it changes a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong);
    }
}

/// The tokio runtime the node runs on: one worker per core. The forwarder and the journal
/// writer run on their own threads beside it.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("m2m-worker").build()
}

/// Resolves on SIGINT or SIGTERM (Kubernetes stops pods with SIGTERM).
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = match signal(SignalKind::terminate()) {
            Ok(terminate) => terminate,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
