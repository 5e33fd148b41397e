//! Configuration: a TOML file (`CONFIG_FILE`, default `./config.toml`) plus environment
//! overrides, validated as a whole at start. The node never starts half-configured: `load`
//! returns every problem at once, each with its path in the file.
//!
//! The types here are the validated form the rest of the node reads; see `config/load.rs`
//! for parsing, environment overrides and validation.

use std::net::SocketAddr;

// The explicit path resolves the same from `lib.rs` and from a crate that mounts this file
// with `#[path]` (where a plain `mod load;` would be looked up beside it, not under it).
#[path = "config/load.rs"]
mod load;
pub use load::*;

/// Largest size the journal's commit log grows to before it starts over (after flushing sled),
/// unless `[journal] commit_log_mib` says otherwise. Larger means fewer sled flushes; each
/// start-over costs one sled flush (a few ms) on the writer thread.
pub const COMMIT_LOG_BYTES_DEFAULT: u64 = 64 << 20;

/// How a peer relates to us (RFC 34). A `child` gets an address under ours via IL-DCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Relation {
    Parent,
    Peer,
    Child,
}

impl Relation {
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Parent => "parent",
            Relation::Peer => "peer",
            Relation::Child => "child",
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub node: NodeConfig,
    pub peers: Vec<PeerConfig>,
    pub routes: Vec<RouteConfig>,
    pub rates: Vec<RateConfig>,
    /// `[[rate_feeds]]`: live rate sources (see `src/rates.rs`).
    pub rate_feeds: Vec<RateFeedConfig>,
    pub settlement: SettlementConfig,
    pub tigerbeetle: TigerBeetleConfig,
    pub journal: JournalConfig,
    pub explorer: ExplorerConfig,
    pub routing: RoutingConfig,
}

/// `[routing]`: route exchange with peers (CCP, RFC 10).
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    /// Exchange routes at all (default true). Off: only configured routes, and `peer.route.*`
    /// requests are refused.
    pub enabled: bool,
    /// How often a peer that listens gets an update, at the latest (default 30000 ms): a
    /// change goes out at once, a quiet table as a heartbeat once an interval.
    pub broadcast_interval_ms: u64,
    /// How long a peer keeps our routes after our last update (default 45000 ms), and the
    /// hold-down time we announce. A child of ours that stays disconnected this long is
    /// withdrawn from our announcements.
    pub route_expiry_ms: u32,
}

impl Default for RoutingConfig {
    fn default() -> RoutingConfig {
        RoutingConfig { enabled: true, broadcast_interval_ms: 30_000, route_expiry_ms: 45_000 }
    }
}

/// `[explorer]` and `EXPLORER_*`: the read-only Explorer (dashboard, history API, live stream).
#[derive(Debug, Clone)]
pub struct ExplorerConfig {
    /// `EXPLORER_ENABLED` (default true).
    pub enabled: bool,
    /// `EXPLORER_BIND_HOST` and `EXPLORER_PORT` (default 127.0.0.1:5173: it has no password unless
    /// `EXPLORER_TOKEN` is set, so it is not reachable from other hosts unless asked).
    pub bind: SocketAddr,
    /// `EXPLORER_TOKEN`: when set, every API route and the WebSocket need it (bearer, or
    /// `?token=` for the WebSocket, which browsers cannot give headers). The UI's files are
    /// served without it: they hold no data.
    pub token: Option<Secret>,
    /// `EXPLORER_INDEX_DIR`: the index projection's sled database (default
    /// `<journal dir>/../explorer-index`); rebuilt from the journal when missing.
    pub index_dir: std::path::PathBuf,
}

/// `[journal]`: where the event journal lives and how long it keeps frames.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// `JOURNAL_DIR`, default `./data/journal`.
    pub dir: std::path::PathBuf,
    /// `JOURNAL_SNAPSHOT_EVERY`: events between snapshots of the forwarder's state (default
    /// 100000); bounds how much of the journal a restart replays.
    pub snapshot_every: u64,
    /// `JOURNAL_RETENTION`: what happens to frames older than the previous snapshot.
    pub retention: Retention,
    /// Where `archive` retention moves frames (default `<dir>/../journal-archive`).
    pub archive_dir: std::path::PathBuf,
    /// Flush each batch to disk before its Fulfills leave (default true). `false` is for
    /// measuring what durability costs: a crash can then lose acknowledged Fulfills.
    pub durable: bool,
    /// `JOURNAL_COMMIT_LOG_MIB`: the most disk the commit log takes (default 64 MiB). Batches
    /// become durable there; when it is full, sled is flushed and it starts over. Its space is
    /// allocated ahead, so a full disk is noticed when it needs more.
    pub commit_log_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Keep every frame (the default).
    Keep,
    /// Move frames covered by a snapshot to files in `archive_dir`; replay can read them back.
    Archive,
    /// Delete frames covered by a snapshot.
    Delete,
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `NODE_ID`: a short name for logs and `/health`.
    pub id: String,
    /// This connector's ILP address (RFC 15), e.g. `test.m2m`.
    pub ilp_address: String,
    pub asset_code: String,
    pub asset_scale: u8,
    /// `BTP_PORT`, default 4000.
    pub btp_bind: SocketAddr,
    /// `HEALTH_PORT`, default 8080.
    pub health_bind: SocketAddr,
    /// `LOG_LEVEL`, default `info` (a tracing env-filter directive).
    pub log_level: String,
    /// Minimum time the next hop gets after we shorten the expiry (default 1000 ms).
    pub min_message_window_ms: u64,
    /// Longest we let the next hop hold a packet (default 30000 ms).
    pub max_hold_time_ms: u64,
    /// Whether a packet may be routed back to the peer it came from (default false).
    pub reflection: bool,
    /// Accept (and ignore) bytes after the last field of an ILP packet (RFC 30; default true).
    pub ilp_trailing_bytes_allowed: bool,
    /// Largest WebSocket message a peer may send (default 65536; a maximal ILP Prepare in BTP
    /// framing is 32,856 bytes).
    pub btp_message_size_max: usize,
    /// How long a new BTP connection has to authenticate (default 10000 ms).
    pub btp_auth_timeout_ms: u64,
    /// Incoming Prepares one BTP session may have in flight (default 4096); beyond it, T03.
    pub btp_session_in_flight_max: usize,
    /// Capacity of the pipeline's input queue (default 8192); when full, T03.
    pub pipeline_queue_max: usize,
    /// Authenticated BTP sessions one peer may hold at once (default 8); the next is refused
    /// at auth with a BTP error.
    pub max_sessions_per_peer: usize,
    /// `/health/ready` needs at least this many peers connected (default 0).
    pub ready_peers_min: usize,
    /// `ADMIN_TOKEN`: enables the admin API on the health port (bearer token). None: off.
    pub admin_token: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Account name: letters, digits, `_`, `~`, `-` (it becomes an address segment for children).
    pub id: String,
    pub relation: Relation,
    pub asset_code: String,
    pub asset_scale: u8,
    /// Token this peer presents when it connects to us (BTP `auth_token`). None: it may not dial in.
    pub incoming_token: Option<Secret>,
    /// Where we dial this peer (`btp+ws://host:port/path`), and the token we present.
    pub outgoing: Option<OutgoingLink>,
    /// Largest Prepare amount this peer may send us, in its units (F08 above it).
    pub max_packet_amount: Option<u64>,
    /// How far this peer may be in debt to us, in its units (T04 above it).
    pub credit_limit: u64,
    /// Prepares per second this peer may send (T05 above it). None: unlimited.
    pub packets_per_second_max: Option<u32>,
    /// Amount per second this peer may send, in its units (T04 above it). None: unlimited.
    pub throughput_per_second_max: Option<u64>,
    /// How we settle with this peer (`[peers.settlement]`); acted on with SETTLEMENT_ENABLED.
    pub settlement: Option<PeerSettlementConfig>,
    /// Announce our routes to this peer when it asks (CCP); default: unless it is a child.
    pub send_routes: bool,
    /// Ask this peer for its routes and learn them; default: unless it is a child.
    pub receive_routes: bool,
}

#[derive(Debug, Clone)]
pub struct OutgoingLink {
    /// `ws://` or `wss://` URL (the `btp+` prefix already stripped).
    pub url: url::Url,
    pub token: Secret,
}

#[derive(Debug, Clone)]
pub struct PeerSettlementConfig {
    /// `evm`, `xrpl` or `aptos` (only `evm` settles in this build).
    pub chain: String,
    /// When we owe the peer this much (its units), we pay it...
    pub threshold: u64,
    /// ...down to this (default 0; less than threshold).
    pub settle_to: u64,
    /// The peer's account on the chain (required to settle on evm).
    pub address: Option<String>,
    /// Which way claims go (default both).
    pub direction: SettlementDirection,
    /// How far a claim from the peer may exceed what it owes us (default 0; a child that
    /// prefunds needs room here).
    pub prepayment_allowance: u64,
    /// Deposit when we open the channel (default 2 × threshold).
    pub deposit_initial: u64,
    /// Unspent funds kept above a settlement's amount when we top up (default 2 × threshold).
    pub deposit_topup: u64,
    /// Most unspent funds we keep in the channel (default 10 × threshold).
    pub deposit_max: u64,
    /// Challenge period of channels we open, seconds (default 86400).
    pub settle_timeout_s: u64,
}

/// Which way a peer settles with us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettlementDirection {
    /// We pay it; it never pays us by claims.
    Pay,
    /// It pays us (a child that prefunds, say); we never pay it.
    Receive,
    Both,
}

impl SettlementDirection {
    pub fn pays_peer(self) -> bool {
        matches!(self, SettlementDirection::Pay | SettlementDirection::Both)
    }

    pub fn peer_pays(self) -> bool {
        matches!(self, SettlementDirection::Receive | SettlementDirection::Both)
    }
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// An ILP address prefix, matched on segment boundaries.
    pub prefix: String,
    pub peer: String,
}

/// A static exchange rate: one unit of `from` (at scale 0) is worth `rate` units of `to`.
#[derive(Debug, Clone)]
pub struct RateConfig {
    pub from: String,
    pub to: String,
    /// The rate as an exact fraction, parsed from a decimal string such as `"0.9"`.
    pub numerator: u128,
    pub denominator: u128,
}

/// A live rate source: its quotes replace `[[rates]]` for the pairs it names, and go stale
/// `max_age_ms` after they were observed.
#[derive(Debug, Clone)]
pub struct RateFeedConfig {
    pub kind: RateFeedKind,
    /// How often it is read (default 1000 ms).
    pub poll_interval_ms: u64,
    /// How long a quote stays usable after it was observed (default 30000 ms); after that,
    /// packets between its assets are refused until a fresh one comes.
    pub max_age_ms: u64,
}

#[derive(Debug, Clone)]
pub enum RateFeedKind {
    /// A JSON feed polled over `http://` or `https://`.
    Http { url: String },
    /// A JSON file another process writes; its modification time is when the rates were observed.
    File { path: std::path::PathBuf },
}

/// `SETTLEMENT_*` and the EVM chain settings.
///
/// Its `Debug` shows only each URL's scheme and host (RPC URLs often carry an API key in their
/// path or query) and never the key.
#[derive(Clone, Default)]
pub struct SettlementConfig {
    pub enabled: bool,
    /// `SETTLEMENT_EVM_RPC_URL` (alias `BASE_L2_RPC_URL`).
    pub evm_rpc_url: Option<String>,
    pub xrpl_url: Option<String>,
    pub aptos_url: Option<String>,
    pub evm: EvmSettlementConfig,
}

/// The EVM chain: which chain, which contracts, how deep an event must be, and our key.
#[derive(Clone, Default)]
pub struct EvmSettlementConfig {
    /// `SETTLEMENT_EVM_CHAIN_ID`: checked against the RPC endpoint's `eth_chainId` at start.
    pub chain_id: Option<u64>,
    /// `TOKEN_NETWORK_REGISTRY`: 0x and 40 hex digits.
    pub registry: Option<String>,
    /// `M2M_TOKEN_ADDRESS`: the ERC-20 channels hold.
    pub token: Option<String>,
    /// `SETTLEMENT_EVM_CONFIRMATIONS`: blocks an event must be buried under (default 2).
    pub confirmations: u64,
    /// `SETTLEMENT_EVM_POLL_INTERVAL_MS`: how often the chain is read (default 2000).
    pub poll_interval_ms: u64,
    /// `EVM_PRIVATE_KEY` (or the file named by `EVM_PRIVATE_KEY_FILE`): 0x and 64 hex digits.
    pub private_key: Option<Secret>,
    /// `SETTLEMENT_EVM_START_BLOCK`: where the first start of a node reads the chain from
    /// (default: 100,000 blocks before the head). Later starts resume from the journal.
    pub start_block: Option<u64>,
}

/// Blocks a contract event must be buried under before it is journaled, by default.
pub const EVM_CONFIRMATIONS_DEFAULT: u64 = 2;
/// How often the executor reads the chain, by default.
pub const EVM_POLL_INTERVAL_MS_DEFAULT: u64 = 2_000;

impl std::fmt::Debug for SettlementConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn origin(url: &Option<String>) -> Option<String> {
            let url = url::Url::parse(url.as_deref()?).ok()?;
            Some(format!(
                "{}://{}/***",
                url.scheme(),
                url.host_str().unwrap_or("")
            ))
        }
        f.debug_struct("SettlementConfig")
            .field("enabled", &self.enabled)
            .field("evm_rpc_url", &origin(&self.evm_rpc_url))
            .field("xrpl_url", &origin(&self.xrpl_url))
            .field("aptos_url", &origin(&self.aptos_url))
            .field("evm_chain_id", &self.evm.chain_id)
            .field("token_network_registry", &self.evm.registry)
            .field("token", &self.evm.token)
            .field("confirmations", &self.evm.confirmations)
            .field("private_key", &self.evm.private_key)
            .finish()
    }
}

/// `TIGERBEETLE_*` and `READY_REQUIRES_TIGERBEETLE`: the TigerBeetle ledger projection
/// (`src/projections/tigerbeetle.rs`, built with `--features tigerbeetle`).
#[derive(Debug, Clone)]
pub struct TigerBeetleConfig {
    /// `TIGERBEETLE_REPLICAS`: comma-separated `host:port` list; empty means the journal-derived
    /// ledger only (no TigerBeetle projection).
    pub replicas: Vec<String>,
    /// `TIGERBEETLE_CLUSTER_ID`, default 0.
    pub cluster_id: u128,
    /// `TIGERBEETLE_BATCH_MAX`: most transfers in one `create_transfers` request (default and
    /// maximum 8189, what a 1 MiB request holds: TigerBeetle's production message size). A
    /// server started with a smaller request limit answers `TooMuchData`; the projection then
    /// halves its batches by itself, so this only saves that first failed request.
    pub batch_max: usize,
    /// `READY_REQUIRES_TIGERBEETLE` (default false): `/health/ready` answers 503 while the
    /// projection is failing or lagging far behind the journal.
    pub ready_required: bool,
}

/// Transfers in a 1 MiB `create_transfers` request: (1 MiB − 256-byte header) / 128 bytes.
pub const TIGERBEETLE_BATCH_MAX_DEFAULT: usize = 8189;

impl Default for TigerBeetleConfig {
    fn default() -> TigerBeetleConfig {
        TigerBeetleConfig {
            replicas: Vec::new(),
            cluster_id: 0,
            batch_max: TIGERBEETLE_BATCH_MAX_DEFAULT,
            ready_required: false,
        }
    }
}

/// A secret string (token, key). Its `Debug` never shows the value, so it can't leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's bytes, for constant-time comparison or for sending to the peer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl PeerConfig {
    /// This peer's address when it is our child: `<our address>.<peer id>`.
    pub fn child_address(&self, node_address: &str) -> String {
        format!("{node_address}.{}", self.id)
    }
}
