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
    pub health: Arc<Health>,
    pub journal: SledStore,
    shutdown: watch::Sender<bool>,
    pipeline: Option<Pipeline>,
    tasks: Vec<JoinHandle<()>>,
    projections_stopping: Arc<std::sync::atomic::AtomicBool>,
    projection_threads: Vec<std::thread::JoinHandle<()>>,
}

impl Node {
    /// Starts every part of the node; fails with a message naming the part that could not start.
    pub async fn start(config: Config) -> anyhow::Result<Node> {
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
        let http_state = http::HttpState::new(health.clone(), crate::metrics::global());
        let mut http_shutdown = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let stopped = async move {
                let _ = http_shutdown.changed().await;
            };
            if let Err(error) = http::serve(http_listener, http_state, stopped).await {
                tracing::error!(%error, "HTTP server failed");
            }
        }));

        health.set_recovery_done(false);
        let pipeline = {
            let (config, health) = (config.clone(), health.clone());
            tokio::task::spawn_blocking(move || Pipeline::start(&config, health))
                .await
                .context("the start-up task failed")??
        };
        health.set_recovery_done(true);
        let context = Arc::new(SessionContext {
            node_address: config.node.ilp_address.clone(),
            prepares: pipeline.prepares.clone(),
            replies: pipeline.replies.clone(),
            in_flight_max: config.node.btp_session_in_flight_max,
            parse_options: ParseOptions { trailing_bytes_allowed: config.node.ilp_trailing_bytes_allowed },
            next_session_id: AtomicU64::new(1),
            shutdown: shutdown_rx.clone(),
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
        });
        tasks.push(tokio::spawn(server::serve(btp_listener, server_config, context.clone())));
        health.set_btp_listening(true);

        for peer in outgoing_peers(&config) {
            tracing::info!(peer = %peer.id, url = %peer.url, "dialing peer");
            tasks.push(tokio::spawn(client::maintain(peer, websocket, context.clone())));
        }
        let journal = pipeline.journal_store.clone();
        tasks.push(crate::journal::retention::spawn(journal.clone(), config.journal.retention, config.journal.archive_dir.clone(), shutdown_rx.clone()));
        health.set_component("journal", ComponentStatus::Ok);
        let projections_stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let projection_threads = start_projections(&config, &pipeline, projections_stopping.clone())?;
        tracing::info!(
            node = %config.node.id,
            address = %config.node.ilp_address,
            btp = %btp_address,
            http = %health_address,
            peers = config.peers.len(),
            journal = %config.journal.dir.display(),
            "connector started (ledger: journal-derived balances; no TIGERBEETLE_REPLICAS set)"
        );
        Ok(Node {
            btp_address,
            health_address,
            health,
            journal,
            shutdown,
            pipeline: Some(pipeline),
            tasks,
            projections_stopping,
            projection_threads,
        })
    }

    /// Sequence number of the last journal event known to be on disk.
    pub fn durable_seq(&self) -> u64 {
        self.pipeline.as_ref().map_or(0, |pipeline| {
            pipeline.journal_status.durable_seq.load(std::sync::atomic::Ordering::Acquire)
        })
    }

    /// Stops accepting, closes sessions, drains the pipeline.
    pub async fn stop(mut self) {
        self.health.set_stopping();
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
    let handle = runner::spawn(balances, store, pipeline.journal_status.clone(), runner_config, stopping)?;
    let thread = std::thread::Builder::new().name("projection-join".into()).spawn(move || {
        let _ = handle.join();
    })?;
    Ok(vec![thread])
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
