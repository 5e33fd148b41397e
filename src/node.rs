//! A running connector: the HTTP server, the pipeline, the BTP listener and outgoing links,
//! started in that order so `/health` can report each step, and stopped in reverse.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::btp::client::{self, OutgoingPeer};
use crate::btp::server::{self, IncomingPeer, ServerConfig};
use crate::btp::session::SessionContext;
use crate::config::Config;
use crate::http::{self, health::{ComponentStatus, Health}};
use crate::projections::runner::{self, RunnerConfig};
use crate::ilp::packet::ParseOptions;
use crate::journal::SledStore;
use crate::pipeline::Pipeline;

pub struct Node {
    pub btp_address: SocketAddr,
    pub health_address: SocketAddr,
    /// Where the Explorer listens (None with `EXPLORER_ENABLED=false`).
    pub explorer_address: Option<SocketAddr>,
    pub health: Arc<Health>,
    pub journal: SledStore,
    shutdown: watch::Sender<bool>,
    pipeline: Option<Pipeline>,
    tasks: Vec<JoinHandle<()>>,
    projections_stopping: Arc<std::sync::atomic::AtomicBool>,
    projection_threads: Vec<std::thread::JoinHandle<()>>,
    sessions: Arc<SessionContext>,
    drain_time_max: Duration,
}

impl Node {
    /// Starts every part of the node; fails with a message naming the part that could not start.
    pub async fn start(config: Config) -> anyhow::Result<Node> {
        check_ledger_build(&config)?;
        let version = env!("CARGO_PKG_VERSION");
        let health = Arc::new(Health::new(
            &config.node.id,
            version,
            u32::try_from(config.peers.len()).unwrap_or(u32::MAX),
            u32::try_from(config.node.ready_peers_min).unwrap_or(u32::MAX),
        ));
        crate::metrics::global().set_info(version, &config.node.id);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let http_listener = TcpListener::bind(config.node.health_bind)
            .await
            .with_context(|| format!("cannot listen for HTTP on {} (HEALTH_PORT)", config.node.health_bind))?;
        let health_address = http_listener.local_addr()?;
        let admin = http::admin::AdminState::new(config.node.admin_token.clone());
        let http_state = http::HttpState::new(health.clone(), crate::metrics::global()).with_admin(admin.clone());
        let mut http_shutdown = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let stopped = async move {
                let _ = http_shutdown.changed().await;
            };
            if let Err(error) = http::serve(http_listener, http_state, stopped).await {
                crate::internal_events::emit(crate::internal_events::ServerFailed { server: "health and metrics HTTP", error: &error });
            }
        }));

        let evm = crate::settlement::evm::setup(&config).context("settlement")?;
        let (settlement_link, settlement_executor) = match evm {
            Some(setup) => (Some(setup.link), Some((setup.jobs, setup.executor))),
            None => (None, None),
        };
        health.set_recovery_done(false);
        let pipeline = {
            let (config, health) = (config.clone(), health.clone());
            tokio::task::spawn_blocking(move || Pipeline::start(&config, health, settlement_link))
                .await
                .context("the start-up task failed")??
        };
        health.set_recovery_done(true);
        admin.attach(pipeline.replies.clone());
        let context = Arc::new(SessionContext {
            node_address: config.node.ilp_address.clone(),
            prepares: pipeline.prepares.clone(),
            replies: pipeline.replies.clone(),
            in_flight_max: config.node.btp_session_in_flight_max,
            parse_options: ParseOptions { trailing_bytes_allowed: config.node.ilp_trailing_bytes_allowed },
            next_session_id: AtomicU64::new(1),
            shutdown: shutdown_rx.clone(),
            draining: std::sync::atomic::AtomicBool::new(false),
            owed: std::sync::Mutex::default(),
        });
        let websocket = server::websocket_config(config.node.btp_message_size_max);

        let btp_listener = TcpListener::bind(config.node.btp_bind)
            .await
            .with_context(|| format!("cannot listen for BTP on {} (BTP_PORT)", config.node.btp_bind))?;
        let btp_address = btp_listener.local_addr()?;
        let server_config = Arc::new(ServerConfig {
            peers: incoming_peers(&config),
            auth_timeout: Duration::from_millis(config.node.btp_auth_timeout_ms),
            websocket,
            max_sessions_per_peer: config.node.max_sessions_per_peer,
        });
        tasks.push(tokio::spawn(server::serve(btp_listener, server_config, context.clone())));
        health.set_btp_listening(true);

        for peer in outgoing_peers(&config) {
            tracing::info!(peer = %peer.id, url = %peer.url, "dialing peer");
            tasks.push(tokio::spawn(client::maintain(peer, websocket, context.clone())));
        }
        if let Some((jobs, mut executor)) = settlement_executor {
            let recovered = &pipeline.settlement_recovered;
            executor.resume_block = recovered.resume_block();
            executor.known_channels = recovered.channels().filter_map(|(id, _)| id.parse().ok()).collect();
            let replies = pipeline.replies.clone();
            tasks.extend(crate::settlement::evm::executor::spawn(executor, jobs, Arc::new(replies), health.clone(), shutdown_rx.clone()));
        }
        if !config.rate_feeds.is_empty() {
            let queue: Arc<dyn crate::rates::RatesQueue> = Arc::new(pipeline.replies.clone());
            for source in &config.rate_feeds {
                tracing::info!(feed = ?source.kind, max_age_ms = source.max_age_ms, "reading exchange rates from a feed");
            }
            tasks.extend(crate::rates::spawn(crate::rates::sources(&config.rate_feeds), queue, shutdown_rx.clone()));
        }
        let journal = pipeline.journal_store.clone();
        tasks.push(crate::journal::retention::spawn(
            journal.clone(),
            config.journal.retention,
            config.journal.archive_dir.clone(),
            crate::projections::balances::Balances::check_snapshot,
            shutdown_rx.clone(),
        ));
        health.set_component("journal", ComponentStatus::Ok);
        crate::metrics::global().set_journal_fsync_enabled(config.journal.durable);
        let projections_stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The Explorer's live state: its accounts are kept by the `balances` projection.
        let live = config.explorer.enabled.then(|| Arc::new(crate::explorer::live::Live::new(&config)));
        let mut projection_threads = start_projections(&config, &pipeline, &health, live.clone(), projections_stopping.clone())?;
        let explorer_address = if let Some(live) = live {
            let explorer = crate::explorer::start(
                &config,
                live,
                journal.clone(),
                pipeline.journal_status.clone(),
                pipeline.routes.clone(),
                health.clone(),
                projections_stopping.clone(),
                shutdown_rx.clone(),
            )
            .await
            .context("Explorer")?;
            tasks.extend(explorer.tasks);
            projection_threads.push(explorer.index_thread);
            Some(explorer.address)
        } else {
            None
        };
        tracing::info!(
            node = %config.node.id,
            address = %config.node.ilp_address,
            btp = %btp_address,
            http = %health_address,
            peers = config.peers.len(),
            journal = %config.journal.dir.display(),
            "{}",
            if config.tigerbeetle.replicas.is_empty() {
                "connector started (ledger: journal-derived balances; no TIGERBEETLE_REPLICAS set)"
            } else {
                "connector started (ledger: journal-derived balances, mirrored to TigerBeetle)"
            }
        );
        Ok(Node {
            btp_address,
            health_address,
            explorer_address,
            health,
            journal,
            shutdown,
            pipeline: Some(pipeline),
            tasks,
            projections_stopping,
            projection_threads,
            sessions: context,
            drain_time_max: Duration::from_millis(config.node.max_hold_time_ms),
        })
    }

    /// Stops taking Prepares and waits (at most `max_hold_time_ms`) for the packets in flight
    /// to end, so replies already on their way from downstream are not thrown away.
    async fn drain(&self) {
        let Some(pipeline) = self.pipeline.as_ref() else { return };
        self.sessions.draining.store(true, std::sync::atomic::Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + self.drain_time_max;
        let mut logged = false;
        while pipeline.in_flight.load(std::sync::atomic::Ordering::Acquire) > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("stopping with packets still in flight after waiting {:?}", self.drain_time_max);
                break;
            }
            if !logged {
                tracing::info!("draining: waiting for packets in flight to end");
                logged = true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The forwarder is done with every packet, but its last answers can still be on their
        // way to the sockets (held for the journal's fsync, or queued for a writer): closing the
        // sessions now would turn a settled Fulfill into an undelivered one. They take
        // milliseconds; a writer stuck on a peer that stopped reading gets two seconds.
        let deadline = deadline.min(tokio::time::Instant::now() + Duration::from_secs(2));
        while self.sessions.replies_owed() > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(owed = self.sessions.replies_owed(), "stopping with answers not yet written to their peers");
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The routing table as the forwarder last published it (configured and learned routes).
    pub fn routes(&self) -> Arc<crate::pipeline::routes::RoutesView> {
        self.pipeline.as_ref().map(|pipeline| pipeline.routes.load_full()).unwrap_or_default()
    }

    /// Sequence number of the last journal event known to be on disk.
    pub fn durable_seq(&self) -> u64 {
        self.pipeline.as_ref().map_or(0, |pipeline| {
            pipeline.journal_status.durable_seq.load(std::sync::atomic::Ordering::Acquire)
        })
    }

    /// Sequence number of the last event the forwarder appended (durable once
    /// [`Node::durable_seq`] reaches it).
    pub fn journal_head(&self) -> u64 {
        self.pipeline.as_ref().map_or(0, |pipeline| pipeline.journal_head.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Waits until every event the forwarder appended so far is durable (false after `timeout`).
    pub async fn wait_durable(&self, timeout: Duration) -> bool {
        let head = self.journal_head();
        let deadline = tokio::time::Instant::now() + timeout;
        while self.durable_seq() < head {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    /// Stops accepting, closes sessions, drains the pipeline.
    pub async fn stop(mut self) {
        self.health.set_stopping();
        self.drain().await;
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        // Sessions end on the shutdown signal; give them a moment to send SessionDown.
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(pipeline) = self.pipeline.take() {
            let _ = tokio::task::spawn_blocking(move || pipeline.stop()).await;
        }
        // Projections stop after the journal's last events are durable: they finish level with it.
        let projections = std::mem::take(&mut self.projection_threads);
        let stopping = self.projections_stopping.clone();
        let _ = tokio::task::spawn_blocking(move || {
            stopping.store(true, std::sync::atomic::Ordering::Release);
            for thread in projections {
                let _ = thread.join();
            }
        })
        .await;
    }
}

/// The projections that tail the journal beside the packet path, each resumed from its
/// checkpoint. `balances` here is an audit copy: it must always equal the forwarder's in-line
/// state, which the tests check.
fn start_projections(
    config: &Config,
    pipeline: &Pipeline,
    health: &Arc<Health>,
    live: Option<Arc<crate::explorer::live::Live>>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    use crate::projections::balances::Balances;
    let store = pipeline.journal_store.clone();
    let balances = match store.checkpoint("balances")? {
        Some((seq, state)) if !state.is_empty() => match Balances::from_snapshot(&state) {
            Ok(mut balances) => {
                balances.set_position(seq);
                balances
            }
            Err(reason) => {
                tracing::warn!(%reason, "balances checkpoint unreadable; rebuilding from the journal");
                Balances::new()
            }
        },
        _ => Balances::new(),
    };
    let runner_config = RunnerConfig { checkpoint_every_events: config.journal.snapshot_every };
    let journal_status = pipeline.journal_status.clone();
    let thread = match live {
        // The Explorer's accounts view follows this projection (no replay of its own).
        Some(live) => {
            let watched = crate::projections::balances::Watched::new(balances, Box::new(crate::explorer::live::AccountsWatcher::new(live)));
            let handle = runner::spawn(watched, store.clone(), journal_status, runner_config, stopping.clone())?;
            std::thread::Builder::new().name("projection-join".into()).spawn(move || {
                let _ = handle.join();
            })?
        }
        None => {
            let handle = runner::spawn(balances, store.clone(), journal_status, runner_config, stopping.clone())?;
            std::thread::Builder::new().name("projection-join".into()).spawn(move || {
                let _ = handle.join();
            })?
        }
    };
    #[allow(unused_mut)] // only the tigerbeetle feature adds a thread
    let mut threads = vec![thread];
    // The TigerBeetle mirror (TIGERBEETLE_REPLICAS); `check_ledger_build` refused to start a
    // build without the feature when it is set.
    #[cfg(feature = "tigerbeetle")]
    if !config.tigerbeetle.replicas.is_empty() {
        let journal = pipeline.journal_status.clone();
        threads.push(crate::projections::tigerbeetle::start(config, store, journal, health.clone(), stopping)?);
    }
    #[cfg(not(feature = "tigerbeetle"))]
    let _ = (health, store, stopping);
    Ok(threads)
}

/// `TIGERBEETLE_REPLICAS` asks for the TigerBeetle projection: a binary built without it
/// refuses to start rather than run without the ledger the operator configured.
fn check_ledger_build(config: &Config) -> anyhow::Result<()> {
    if cfg!(not(feature = "tigerbeetle")) && !config.tigerbeetle.replicas.is_empty() {
        anyhow::bail!(
            "TIGERBEETLE_REPLICAS is set, but this binary was built without TigerBeetle support. \
             Build it with: bash scripts/tigerbeetle.sh install && \
             ZIG_PATH=$(bash scripts/tigerbeetle.sh zig-path) cargo build --release --features tigerbeetle \
             (or unset TIGERBEETLE_REPLICAS to run on the journal-derived ledger alone)"
        );
    }
    Ok(())
}

fn incoming_peers(config: &Config) -> Vec<IncomingPeer> {
    config
        .peers
        .iter()
        .enumerate()
        .filter_map(|(index, peer)| {
            let token = peer.incoming_token.clone()?;
            Some(IncomingPeer { index, id: peer.id.as_str().into(), token })
        })
        .collect()
}

fn outgoing_peers(config: &Config) -> Vec<OutgoingPeer> {
    config
        .peers
        .iter()
        .enumerate()
        .filter_map(|(index, peer)| {
            let link = peer.outgoing.as_ref()?;
            Some(OutgoingPeer {
                index,
                id: peer.id.as_str().into(),
                url: link.url.clone(),
                username: String::new(),
                token: link.token.clone(),
                metrics: crate::metrics::global().register_peer(&peer.id, &peer.asset_code),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_need_a_build_with_the_tigerbeetle_feature() {
        let text = "[node]\nid = \"n\"\nilp_address = \"test.n\"\nasset_code = \"USD\"\nasset_scale = 2\n";
        let env = crate::config::Env::from_pairs([("TIGERBEETLE_REPLICAS", "3000")]);
        let config = crate::config::parse(text, &env).expect("valid config").config;
        let result = check_ledger_build(&config);
        if cfg!(feature = "tigerbeetle") {
            assert!(result.is_ok());
        } else {
            let message = result.unwrap_err().to_string();
            assert!(message.contains("--features tigerbeetle"), "{message}");
        }
        let config = crate::config::parse(text, &crate::config::Env::default()).expect("valid config").config;
        assert!(check_ledger_build(&config).is_ok(), "no replicas: the journal-derived ledger");
    }
}
