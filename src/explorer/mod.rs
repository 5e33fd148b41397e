//! The Explorer: a read-only dashboard, history API and live stream, and one more projection of
//! the journal.
//!
//! ```text
//!  journal (durable batches) ──► projections::runner ──► ExplorerIndex (thread "projection-explorer")
//!                                                          │ sled trees beside the journal:
//!                                                          │ by packet, peer, code, kind, second
//!                                                          │ Live: recent windows, sessions,
//!                                                          │ the next live frame (counts +
//!                                                          │ sample); its accounts view is
//!                                                          │ kept by the `balances` projection
//!                                                          │ (live::AccountsWatcher)
//!                                                          ▼
//!  browser ◄── HTTP/WS (axum, EXPLORER_PORT) ◄── api: /api/* read the index and the journal;
//!                                                 /ws gets at most 10 aggregated frames a second
//! ```
//!
//! Nothing here is on the packet path: the index is fed by the projection runner like the
//! TigerBeetle mirror, runs at the lowest CPU priority, and falls behind rather than slow the
//! forwarder (its lag is the `projection_lag_events{projection="explorer"}` gauge and is in
//! `/api/health`). The live stream is built from what the index applied, so a stuck browser
//! costs one bounded broadcast slot, never the journal.

pub mod api;
pub mod assets;
pub mod index;
pub mod live;
pub mod query;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::health::Health;
use crate::journal::{JournalStatus, SledStore};

/// What a running Explorer hands back to the node.
pub struct Explorer {
    pub address: SocketAddr,
    pub tasks: Vec<JoinHandle<()>>,
    pub index_thread: std::thread::JoinHandle<()>,
}

/// Opens (or rebuilds) the index, starts its projection thread, the frame ticker and the HTTP
/// server. `start_seq` is the journal's durable head when this run started: counts "since
/// start" cover the events after it, like the node's `/metrics`.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    config: &Config,
    live: Arc<live::Live>,
    store: SledStore,
    journal: Arc<JournalStatus>,
    routes: crate::pipeline::routes::RoutesPublished,
    health: Arc<Health>,
    stopping: Arc<AtomicBool>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Explorer> {
    let settings = &config.explorer;
    let listener = TcpListener::bind(settings.bind).await.with_context(|| {
        format!(
            "cannot listen for the Explorer on {} (EXPLORER_PORT, EXPLORER_BIND_HOST; EXPLORER_ENABLED=false turns it off)",
            settings.bind
        )
    })?;
    let address = listener.local_addr()?;
    let index = {
        let (dir, store, live) = (settings.index_dir.clone(), store.clone(), live.clone());
        tokio::task::spawn_blocking(move || index::ExplorerIndex::open(&dir, &store, live))
            .await
            .context("the Explorer index task failed")??
    };
    let reader = index.reader();
    let index_priority = index.thread();
    let checkpoint_every = config.journal.snapshot_every;
    let handle = crate::projections::runner::spawn(
        index,
        store.clone(),
        journal.clone(),
        crate::projections::runner::RunnerConfig { checkpoint_every_events: checkpoint_every },
        stopping,
    )?;
    let index_thread = std::thread::Builder::new().name("explorer-join".into()).spawn(move || {
        if let Ok(index) = handle.join() {
            index.close();
        }
    })?;
    let frames = live::Streams::new();
    let state = api::ApiState {
        live: live.clone(),
        index: reader,
        store,
        journal,
        health,
        token: settings.token.clone(),
        frames: frames.clone(),
        node_id: config.node.id.clone(),
        routes,
        shutdown: shutdown.clone(),
        index_priority: index_priority.clone(),
    };
    // The server and the frame ticker run on a runtime of their own, on one thread at nice
    // [`SERVER_NICE`]: they lock the live state, which the index (at SCHED_IDLE) holds while it
    // applies a batch, and a task waiting there must never hold one of the packet path's
    // runtime workers (its BTP sessions) behind a thread that gets no CPU.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("explorer-blocking")
        .on_thread_start(|| lower_priority(SERVER_NICE))
        .build()
        .context("cannot start the Explorer's runtime")?;
    let listener = listener.into_std().context("the Explorer's listener")?;
    let watchdog = watch_index(index_priority.clone(), live.clone(), state.journal.clone(), shutdown.clone());
    let ticker = live::tick(live, frames, shutdown.clone());
    let mut stopped = shutdown;
    let server = std::thread::Builder::new().name("explorer-http".into()).spawn(move || {
        lower_priority(SERVER_NICE);
        runtime.block_on(async move {
            let ticker = tokio::spawn(ticker);
            let watchdog = tokio::spawn(watchdog);
            let router = api::router(state);
            use axum::serve::ListenerExt;
            let listener = match TcpListener::from_std(listener) {
                Ok(listener) => listener.tap_io(api::bound_send_buffer),
                Err(error) => {
                    crate::internal_events::emit(crate::internal_events::ServerFailed { server: "Explorer", error: &error });
                    return;
                }
            };
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = stopped.changed().await;
            });
            if let Err(error) = serve.await {
                crate::internal_events::emit(crate::internal_events::ServerFailed { server: "Explorer", error: &error });
            }
            let _ = ticker.await;
            let _ = watchdog.await;
        });
    })?;
    // The node awaits its tasks at a stop; this one ends when the server's thread does.
    let tasks = vec![tokio::spawn(async move {
        let _ = tokio::task::spawn_blocking(move || server.join()).await;
    })];
    tracing::info!(url = %format!("http://{address}/"), index = %settings.index_dir.display(), "Explorer listening");
    Ok(Explorer { address, tasks, index_thread })
}

/// Every second: when the index lags and has applied nothing for [`index::STARVED_AFTER`], raises
/// it from SCHED_IDLE to nice 19, and lowers it again once it caught up (see
/// [`index::IndexThread`]). Says so in the log either way, once per episode.
async fn watch_index(thread: Arc<index::IndexThread>, live: Arc<live::Live>, journal: Arc<JournalStatus>, mut shutdown: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last = (live.lock().position(), tokio::time::Instant::now());
    let mut refused = false;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => return,
        }
        let position = live.lock().position();
        let durable = journal.durable_seq.load(std::sync::atomic::Ordering::Acquire);
        let lag = durable.saturating_sub(position);
        if position != last.0 {
            last = (position, tokio::time::Instant::now());
            refused = false;
        }
        match index::priority_change(thread.raised(), lag, last.1.elapsed()) {
            Some(index::PriorityChange::Raise) => match thread.raise() {
                Ok(()) => tracing::warn!(
                    lag_events = lag,
                    "the Explorer index applied nothing for {} s while behind the journal (it runs at SCHED_IDLE and the cores are busy): raised to nice 19 until it catches up",
                    index::STARVED_AFTER.as_secs()
                ),
                Err(error) if !refused => {
                    refused = true;
                    tracing::warn!(
                        lag_events = lag,
                        %error,
                        "the Explorer index applied nothing for {} s while behind the journal (it runs at SCHED_IDLE and the cores are busy), and could not be raised to nice 19 (that needs CAP_SYS_NICE or an RLIMIT_NICE of 1 or more): the Explorer's history and live view stay behind until the node has idle CPU",
                        index::STARVED_AFTER.as_secs()
                    );
                }
                Err(_) => {}
            },
            Some(index::PriorityChange::Lower) => match thread.lower() {
                Ok(()) => tracing::info!(lag_events = lag, "the Explorer index caught up: back to SCHED_IDLE"),
                Err(error) => tracing::warn!(%error, "could not return the Explorer index to SCHED_IDLE"),
            },
            None => {}
        }
    }
}

/// The nice value of the Explorer's server thread (and its blocking pool, which runs history
/// queries): under full load the dashboard's requests and frames wait for the packet path,
/// never the other way round; with room on the cores they run at once.
const SERVER_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to `nice` (Linux applies it to one thread when given
/// its thread id). Failure only leaves the priority as it was.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: a plain syscall on the calling thread's id; no pointers.
        let done = unsafe {
            let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, thread, nice) == 0
        };
        if !done {
            tracing::debug!(nice, "could not lower the Explorer server thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}
