//! The metrics registry, on the `prometheus` crate: every series is a pre-resolved child of a
//! `prometheus` family, rendered by its `TextEncoder` (exposition format 0.0.4) for
//! `GET /metrics`.
//!
//! Recording never locks and never allocates: every fixed label set is an array of children
//! indexed by an enum (a child is an `Arc` around atomics), and every per-peer series lives in
//! an [`Arc<PeerMetrics>`] handle that the caller gets once, when the peer is registered.
//! Registering a peer and rendering take locks; both are rare and off the packet path.
//!
//! Errors follow Vector's internal-event style: each [`ErrorKind`] knows its `type` and
//! `severity` labels, and [`Metrics::error`] is the one place that emits both the log line and
//! the counter, so the two can never disagree.
//!
//! The metric names and labels are fixed by the operators' existing dashboards; labels are
//! low-cardinality on purpose (a peer id may be a label, a destination address never). A family
//! with no series yet (no peer registered, no settlement done) is still declared (HELP and
//! TYPE), which the `prometheus` crate alone would leave out. Label names come in lexical order.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::core::Collector;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// The process-wide registry, created on first use.
pub fn global() -> &'static Metrics {
    static GLOBAL: OnceLock<Metrics> = OnceLock::new();
    GLOBAL.get_or_init(Metrics::new)
}

// ---------------------------------------------------------------------------------------------
// Primitives
// ---------------------------------------------------------------------------------------------

/// A monotonically increasing count (`inc`, `inc_by`, `get`); clones share the series.
pub type Counter = prometheus::IntCounter;

/// A value that goes up and down (`inc`, `dec`, `set`, `get`); clones share the series.
pub type Gauge = prometheus::IntGauge;

/// Upper bounds (`le`) of `ilp_packet_latency_seconds`, in nanoseconds: 25 µs to 30 s covers a
/// loopback hop at one end and a Prepare that runs to its expiry at the other.
pub const LATENCY_BOUNDS_NS: [u64; 19] = [
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// Upper bounds of `pipeline_batch_size`, in items: powers of two up to the largest batch a
/// stage drains at once (journal frames hold ~256 events; queues are a few thousand deep).
pub const BATCH_SIZE_BOUNDS: [u64; 13] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

/// Upper bounds of `journal_frame_size_bytes`: 256 B (a lone event) to 4 MiB (a frame of
/// thousands of events), by factors of four.
pub const FRAME_SIZE_BOUNDS: [u64; 10] =
    [256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 2_097_152, 4_194_304, 8_388_608];

/// Upper bounds of `journal_flush_seconds`, in nanoseconds: 10 µs (page cache) to 1 s (a
/// struggling disk).
pub const FLUSH_BOUNDS_NS: [u64; 12] = [
    10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000, 100_000_000, 1_000_000_000,
];

/// A histogram recorded in an integer base unit (nanoseconds for latency, items for sizes) and
/// exposed in `base / unit` (seconds for latency): the bounds above are in the base unit.
#[derive(Clone)]
pub struct Histogram {
    inner: prometheus::Histogram,
    /// `1 / unit`: multiplying is cheaper than dividing on every observation.
    scale: f64,
}

impl fmt::Debug for Histogram {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Histogram").field("count", &self.count()).finish()
    }
}

impl Histogram {
    fn of(inner: prometheus::Histogram, unit: f64) -> Histogram {
        Histogram { inner, scale: 1.0 / unit }
    }

    /// Records one observation in the base unit. Buckets are `le` (less than or equal).
    pub fn observe(&self, value: u64) {
        self.inner.observe(value as f64 * self.scale);
    }

    pub fn count(&self) -> u64 {
        self.inner.get_sample_count()
    }

    /// The sum in the exposed unit.
    pub fn sum(&self) -> f64 {
        self.inner.get_sample_sum()
    }
}

/// Registers the families of a [`Metrics`] and remembers each one's name, help and type, so a
/// family with no series yet is still declared in the exposition (HELP and TYPE, no samples),
/// as dashboards and `scripts/monitoring.sh` expect of every name.
#[derive(Debug)]
struct Families {
    registry: Registry,
    declared: Vec<Declared>,
}

/// A family's name, help text and type.
type Declared = (&'static str, &'static str, &'static str);

impl Families {
    /// Names and label sets are constants of this file, distinct by construction (a test
    /// renders every family), so a refusal is a bug in this file.
    fn register<C: Collector + Clone + 'static>(&mut self, declared: Declared, collector: C) -> C {
        self.registry.register(Box::new(collector.clone())).expect("metric families are registered once, with valid names");
        self.declared.push(declared);
        collector
    }

    fn counter(&mut self, name: &'static str, help: &'static str) -> Counter {
        self.register((name, help, "counter"), Counter::new(name, help).expect("valid metric name"))
    }

    fn gauge(&mut self, name: &'static str, help: &'static str) -> Gauge {
        self.register((name, help, "gauge"), Gauge::new(name, help).expect("valid metric name"))
    }

    fn counter_vec(&mut self, name: &'static str, help: &'static str, labels: &[&str]) -> IntCounterVec {
        let family = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric name and labels");
        self.register((name, help, "counter"), family)
    }

    fn gauge_vec(&mut self, name: &'static str, help: &'static str, labels: &[&str]) -> IntGaugeVec {
        let family = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric name and labels");
        self.register((name, help, "gauge"), family)
    }

    /// A histogram family whose bounds are `bounds` (in the base unit) divided by `unit`.
    fn histogram_vec(&mut self, name: &'static str, help: &'static str, labels: &[&str], bounds: &[u64], unit: f64) -> HistogramVec {
        let buckets = bounds.iter().map(|&bound| bound as f64 / unit).collect();
        let family = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("valid histogram");
        self.register((name, help, "histogram"), family)
    }

    fn histogram(&mut self, name: &'static str, help: &'static str, bounds: &[u64], unit: f64) -> Histogram {
        let buckets = bounds.iter().map(|&bound| bound as f64 / unit).collect();
        let inner = prometheus::Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid histogram");
        Histogram::of(self.register((name, help, "histogram"), inner), unit)
    }
}

/// The children of `family` for each label value in `values`, in order.
fn children<const N: usize>(family: &IntCounterVec, values: [&str; N]) -> [Counter; N] {
    values.map(|value| family.with_label_values(&[value]))
}

// ---------------------------------------------------------------------------------------------
// Label enums
// ---------------------------------------------------------------------------------------------

/// The `type` label of `ilp_packets_processed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    Prepare,
    Fulfill,
    Reject,
}

impl PacketKind {
    pub const ALL: [PacketKind; 3] = [PacketKind::Prepare, PacketKind::Fulfill, PacketKind::Reject];

    pub fn label(self) -> &'static str {
        match self {
            PacketKind::Prepare => "prepare",
            PacketKind::Fulfill => "fulfill",
            PacketKind::Reject => "reject",
        }
    }

    /// The statuses that make sense for this kind of packet; only these are rendered at zero.
    pub fn statuses(self) -> &'static [PacketStatus] {
        match self {
            PacketKind::Prepare => &[PacketStatus::Fulfilled, PacketStatus::Rejected],
            PacketKind::Fulfill => &[PacketStatus::Relayed, PacketStatus::Invalid],
            PacketKind::Reject => &[PacketStatus::Relayed, PacketStatus::Generated],
        }
    }
}

/// The `status` label of `ilp_packets_processed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketStatus {
    /// A Prepare that ended in a Fulfill sent upstream.
    Fulfilled,
    /// A Prepare that ended in a Reject sent upstream.
    Rejected,
    /// A Fulfill or Reject from downstream passed on upstream.
    Relayed,
    /// A Fulfill whose fulfillment did not hash to the condition (answered with F05).
    Invalid,
    /// A Reject that this connector created.
    Generated,
}

impl PacketStatus {
    const COUNT: usize = 5;

    pub fn label(self) -> &'static str {
        match self {
            PacketStatus::Fulfilled => "fulfilled",
            PacketStatus::Rejected => "rejected",
            PacketStatus::Relayed => "relayed",
            PacketStatus::Invalid => "invalid",
            PacketStatus::Generated => "generated",
        }
    }

    const ALL: [PacketStatus; PacketStatus::COUNT] = [
        PacketStatus::Fulfilled,
        PacketStatus::Rejected,
        PacketStatus::Relayed,
        PacketStatus::Invalid,
        PacketStatus::Generated,
    ];
}

/// The `type` label of `ilp_packet_latency_seconds`: which reply went upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Fulfill,
    Reject,
}

impl ReplyKind {
    pub const ALL: [ReplyKind; 2] = [ReplyKind::Fulfill, ReplyKind::Reject];

    pub fn label(self) -> &'static str {
        match self {
            ReplyKind::Fulfill => "fulfill",
            ReplyKind::Reject => "reject",
        }
    }
}

/// The `origin` label of `ilp_rejects_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectOrigin {
    /// This connector rejected the Prepare.
    Local,
    /// A downstream node rejected it and we relayed the Reject.
    Downstream,
}

impl RejectOrigin {
    pub const ALL: [RejectOrigin; 2] = [RejectOrigin::Local, RejectOrigin::Downstream];

    pub fn label(self) -> &'static str {
        match self {
            RejectOrigin::Local => "local",
            RejectOrigin::Downstream => "downstream",
        }
    }
}

/// The `code` label values of `ilp_rejects_total`: the RFC 27 codes, then `other` for any code
/// we do not know (so a peer cannot grow the label set).
pub const REJECT_CODE_LABELS: [&str; 23] = [
    "F00", "F01", "F02", "F03", "F04", "F05", "F06", "F07", "F08", "F09", "F99", //
    "T00", "T01", "T02", "T03", "T04", "T05", "T99", //
    "R00", "R01", "R02", "R99", //
    "other",
];

/// Where `code` sits in [`REJECT_CODE_LABELS`], without allocating or searching.
pub fn reject_code_index(code: [u8; 3]) -> usize {
    const OTHER: usize = REJECT_CODE_LABELS.len() - 1;
    // (first index of the class, highest numbered code of the class, index of its x99 code)
    let (first, last_numbered, application_error) = match code[0] {
        b'F' => (0, 9, 10),
        b'T' => (11, 5, 17),
        b'R' => (18, 2, 21),
        _ => return OTHER,
    };
    if !code[1].is_ascii_digit() || !code[2].is_ascii_digit() {
        return OTHER;
    }
    let number = usize::from(code[1] - b'0') * 10 + usize::from(code[2] - b'0');
    match number {
        99 => application_error,
        n if n <= last_numbered => first + n,
        _ => OTHER,
    }
}

/// The `severity` label of `connector_errors_total`, and the log level of the error's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Bad input or a peer's fault; the connector carries on unchanged.
    Warning,
    /// Our fault or our environment's; one operation failed.
    Error,
    /// The node cannot keep its guarantees (durability, configuration); an operator must act.
    Critical,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

/// An operating error, counted in `connector_errors_total{type,severity}` and logged by
/// [`Metrics::error`]. Each kind has exactly one `type` and one `severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A frame or packet that does not decode.
    Codec,
    /// A BTP peer that failed authentication.
    Auth,
    /// A BTP peer that broke the protocol (request ids, frame order).
    BtpProtocol,
    /// A reply that matches no request we sent.
    UnexpectedResponse,
    /// A peer we could not dial or whose link dropped.
    PeerUnreachable,
    /// A bug or an invariant that did not hold.
    Internal,
    /// The journal failed to append, flush or read.
    Journal,
    /// Configuration that does not validate.
    Config,
    /// The TigerBeetle ledger disagreed with the journal: a transfer or account that exists
    /// with other fields, a post after its pending transfer expired, any unexpected result.
    Ledger,
    /// An Explorer API request refused: bad parameters (400) or a missing token (401).
    ExplorerRequest,
    /// An Explorer WebSocket client that did not take a frame within 5 s, disconnected.
    ExplorerClientDropped,
    /// A projection (balances, TigerBeetle, the Explorer's index) could not apply a batch or
    /// save its checkpoint; it retries.
    Projection,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::Codec,
        ErrorKind::Auth,
        ErrorKind::BtpProtocol,
        ErrorKind::UnexpectedResponse,
        ErrorKind::PeerUnreachable,
        ErrorKind::Internal,
        ErrorKind::Journal,
        ErrorKind::Config,
        ErrorKind::Ledger,
        ErrorKind::ExplorerRequest,
        ErrorKind::ExplorerClientDropped,
        ErrorKind::Projection,
    ];

    /// The `type` label.
    pub fn type_label(self) -> &'static str {
        match self {
            ErrorKind::Codec => "codec",
            ErrorKind::Auth => "auth",
            ErrorKind::BtpProtocol => "btp_protocol",
            ErrorKind::UnexpectedResponse => "unexpected_response",
            ErrorKind::PeerUnreachable => "peer_unreachable",
            ErrorKind::Internal => "internal",
            ErrorKind::Journal => "journal",
            ErrorKind::Config => "config",
            ErrorKind::Ledger => "ledger",
            ErrorKind::ExplorerRequest => "explorer_request",
            ErrorKind::ExplorerClientDropped => "explorer_client_dropped",
            ErrorKind::Projection => "projection",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            ErrorKind::Codec
            | ErrorKind::Auth
            | ErrorKind::BtpProtocol
            | ErrorKind::UnexpectedResponse
            | ErrorKind::PeerUnreachable
            | ErrorKind::ExplorerRequest
            | ErrorKind::ExplorerClientDropped => Severity::Warning,
            ErrorKind::Internal | ErrorKind::Ledger | ErrorKind::Projection => Severity::Error,
            ErrorKind::Journal | ErrorKind::Config => Severity::Critical,
        }
    }
}

/// The `direction` label of `btp_frames_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDirection {
    In,
    Out,
}

impl FrameDirection {
    pub const ALL: [FrameDirection; 2] = [FrameDirection::In, FrameDirection::Out];

    pub fn label(self) -> &'static str {
        match self {
            FrameDirection::In => "in",
            FrameDirection::Out => "out",
        }
    }
}

/// The `reason` label of `btp_connections_refused_total`: BTP connections closed by the
/// listener's bounds rather than by a failed auth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRefusal {
    /// Its source address already had the most unauthenticated connections allowed.
    SourceLimit,
    /// The oldest unauthenticated connection, closed to make room for a new one.
    Evicted,
    /// Authenticated as a peer that already had `max_sessions_per_peer` sessions.
    SessionLimit,
}

impl ConnectionRefusal {
    pub const ALL: [ConnectionRefusal; 3] = [ConnectionRefusal::SourceLimit, ConnectionRefusal::Evicted, ConnectionRefusal::SessionLimit];

    pub fn label(self) -> &'static str {
        match self {
            ConnectionRefusal::SourceLimit => "source_limit",
            ConnectionRefusal::Evicted => "evicted",
            ConnectionRefusal::SessionLimit => "session_limit",
        }
    }
}

/// The `reason` label of `btp_frames_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDropReason {
    Undecodable,
    UnknownType,
    /// A reply that matched a request of ours but came after the forwarder gave up on it.
    UnexpectedResponse,
    /// A reply to no request this session sent (made up, or repeated): dropped by the session.
    UnmatchedReply,
    Oversized,
}

impl FrameDropReason {
    pub const ALL: [FrameDropReason; 5] = [
        FrameDropReason::Undecodable,
        FrameDropReason::UnknownType,
        FrameDropReason::UnexpectedResponse,
        FrameDropReason::UnmatchedReply,
        FrameDropReason::Oversized,
    ];

    pub fn label(self) -> &'static str {
        match self {
            FrameDropReason::Undecodable => "undecodable",
            FrameDropReason::UnknownType => "unknown_type",
            FrameDropReason::UnexpectedResponse => "unexpected_response",
            FrameDropReason::UnmatchedReply => "unmatched_reply",
            FrameDropReason::Oversized => "oversized",
        }
    }
}

/// The `stage` label of the pipeline metrics: one per bounded queue in `src/pipeline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineStage {
    Admission,
    Router,
    Journal,
    Egress,
    Settle,
}

impl PipelineStage {
    pub const ALL: [PipelineStage; 5] = [
        PipelineStage::Admission,
        PipelineStage::Router,
        PipelineStage::Journal,
        PipelineStage::Egress,
        PipelineStage::Settle,
    ];

    pub fn label(self) -> &'static str {
        match self {
            PipelineStage::Admission => "admission",
            PipelineStage::Router => "router",
            PipelineStage::Journal => "journal",
            PipelineStage::Egress => "egress",
            PipelineStage::Settle => "settle",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-peer series
// ---------------------------------------------------------------------------------------------

/// The series of one peer. The session, pipeline and balance code each keep a clone of the
/// handle and record into it without touching the registry.
#[derive(Debug)]
pub struct PeerMetrics {
    peer_id: String,
    asset_code: String,
    balance_units: Gauge,
    credit_limit_units: Gauge,
    connections: Gauge,
    reconnects: Counter,
    packets_in: Counter,
    packets_out: Counter,
}

impl PeerMetrics {
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    pub fn asset_code(&self) -> &str {
        &self.asset_code
    }

    /// Sets `account_balance_units`: the position in the peer's asset units. Positions beyond
    /// the gauge's range are shown at its end; the journal keeps the exact value.
    pub fn set_balance(&self, position_units: i128) {
        let clamped = position_units.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        self.balance_units.set(clamped as i64);
    }

    /// Sets `account_credit_limit_units`: how far the peer may be in debt to us (its
    /// configured credit_limit), for alerts on `account_balance_units` nearing it.
    pub fn set_credit_limit(&self, credit_limit_units: u64) {
        self.credit_limit_units.set(i64::try_from(credit_limit_units).unwrap_or(i64::MAX));
    }

    /// An authenticated BTP session with this peer opened.
    pub fn connection_opened(&self) {
        self.connections.inc();
    }

    /// An authenticated BTP session with this peer closed.
    pub fn connection_closed(&self) {
        self.connections.dec();
    }

    /// Our client re-dialed this peer after losing the link.
    pub fn reconnected(&self) {
        self.reconnects.inc();
    }

    /// An ILP packet arrived from this peer.
    pub fn packet_in(&self) {
        self.packets_in.inc();
    }

    /// An ILP packet was sent to this peer.
    pub fn packet_out(&self) {
        self.packets_out.inc();
    }

    pub fn packets_in_add(&self, count: u64) {
        self.packets_in.inc_by(count);
    }

    pub fn packets_out_add(&self, count: u64) {
        self.packets_out.inc_by(count);
    }

    pub fn balance(&self) -> i64 {
        self.balance_units.get()
    }

    pub fn connections(&self) -> i64 {
        self.connections.get()
    }
}

/// The per-peer families; a peer's handle holds its children of each.
#[derive(Debug)]
struct PeerFamilies {
    /// Labels `peer_id`, `token_id`.
    balance_units: IntGaugeVec,
    credit_limit_units: IntGaugeVec,
    /// Label `peer_id`.
    connections: IntGaugeVec,
    reconnects: IntCounterVec,
    packets_in: IntCounterVec,
    packets_out: IntCounterVec,
}

impl PeerFamilies {
    fn new(r: &mut Families) -> PeerFamilies {
        let by_account = ["peer_id", "token_id"];
        PeerFamilies {
            balance_units: r.gauge_vec("account_balance_units", HELP_BALANCE, &by_account),
            credit_limit_units: r.gauge_vec("account_credit_limit_units", HELP_CREDIT_LIMIT, &by_account),
            connections: r.gauge_vec("btp_connections", HELP_BTP_CONNECTIONS, &["peer_id"]),
            reconnects: r.counter_vec("btp_reconnects_total", HELP_BTP_RECONNECTS, &["peer_id"]),
            packets_in: r.counter_vec("packets_in_total", HELP_PACKETS_IN, &["peer_id"]),
            packets_out: r.counter_vec("packets_out_total", HELP_PACKETS_OUT, &["peer_id"]),
        }
    }

    fn handle(&self, peer_id: &str, asset_code: &str) -> PeerMetrics {
        PeerMetrics {
            peer_id: peer_id.to_owned(),
            asset_code: asset_code.to_owned(),
            balance_units: self.balance_units.with_label_values(&[peer_id, asset_code]),
            credit_limit_units: self.credit_limit_units.with_label_values(&[peer_id, asset_code]),
            connections: self.connections.with_label_values(&[peer_id]),
            reconnects: self.reconnects.with_label_values(&[peer_id]),
            packets_in: self.packets_in.with_label_values(&[peer_id]),
            packets_out: self.packets_out.with_label_values(&[peer_id]),
        }
    }

    /// Drops the peer's series from the exposition (its handle keeps counting, unseen).
    fn remove(&self, peer: &PeerMetrics) {
        let account = [peer.peer_id.as_str(), peer.asset_code.as_str()];
        // A series that is not there is what we want; nothing else can fail here.
        let _ = self.balance_units.remove_label_values(&account);
        let _ = self.credit_limit_units.remove_label_values(&account);
        for family in [&self.reconnects, &self.packets_in, &self.packets_out] {
            let _ = family.remove_label_values(&[&peer.peer_id]);
        }
        let _ = self.connections.remove_label_values(&[&peer.peer_id]);
    }
}

// ---------------------------------------------------------------------------------------------
// The registry
// ---------------------------------------------------------------------------------------------

/// Every metric of the node. Recording methods take `&self` and only touch atomics.
#[derive(Debug)]
pub struct Metrics {
    families: Families,
    /// `[kind][status]`: the children of the pairs in [`PacketKind::statuses`]; other pairs are
    /// a caller's bug, counted through `packets_processed_family` so they show.
    packets_processed: [[Option<Counter>; PacketStatus::COUNT]; 3],
    packets_processed_family: IntCounterVec,
    packet_latency: [Histogram; 2],
    packets_in_flight: Gauge,
    /// `[code index][origin]`, see [`reject_code_index`].
    rejects: [[Counter; 2]; REJECT_CODE_LABELS.len()],
    errors: [Counter; ErrorKind::ALL.len()],
    btp_connections_accepted: Counter,
    btp_auth_failures: Counter,
    btp_connections_refused: [Counter; ConnectionRefusal::ALL.len()],
    fulfills_undelivered: [Counter; crate::journal::event::UndeliveredReason::ALL.len()],
    ccp_messages: IntCounterVec,
    ccp_routes_refused: IntCounterVec,
    routes: IntGaugeVec,
    rate_feed_reads: IntCounterVec,
    rate_rejects: IntCounterVec,
    btp_frames: [Counter; 2],
    btp_frames_dropped: [Counter; FrameDropReason::ALL.len()],
    btp_frames_inverted: Counter,
    pipeline_queue_depth: [Gauge; PipelineStage::ALL.len()],
    pipeline_batch_size: [Histogram; PipelineStage::ALL.len()],
    pipeline_busy_rejects: Counter,
    journal_head_seq: Gauge,
    journal_durable_seq: Gauge,
    journal_flush_seconds: Histogram,
    journal_frame_size_bytes: Histogram,
    journal_frame_events: Histogram,
    journal_commit_log_restarts: Counter,
    /// 1 when each batch is flushed before its Fulfills leave (journal.durable), 0 when not.
    journal_fsync_enabled: Gauge,
    /// Label `projection`: events behind the journal head.
    projection_lag: IntGaugeVec,
    /// Label `projection`: events read back from the store instead of taken from the feed.
    projection_read_back: IntCounterVec,
    /// Labels `version`, `node_id`; one series, always 1.
    info: IntGaugeVec,
    peer_families: PeerFamilies,
    peers: Mutex<Vec<Arc<PeerMetrics>>>,
    settlement: SettlementMetrics,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every counter at zero; tests make their own, the node uses
    /// [`global`].
    pub fn new() -> Metrics {
        let mut families = Families { registry: Registry::new(), declared: Vec::new() };
        let r = &mut families;

        let packets_processed_family =
            r.counter_vec("ilp_packets_processed_total", HELP_PACKETS_PROCESSED, &["type", "status"]);
        let packets_processed = PacketKind::ALL.map(|kind| {
            PacketStatus::ALL.map(|status| {
                kind.statuses()
                    .contains(&status)
                    .then(|| packets_processed_family.with_label_values(&[kind.label(), status.label()]))
            })
        });
        let latency = r.histogram_vec("ilp_packet_latency_seconds", HELP_PACKET_LATENCY, &["type"], &LATENCY_BOUNDS_NS, 1e9);
        let rejects_family = r.counter_vec("ilp_rejects_total", HELP_REJECTS, &["code", "origin"]);
        let errors_family = r.counter_vec("connector_errors_total", HELP_ERRORS, &["type", "severity"]);
        let refused = r.counter_vec("btp_connections_refused_total", HELP_BTP_CONNECTIONS_REFUSED, &["reason"]);
        let undelivered = r.counter_vec("ilp_fulfills_undelivered_total", HELP_FULFILLS_UNDELIVERED, &["reason"]);
        let frames = r.counter_vec("btp_frames_total", HELP_BTP_FRAMES, &["direction"]);
        let dropped = r.counter_vec("btp_frames_dropped_total", HELP_BTP_FRAMES_DROPPED, &["reason"]);
        let queue_depth = r.gauge_vec("pipeline_queue_depth", HELP_QUEUE_DEPTH, &["stage"]);
        let batch_size = r.histogram_vec("pipeline_batch_size", HELP_BATCH_SIZE, &["stage"], &BATCH_SIZE_BOUNDS, 1.0);

        let start_time = prometheus::Gauge::new("process_start_time_seconds", HELP_START_TIME).expect("valid metric name");
        let start_time = r.register(("process_start_time_seconds", HELP_START_TIME, "gauge"), start_time);
        start_time.set(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |since_epoch| since_epoch.as_secs_f64()));
        let info = r.gauge_vec("connector_info", HELP_INFO, &["version", "node_id"]);
        info.with_label_values(&["", ""]).set(1);

        Metrics {
            packets_processed,
            packets_processed_family,
            packet_latency: ReplyKind::ALL.map(|reply| Histogram::of(latency.with_label_values(&[reply.label()]), 1e9)),
            packets_in_flight: r.gauge("ilp_packets_in_flight", HELP_PACKETS_IN_FLIGHT),
            rejects: std::array::from_fn(|code| RejectOrigin::ALL.map(|origin| rejects_family.with_label_values(&[REJECT_CODE_LABELS[code], origin.label()]))),
            errors: ErrorKind::ALL.map(|kind| errors_family.with_label_values(&[kind.type_label(), kind.severity().label()])),
            btp_connections_accepted: r.counter("btp_connections_accepted_total", HELP_BTP_ACCEPTED),
            btp_auth_failures: r.counter("btp_auth_failures_total", HELP_BTP_AUTH_FAILURES),
            btp_connections_refused: children(&refused, ConnectionRefusal::ALL.map(ConnectionRefusal::label)),
            ccp_messages: r.counter_vec("ccp_messages_total", HELP_CCP_MESSAGES, &["kind", "direction", "outcome"]),
            ccp_routes_refused: r.counter_vec("ccp_routes_refused_total", HELP_CCP_ROUTES_REFUSED, &["peer", "reason"]),
            routes: r.gauge_vec("routing_table_routes", HELP_ROUTES, &["source"]),
            rate_feed_reads: r.counter_vec("rate_feed_reads_total", HELP_RATE_FEED_READS, &["source", "outcome"]),
            rate_rejects: r.counter_vec("rate_rejects_total", HELP_RATE_REJECTS, &["from", "to", "reason"]),
            fulfills_undelivered: children(&undelivered, crate::journal::event::UndeliveredReason::ALL.map(|reason| reason.label())),
            btp_frames: children(&frames, FrameDirection::ALL.map(FrameDirection::label)),
            btp_frames_dropped: children(&dropped, FrameDropReason::ALL.map(FrameDropReason::label)),
            btp_frames_inverted: r.counter("btp_frames_inverted_total", HELP_BTP_FRAMES_INVERTED),
            pipeline_queue_depth: PipelineStage::ALL.map(|stage| queue_depth.with_label_values(&[stage.label()])),
            pipeline_batch_size: PipelineStage::ALL.map(|stage| Histogram::of(batch_size.with_label_values(&[stage.label()]), 1.0)),
            pipeline_busy_rejects: r.counter("pipeline_busy_rejects_total", HELP_BUSY_REJECTS),
            journal_head_seq: r.gauge("journal_head_seq", HELP_JOURNAL_HEAD),
            journal_durable_seq: r.gauge("journal_durable_seq", HELP_JOURNAL_DURABLE),
            journal_flush_seconds: r.histogram("journal_flush_seconds", HELP_JOURNAL_FLUSH, &FLUSH_BOUNDS_NS, 1e9),
            journal_frame_size_bytes: r.histogram("journal_frame_size_bytes", HELP_JOURNAL_FRAME_SIZE, &FRAME_SIZE_BOUNDS, 1.0),
            journal_frame_events: r.histogram("journal_frame_events", HELP_JOURNAL_FRAME_EVENTS, &BATCH_SIZE_BOUNDS, 1.0),
            journal_commit_log_restarts: r.counter("journal_commit_log_restarts_total", HELP_JOURNAL_COMMIT_LOG_RESTARTS),
            journal_fsync_enabled: r.gauge("journal_fsync_enabled", HELP_JOURNAL_FSYNC_ENABLED),
            projection_lag: r.gauge_vec("projection_lag_events", HELP_PROJECTION_LAG, &["projection"]),
            projection_read_back: r.counter_vec("projection_read_back_events_total", HELP_PROJECTION_READ_BACK, &["projection"]),
            info,
            peer_families: PeerFamilies::new(r),
            peers: Mutex::new(Vec::new()),
            settlement: SettlementMetrics::new(r),
            families,
        }
    }

    /// Settlement's series (claims, channels, settlements).
    pub fn settlement(&self) -> &SettlementMetrics {
        &self.settlement
    }

    /// The forwarder appended up to `seq` (not yet durable).
    pub fn journal_head(&self, seq: u64) {
        self.journal_head_seq.set(i64::try_from(seq).unwrap_or(i64::MAX));
    }

    /// A frame of `event_count` events up to `seq` is durable.
    pub fn journal_durable(&self, seq: u64, event_count: usize) {
        self.journal_durable_seq.set(i64::try_from(seq).unwrap_or(i64::MAX));
        self.journal_frame_events.observe(event_count as u64);
    }

    /// One group-commit flush took `elapsed`; the frame it made durable was `frame_size` bytes.
    pub fn journal_flushed(&self, elapsed: Duration, frame_size: usize) {
        self.journal_flush_seconds.observe(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        self.journal_frame_size_bytes.observe(frame_size as u64);
    }

    /// Whether the journal flushes each batch before its Fulfills leave (journal.durable).
    pub fn set_journal_fsync_enabled(&self, durable: bool) {
        self.journal_fsync_enabled.set(i64::from(durable));
    }

    /// The commit log was full: sled was flushed and the log started over.
    pub fn journal_commit_log_restarted(&self) {
        self.journal_commit_log_restarts.inc();
    }

    /// The lag gauge of a projection (events between the journal's durable head and what the
    /// projection has applied), created on first use; every call for one projection returns
    /// the same series.
    pub fn projection_lag(&self, projection: &str) -> Gauge {
        self.projection_lag.with_label_values(&[projection])
    }

    /// The read-back counter of a projection: events it read back from the store (catching up
    /// at a start, or after falling so far behind that the writer's feed dropped batches for
    /// it) instead of taking them, decoded, from the feed.
    pub fn projection_read_back(&self, projection: &str) -> Counter {
        self.projection_read_back.with_label_values(&[projection])
    }

    /// Sets the labels of `connector_info`. Called once at start-up.
    pub fn set_info(&self, version: &str, node_id: &str) {
        self.info.reset();
        self.info.with_label_values(&[version, node_id]).set(1);
    }

    /// Returns the peer's handle, creating its series on first registration. Registering the
    /// same peer again returns the same handle, so sessions that come and go share one set of
    /// series; a changed asset code replaces the handle (the old series leave the exposition
    /// and the new ones start at zero).
    pub fn register_peer(&self, peer_id: &str, asset_code: &str) -> Arc<PeerMetrics> {
        let mut peers = lock(&self.peers);
        if let Some(position) = peers.iter().position(|peer| peer.peer_id == peer_id) {
            if peers[position].asset_code == asset_code {
                return Arc::clone(&peers[position]);
            }
            self.peer_families.remove(&peers.remove(position));
        }
        let peer = Arc::new(self.peer_families.handle(peer_id, asset_code));
        peers.push(Arc::clone(&peer));
        peer
    }

    /// Stops rendering the peer's series (a peer removed from the configuration).
    pub fn unregister_peer(&self, peer_id: &str) {
        let mut peers = lock(&self.peers);
        if let Some(position) = peers.iter().position(|peer| peer.peer_id == peer_id) {
            self.peer_families.remove(&peers.remove(position));
        }
    }

    /// Counts a packet in `ilp_packets_processed_total{type,status}`.
    pub fn packet_processed(&self, kind: PacketKind, status: PacketStatus) {
        match &self.packets_processed[kind as usize][status as usize] {
            Some(counter) => counter.inc(),
            None => {
                // A pair outside `statuses()` is a caller's bug; show it rather than hide it.
                debug_assert!(false, "{kind:?} is never {status:?}");
                self.packets_processed_family.with_label_values(&[kind.label(), status.label()]).inc();
            }
        }
    }

    /// Observes the time from receiving a Prepare to sending its reply upstream.
    pub fn packet_latency(&self, reply: ReplyKind, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.packet_latency_ns(reply, nanos);
    }

    /// [`Metrics::packet_latency`] for callers that already hold nanoseconds.
    pub fn packet_latency_ns(&self, reply: ReplyKind, elapsed_ns: u64) {
        self.packet_latency[reply as usize].observe(elapsed_ns);
    }

    pub fn packets_in_flight_inc(&self) {
        self.packets_in_flight.inc();
    }

    pub fn packets_in_flight_dec(&self) {
        self.packets_in_flight.dec();
    }

    /// Counts a Reject in `ilp_rejects_total{code,origin}`; unknown codes count as `other`.
    pub fn reject(&self, code: [u8; 3], origin: RejectOrigin) {
        self.rejects[reject_code_index(code)][origin as usize].inc();
    }

    /// The one place an operating error is reported: logs `detail` at the kind's severity and
    /// counts it in `connector_errors_total{type,severity}`. `detail` is formatted only if the
    /// log line is enabled.
    pub fn error(&self, kind: ErrorKind, detail: &dyn fmt::Display) {
        self.errors[kind as usize].inc();
        let error_type = kind.type_label();
        match kind.severity() {
            Severity::Warning => tracing::warn!(error_type, severity = "warning", "{detail}"),
            Severity::Error => tracing::error!(error_type, severity = "error", "{detail}"),
            Severity::Critical => tracing::error!(error_type, severity = "critical", "{detail}"),
        }
    }

    /// Counts an error without logging it: for failures a peer can repeat at line rate
    /// (malformed packets), where one log line each would flood the log.
    pub fn count_error(&self, kind: ErrorKind) {
        self.errors[kind as usize].inc();
    }

    pub fn btp_connection_accepted(&self) {
        self.btp_connections_accepted.inc();
    }

    pub fn btp_auth_failure(&self) {
        self.btp_auth_failures.inc();
    }

    pub fn btp_connection_refused(&self, reason: ConnectionRefusal) {
        self.btp_connections_refused[reason as usize].inc();
    }

    /// A Fulfill journaled but not delivered upstream (`FulfillUndelivered`); its amount shows
    /// in the sender's `account_balance_units`.
    pub fn fulfill_undelivered(&self, reason: crate::journal::event::UndeliveredReason) {
        self.fulfills_undelivered[reason as usize].inc();
    }

    /// Counts `count` BTP frames; a writer task counts a whole burst at once.
    pub fn btp_frames(&self, direction: FrameDirection, count: u64) {
        self.btp_frames[direction as usize].inc_by(count);
    }

    /// A CCP message (`control` or `update`) we `sent` or `received`, by how it ended (`ok`,
    /// `rejected`, `invalid`, `timeout`, `refused`).
    pub fn ccp_message(&self, kind: &str, direction: &str, outcome: &str) {
        self.ccp_messages.with_label_values(&[kind, direction, outcome]).inc();
    }

    /// A route a peer announced that its checks refused (see `ccp_receiver::Refusal`).
    pub fn ccp_route_refused(&self, peer: &str, reason: &str) {
        self.ccp_routes_refused.with_label_values(&[peer, reason]).inc();
    }

    /// A read of a rate source (`ok` or `error`).
    pub fn rate_feed_read(&self, source: &str, outcome: &str) {
        self.rate_feed_reads.with_label_values(&[source, outcome]).inc();
    }

    /// A packet refused for want of a usable rate between its assets (`stale` or `missing`).
    pub fn rate_reject(&self, from: &str, to: &str, reason: &str) {
        self.rate_rejects.with_label_values(&[from, to, reason]).inc();
    }

    /// Routes in use, by source (`child`, `static`, `learned`).
    pub fn set_routes(&self, source: &str, count: usize) {
        self.routes.with_label_values(&[source]).set(count as i64);
    }

    pub fn btp_frame_dropped(&self, reason: FrameDropReason) {
        self.btp_frames_dropped[reason as usize].inc();
    }

    /// An ILP reply that came in a Message frame or a Prepare in a Response frame.
    pub fn btp_frame_inverted(&self) {
        self.btp_frames_inverted.inc();
    }

    pub fn set_queue_depth(&self, stage: PipelineStage, depth: i64) {
        self.pipeline_queue_depth[stage as usize].set(depth);
    }

    pub fn batch_size(&self, stage: PipelineStage, size: u64) {
        self.pipeline_batch_size[stage as usize].observe(size);
    }

    /// A Prepare rejected with T03 at admission because the pipeline was full.
    pub fn pipeline_busy_reject(&self) {
        self.pipeline_busy_rejects.inc();
    }

    // Read-back for tests and for the health endpoint.

    pub fn packets_processed_count(&self, kind: PacketKind, status: PacketStatus) -> u64 {
        match &self.packets_processed[kind as usize][status as usize] {
            Some(counter) => counter.get(),
            None => self.packets_processed_family.get_metric_with_label_values(&[kind.label(), status.label()]).map_or(0, |counter| counter.get()),
        }
    }

    pub fn rejects_count(&self, code: [u8; 3], origin: RejectOrigin) -> u64 {
        self.rejects[reject_code_index(code)][origin as usize].get()
    }

    pub fn errors_count(&self, kind: ErrorKind) -> u64 {
        self.errors[kind as usize].get()
    }

    pub fn packets_in_flight(&self) -> i64 {
        self.packets_in_flight.get()
    }

    /// Renders every family in the Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_into(&mut out);
        out
    }

    /// [`Metrics::render`] into a caller's buffer.
    pub fn render_into(&self, out: &mut String) {
        let gathered = self.families.registry.gather();
        // Only a family without series or without a name fails to encode, and gather() leaves
        // those out.
        if let Err(error) = prometheus::TextEncoder::new().encode_utf8(&gathered, out) {
            tracing::error!(%error, "rendering /metrics failed");
        }
        // The families with no series yet (no peer, no settlement), declared all the same. HELP
        // texts are constants with no backslash or newline to escape (a test checks).
        for (name, help, kind) in &self.families.declared {
            if !gathered.iter().any(|family| family.name() == *name) {
                out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            }
        }
    }
}

/// Metrics state stays consistent even if a holder panicked, so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Help texts
// ---------------------------------------------------------------------------------------------

const HELP_PACKETS_PROCESSED: &str = "ILP packets processed, by packet type and outcome \
    (prepare: fulfilled|rejected; fulfill: relayed|invalid; reject: relayed|generated).";
const HELP_PACKET_LATENCY: &str =
    "Time from receiving an ILP Prepare to sending its reply upstream, by reply type.";
const HELP_PACKETS_IN_FLIGHT: &str = "ILP Prepares forwarded and still awaiting a reply.";
const HELP_REJECTS: &str = "ILP Rejects sent upstream, by error code (unknown codes as other) \
    and origin (local: created here; downstream: relayed).";
const HELP_ERRORS: &str = "Operating errors, by type and severity.";
const HELP_BTP_ACCEPTED: &str = "Incoming BTP WebSocket connections accepted.";
const HELP_BTP_AUTH_FAILURES: &str = "BTP sessions that failed authentication.";
const HELP_BTP_FRAMES: &str = "BTP frames received (in) and sent (out).";
const HELP_CCP_MESSAGES: &str =
    "Route exchange (CCP) messages, by kind (control, update), direction (sent, received) and outcome (ok, rejected, invalid, timeout, refused).";
const HELP_CCP_ROUTES_REFUSED: &str =
    "Routes a peer announced that were refused, by peer and reason (outside_global_prefix, loop, under_our_address, not_the_childs).";
const HELP_RATE_FEED_READS: &str = "Reads of live exchange-rate sources, by source and outcome (ok, error).";
const HELP_RATE_REJECTS: &str =
    "Packets refused (T00) for want of a usable exchange rate between their assets, by pair and reason (stale: the feed's quote is older than its max age; missing: no rate at all).";
const HELP_ROUTES: &str = "Routes in use in the routing table, by source (child, static, learned).";
const HELP_FULFILLS_UNDELIVERED: &str =
    "Fulfills journaled but not delivered upstream, by reason (expired: the sender's Prepare expired before the Fulfill was durable; upstream_gone: its session had closed). The sender is not charged; the connector bears the loss.";
const HELP_BTP_CONNECTIONS_REFUSED: &str =
    "BTP connections closed by the listener's bounds (per-source and global limits on unauthenticated connections, sessions per peer), by reason.";
const HELP_BTP_FRAMES_DROPPED: &str = "Received BTP frames dropped, by reason.";
const HELP_BTP_FRAMES_INVERTED: &str = "ILP replies received in BTP Message frames or Prepares \
    in Response frames (as interledger-rs sends them), accepted.";
const HELP_BALANCE: &str =
    "Position with the peer in its asset units: what the peer owes us minus what we owe it.";
const HELP_CREDIT_LIMIT: &str =
    "The peer's credit limit in its asset units: the position (plus packets in flight) it may not exceed.";
const HELP_BTP_CONNECTIONS: &str = "Open authenticated BTP sessions, by peer.";
const HELP_BTP_RECONNECTS: &str = "Times our BTP client re-dialed the peer after losing the link.";
const HELP_PACKETS_IN: &str = "ILP packets received from the peer.";
const HELP_PACKETS_OUT: &str = "ILP packets sent to the peer.";
const HELP_QUEUE_DEPTH: &str = "Items waiting in the queue in front of each pipeline stage.";
const HELP_BATCH_SIZE: &str = "Items per batch that each pipeline stage drained.";
const HELP_JOURNAL_HEAD: &str = "Sequence number of the last event the forwarder appended to the journal.";
const HELP_JOURNAL_FSYNC_ENABLED: &str =
    "1 when each journal batch is flushed to disk before its Fulfills leave (journal.durable = true); 0 when a crash can lose acknowledged Fulfills.";
const HELP_JOURNAL_DURABLE: &str = "Sequence number of the last event flushed to disk.";
const HELP_JOURNAL_FLUSH: &str =
    "Time of one group commit: the write and fdatasync of the commit log (or, when it is full, a sled flush).";
const HELP_JOURNAL_COMMIT_LOG_RESTARTS: &str =
    "Times the journal's commit log was full, so sled was flushed and the log started over.";
const HELP_JOURNAL_FRAME_SIZE: &str = "Size in bytes of each journal frame written.";
const HELP_JOURNAL_FRAME_EVENTS: &str = "Events in each journal frame written.";
const HELP_PROJECTION_READ_BACK: &str =
    "Events a projection read back from the journal's store instead of taking them from the writer's feed (catching up, or after the feed dropped batches because the projection fell behind).";
const HELP_PROJECTION_LAG: &str = "Events between the journal's durable head and what a projection has applied.";
const HELP_BUSY_REJECTS: &str =
    "ILP Prepares rejected with T03 at admission because the pipeline was full.";
const HELP_START_TIME: &str = "Start time of the process since the Unix epoch, in seconds.";
const HELP_INFO: &str = "Build and node information; the value is always 1.";

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    /// A family as the checker saw it: its TYPE and its samples.
    #[derive(Debug, Default)]
    struct Family {
        help: bool,
        kind: String,
        samples: Vec<Sample>,
    }

    #[derive(Debug, Clone)]
    struct Sample {
        name: String,
        labels: BTreeMap<String, String>,
        value: f64,
    }

    /// A small exposition-format (0.0.4) checker: every line is a HELP, a TYPE or a sample;
    /// every family has HELP and TYPE before its samples; histogram buckets are cumulative and
    /// end in `+Inf`, which equals `_count`. Returns the families by name.
    fn parse_exposition(text: &str) -> HashMap<String, Family> {
        let mut families: HashMap<String, Family> = HashMap::new();
        for line in text.lines() {
            assert!(!line.is_empty(), "empty line in exposition");
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP has a name and a text");
                assert!(valid_metric_name(name), "bad name {name:?}");
                assert!(
                    !help.is_empty() && !help.contains('\\'),
                    "bad help for {name}"
                );
                let family = families.entry(name.to_owned()).or_default();
                assert!(!family.help, "second HELP for {name}");
                family.help = true;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE has a name and a type");
                assert!(
                    ["counter", "gauge", "histogram"].contains(&kind),
                    "bad type {kind}"
                );
                let family = families.get_mut(name).expect("HELP comes before TYPE");
                assert!(family.kind.is_empty(), "second TYPE for {name}");
                family.kind = kind.to_owned();
            } else {
                assert!(!line.starts_with('#'), "unknown comment line {line:?}");
                let sample = parse_sample(line);
                let family_name = family_of(&families, &sample.name);
                let family = families.get_mut(&family_name).expect("sample of a family");
                assert!(!family.kind.is_empty(), "sample before TYPE: {line}");
                family.samples.push(sample);
            }
        }
        for (name, family) in &families {
            assert!(
                family.help && !family.kind.is_empty(),
                "{name} lacks HELP or TYPE"
            );
            if family.kind == "histogram" {
                check_histogram(name, &family.samples);
            }
        }
        families
    }

    fn valid_metric_name(name: &str) -> bool {
        let mut characters = name.chars();
        characters
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && characters.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    /// The family a sample belongs to: its own name, or its name without a histogram suffix.
    fn family_of(families: &HashMap<String, Family>, sample_name: &str) -> String {
        if families.contains_key(sample_name) {
            return sample_name.to_owned();
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample_name.strip_suffix(suffix) {
                if families
                    .get(base)
                    .is_some_and(|family| family.kind == "histogram")
                {
                    return base.to_owned();
                }
            }
        }
        panic!("sample {sample_name} belongs to no declared family");
    }

    fn parse_sample(line: &str) -> Sample {
        let (name_and_labels, value) = line.rsplit_once(' ').expect("sample has a value");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            number => number
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match name_and_labels.split_once('{') {
            None => (name_and_labels, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end in }");
                (name, parse_labels(body))
            }
        };
        assert!(valid_metric_name(name), "bad sample name in {line:?}");
        Sample {
            name: name.to_owned(),
            labels,
            value,
        }
    }

    fn parse_labels(mut body: &str) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        while !body.is_empty() {
            let (key, rest) = body.split_once("=\"").expect("label is key=\"value\"");
            assert!(
                valid_metric_name(key) && !key.contains(':'),
                "bad label name {key}"
            );
            let mut value = String::new();
            let mut characters = rest.char_indices();
            let end = loop {
                match characters.next().expect("label value is closed") {
                    (_, '\\') => match characters.next().expect("escape is complete").1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        other => panic!("bad escape \\{other}"),
                    },
                    (index, '"') => break index,
                    (_, other) => value.push(other),
                }
            };
            assert!(
                labels.insert(key.to_owned(), value).is_none(),
                "duplicate label {key}"
            );
            body = &rest[end + 1..];
            body = body.strip_prefix(',').unwrap_or(body);
        }
        labels
    }

    fn check_histogram(name: &str, samples: &[Sample]) {
        // Group by the labels other than `le`.
        #[derive(Default)]
        struct Series {
            /// (upper bound, cumulative count)
            buckets: Vec<(f64, f64)>,
            count: Option<f64>,
            has_sum: bool,
        }
        let mut series: BTreeMap<Vec<(String, String)>, Series> = BTreeMap::new();
        for sample in samples {
            let mut labels = sample.labels.clone();
            let le = labels.remove("le");
            let entry = series.entry(labels.into_iter().collect()).or_default();
            match sample.name.strip_prefix(name) {
                Some("_bucket") => {
                    let le = le.expect("bucket has le");
                    let bound = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap()
                    };
                    entry.buckets.push((bound, sample.value));
                }
                Some("_count") => entry.count = Some(sample.value),
                Some("_sum") => entry.has_sum = true,
                _ => panic!("bad histogram sample {}", sample.name),
            }
        }
        assert!(!series.is_empty(), "histogram {name} has no series");
        for (
            labels,
            Series {
                buckets,
                count,
                has_sum,
            },
        ) in series
        {
            assert!(has_sum, "{name}{labels:?} lacks _sum");
            let (last_bound, last_value) = *buckets.last().expect("buckets");
            assert_eq!(last_bound, f64::INFINITY, "{name} ends in +Inf");
            assert_eq!(Some(last_value), count, "{name} +Inf equals _count");
            for pair in buckets.windows(2) {
                assert!(pair[0].0 < pair[1].0, "{name} bounds increase");
                assert!(pair[0].1 <= pair[1].1, "{name} buckets are cumulative");
            }
        }
    }

    fn value(families: &HashMap<String, Family>, name: &str, labels: &[(&str, &str)]) -> f64 {
        let family = families
            .get(&family_of(families, name))
            .expect("family exists");
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let matching: Vec<&Sample> = family
            .samples
            .iter()
            .filter(|sample| sample.name == name && sample.labels == wanted)
            .collect();
        assert_eq!(matching.len(), 1, "exactly one {name}{labels:?}");
        matching[0].value
    }

    #[test]
    fn empty_registry_renders_valid_exposition() {
        let families = parse_exposition(&Metrics::new().render());
        for name in [
            "ilp_packets_processed_total",
            "ilp_packet_latency_seconds",
            "ilp_packets_in_flight",
            "ilp_rejects_total",
            "connector_errors_total",
            "btp_connections_accepted_total",
            "btp_auth_failures_total",
            "btp_connections_refused_total",
            "ilp_fulfills_undelivered_total",
            "btp_frames_total",
            "btp_frames_dropped_total",
            "btp_frames_inverted_total",
            "pipeline_queue_depth",
            "pipeline_batch_size",
            "pipeline_busy_rejects_total",
            "journal_head_seq",
            "journal_durable_seq",
            "journal_flush_seconds",
            "journal_frame_size_bytes",
            "journal_frame_events",
            "journal_commit_log_restarts_total",
            "journal_fsync_enabled",
            "settlements_executed_total",
            "settlement_failures_total",
            "settlement_latency_seconds",
            "payment_channels_active",
            "payment_channels_funded_total",
            "payment_channels_closed_total",
            "payment_channels_disputes_total",
            "claims_sent_total",
            "claims_received_total",
            "claim_verification_failures_total",
            "process_start_time_seconds",
            "connector_info",
        ] {
            assert!(families.contains_key(name), "{name} is rendered");
        }
        // Families whose series need a peer, a projection or a settlement are declared, empty.
        for name in ["account_balance_units", "btp_connections", "packets_in_total", "projection_lag_events", "projection_read_back_events_total", "settlement_amount_total"] {
            assert!(families[name].help && families[name].samples.is_empty(), "{name} is declared with no series yet");
        }
        // Only meaningful type/status pairs appear at zero: 3 kinds × 2 statuses.
        assert_eq!(families["ilp_packets_processed_total"].samples.len(), 6);
        assert_eq!(families["ilp_rejects_total"].samples.len(), 23 * 2);
        assert!(value(&families, "process_start_time_seconds", &[]) > 1.6e9);
    }

    #[test]
    fn recorded_values_appear() {
        let m = Metrics::new();
        m.set_info("1.2.3", "node-a");
        m.packet_processed(PacketKind::Prepare, PacketStatus::Fulfilled);
        m.packet_processed(PacketKind::Prepare, PacketStatus::Fulfilled);
        m.packet_processed(PacketKind::Fulfill, PacketStatus::Invalid);
        m.packet_processed(PacketKind::Reject, PacketStatus::Generated);
        m.packet_latency(ReplyKind::Fulfill, Duration::from_micros(30)); // 50 µs bucket
        m.packet_latency(ReplyKind::Fulfill, Duration::from_millis(1)); // exactly 1 ms: le 0.001
        m.packet_latency(ReplyKind::Fulfill, Duration::from_secs(60)); // +Inf only
        m.packet_latency_ns(ReplyKind::Reject, 10_000);
        m.packets_in_flight_inc();
        m.packets_in_flight_inc();
        m.packets_in_flight_dec();
        m.reject(*b"T04", RejectOrigin::Local);
        m.reject(*b"F02", RejectOrigin::Downstream);
        m.reject(*b"X42", RejectOrigin::Downstream);
        m.reject(*b"F10", RejectOrigin::Local);
        m.error(ErrorKind::Journal, &"disk full");
        m.btp_connection_accepted();
        m.btp_auth_failure();
        m.btp_frames(FrameDirection::In, 5);
        m.btp_frames(FrameDirection::Out, 3);
        m.btp_frame_dropped(FrameDropReason::Oversized);
        m.btp_frame_inverted();
        m.set_queue_depth(PipelineStage::Journal, 17);
        m.batch_size(PipelineStage::Journal, 256);
        m.batch_size(PipelineStage::Journal, 3);
        m.pipeline_busy_reject();
        let alice = m.register_peer("alice", "USD");
        alice.set_balance(-1_500);
        alice.connection_opened();
        alice.connection_opened();
        alice.connection_closed();
        alice.reconnected();
        alice.packet_in();
        alice.packets_out_add(4);
        let quoted = m.register_peer("we\"ird\\peer\n", "XRP");
        quoted.set_balance(i128::MAX);

        let families = parse_exposition(&m.render());
        let processed = "ilp_packets_processed_total";
        assert_eq!(
            value(
                &families,
                processed,
                &[("type", "prepare"), ("status", "fulfilled")]
            ),
            2.0
        );
        assert_eq!(
            value(
                &families,
                processed,
                &[("type", "fulfill"), ("status", "invalid")]
            ),
            1.0
        );
        assert_eq!(
            value(
                &families,
                processed,
                &[("type", "reject"), ("status", "generated")]
            ),
            1.0
        );

        let bucket = "ilp_packet_latency_seconds_bucket";
        assert_eq!(
            value(
                &families,
                bucket,
                &[("type", "fulfill"), ("le", "0.000025")]
            ),
            0.0
        );
        assert_eq!(
            value(&families, bucket, &[("type", "fulfill"), ("le", "0.00005")]),
            1.0
        );
        assert_eq!(
            value(&families, bucket, &[("type", "fulfill"), ("le", "0.001")]),
            2.0
        );
        assert_eq!(
            value(&families, bucket, &[("type", "fulfill"), ("le", "30")]),
            2.0
        );
        assert_eq!(
            value(&families, bucket, &[("type", "fulfill"), ("le", "+Inf")]),
            3.0
        );
        let sum = value(
            &families,
            "ilp_packet_latency_seconds_sum",
            &[("type", "fulfill")],
        );
        assert!((sum - 60.00103).abs() < 1e-9, "sum in seconds, got {sum}");
        assert_eq!(
            value(
                &families,
                "ilp_packet_latency_seconds_count",
                &[("type", "reject")]
            ),
            1.0
        );
        assert_eq!(value(&families, "ilp_packets_in_flight", &[]), 1.0);

        let rejects = "ilp_rejects_total";
        assert_eq!(
            value(&families, rejects, &[("code", "T04"), ("origin", "local")]),
            1.0
        );
        assert_eq!(
            value(
                &families,
                rejects,
                &[("code", "F02"), ("origin", "downstream")]
            ),
            1.0
        );
        assert_eq!(
            value(
                &families,
                rejects,
                &[("code", "other"), ("origin", "downstream")]
            ),
            1.0
        );
        assert_eq!(
            value(
                &families,
                rejects,
                &[("code", "other"), ("origin", "local")]
            ),
            1.0
        );

        let errors = "connector_errors_total";
        assert_eq!(
            value(
                &families,
                errors,
                &[("type", "journal"), ("severity", "critical")]
            ),
            1.0
        );
        assert_eq!(
            value(
                &families,
                errors,
                &[("type", "codec"), ("severity", "warning")]
            ),
            0.0
        );

        assert_eq!(value(&families, "btp_connections_accepted_total", &[]), 1.0);
        assert_eq!(value(&families, "btp_auth_failures_total", &[]), 1.0);
        assert_eq!(
            value(&families, "btp_frames_total", &[("direction", "in")]),
            5.0
        );
        assert_eq!(
            value(&families, "btp_frames_total", &[("direction", "out")]),
            3.0
        );
        assert_eq!(
            value(
                &families,
                "btp_frames_dropped_total",
                &[("reason", "oversized")]
            ),
            1.0
        );
        assert_eq!(value(&families, "btp_frames_inverted_total", &[]), 1.0);

        assert_eq!(
            value(&families, "pipeline_queue_depth", &[("stage", "journal")]),
            17.0
        );
        let batch = "pipeline_batch_size_bucket";
        assert_eq!(
            value(&families, batch, &[("stage", "journal"), ("le", "4")]),
            1.0
        );
        assert_eq!(
            value(&families, batch, &[("stage", "journal"), ("le", "256")]),
            2.0
        );
        assert_eq!(
            value(
                &families,
                "pipeline_batch_size_sum",
                &[("stage", "journal")]
            ),
            259.0
        );
        assert_eq!(value(&families, "pipeline_busy_rejects_total", &[]), 1.0);

        let balance = "account_balance_units";
        assert_eq!(
            value(
                &families,
                balance,
                &[("peer_id", "alice"), ("token_id", "USD")]
            ),
            -1500.0
        );
        let weird = [("peer_id", "we\"ird\\peer\n"), ("token_id", "XRP")];
        assert_eq!(value(&families, balance, &weird), i64::MAX as f64);
        assert_eq!(
            value(&families, "btp_connections", &[("peer_id", "alice")]),
            1.0
        );
        assert_eq!(
            value(&families, "btp_reconnects_total", &[("peer_id", "alice")]),
            1.0
        );
        assert_eq!(
            value(&families, "packets_in_total", &[("peer_id", "alice")]),
            1.0
        );
        assert_eq!(
            value(&families, "packets_out_total", &[("peer_id", "alice")]),
            4.0
        );

        let info = [("version", "1.2.3"), ("node_id", "node-a")];
        assert_eq!(value(&families, "connector_info", &info), 1.0);
    }

    #[test]
    fn register_peer_returns_one_handle_per_peer() {
        let m = Metrics::new();
        let first = m.register_peer("bob", "XRP");
        let again = m.register_peer("bob", "XRP");
        assert!(Arc::ptr_eq(&first, &again));
        first.set_balance(i128::MIN);
        assert_eq!(again.balance(), i64::MIN);

        let replaced = m.register_peer("bob", "EUR");
        assert!(!Arc::ptr_eq(&first, &replaced));
        let families = parse_exposition(&m.render());
        assert_eq!(families["account_balance_units"].samples.len(), 1);
        assert_eq!(
            families["account_balance_units"].samples[0].labels["token_id"],
            "EUR"
        );

        m.unregister_peer("bob");
        let families = parse_exposition(&m.render());
        assert!(families["btp_connections"].samples.is_empty(), "bob's series left the exposition");
        // Registered again, the peer starts from zero.
        replaced.packet_in();
        let back = m.register_peer("bob", "EUR");
        assert!(!Arc::ptr_eq(&back, &replaced));
        let families = parse_exposition(&m.render());
        assert_eq!(value(&families, "packets_in_total", &[("peer_id", "bob")]), 0.0);
    }

    #[test]
    fn reject_code_index_covers_the_table() {
        for (index, label) in REJECT_CODE_LABELS.iter().enumerate().take(22) {
            let code: [u8; 3] = label.as_bytes().try_into().unwrap();
            assert_eq!(reject_code_index(code), index, "{label}");
        }
        let other = REJECT_CODE_LABELS.len() - 1;
        for code in [
            *b"F10", *b"T06", *b"R03", *b"R98", *b"X00", *b"F0a", *b"\xff00", *b"f00",
        ] {
            assert_eq!(reject_code_index(code), other, "{code:?}");
        }
    }

    #[test]
    fn error_kinds_have_distinct_label_pairs() {
        let mut pairs: Vec<(&str, &str)> = ErrorKind::ALL
            .iter()
            .map(|k| (k.type_label(), k.severity().label()))
            .collect();
        pairs.sort();
        pairs.dedup();
        assert_eq!(pairs.len(), ErrorKind::ALL.len());
        for (index, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, index, "ALL is in declaration order");
        }
    }

    #[test]
    fn histogram_bounds_are_le() {
        let m = Metrics::new();
        for value in [0, 1, 2, 3, 4096, 4097, u64::MAX] {
            m.batch_size(PipelineStage::Router, value);
        }
        let families = parse_exposition(&m.render());
        let bucket = |le: &str| value(&families, "pipeline_batch_size_bucket", &[("stage", "router"), ("le", le)]);
        assert_eq!(bucket("1"), 2.0, "0 and 1 are <= 1");
        assert_eq!(bucket("2"), 3.0, "2 is <= 2");
        assert_eq!(bucket("4"), 4.0, "3 is <= 4");
        assert_eq!(bucket("2048"), 4.0);
        assert_eq!(bucket("4096"), 5.0, "4096 is <= 4096");
        assert_eq!(bucket("+Inf"), 7.0, "above the last bound");
        assert_eq!(m.pipeline_batch_size[PipelineStage::Router as usize].count(), 7);
        // Latency is recorded in nanoseconds and exposed in seconds, bounds included.
        m.packet_latency_ns(ReplyKind::Fulfill, 25_000);
        m.packet_latency_ns(ReplyKind::Fulfill, 25_001);
        let families = parse_exposition(&m.render());
        let latency = |le: &str| value(&families, "ilp_packet_latency_seconds_bucket", &[("type", "fulfill"), ("le", le)]);
        assert_eq!((latency("0.000025"), latency("0.00005"), latency("30")), (1.0, 2.0, 2.0));
    }

    #[test]
    fn global_is_one_registry() {
        assert!(std::ptr::eq(global(), global()));
    }
}

// ---------------------------------------------------------------------------------------------
// Settlement
// ---------------------------------------------------------------------------------------------

/// Upper bounds of `settlement_latency_seconds`, in nanoseconds: from a claim on a funded
/// channel (milliseconds) to a channel opened and funded on a slow chain (minutes).
pub const SETTLEMENT_LATENCY_BOUNDS_NS: [u64; 14] = [
    10_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
    60_000_000_000,
    120_000_000_000,
    300_000_000_000,
    600_000_000_000,
];

/// The `method` label: the chain family a settlement used.
pub const SETTLEMENT_METHODS: [&str; 3] = ["evm", "xrpl", "aptos"];

/// The `stage` labels of failures: settlement stages, then channel actions.
pub const SETTLEMENT_FAILURE_STAGES: [&str; 10] =
    ["funding", "delivery", "refused", "open", "fund", "deposit", "update_proof", "settle", "close", "cooperative_settle"];

fn method_index(method: &str) -> usize {
    SETTLEMENT_METHODS.iter().position(|known| *known == method).unwrap_or(0)
}

/// Settlement's series. Recording is atomics, except the amount totals (a child looked up by
/// token, once per completed settlement).
#[derive(Debug)]
pub struct SettlementMetrics {
    /// `[method][success, failure]`.
    executed: [[Counter; 2]; 3],
    /// `[method][stage]`.
    failures: [[Counter; SETTLEMENT_FAILURE_STAGES.len()]; 3],
    latency: [Histogram; 3],
    /// Labels `method`, `token`: units settled. A float counter, as Prometheus stores every
    /// sample; the journal keeps the exact amounts.
    amounts: prometheus::CounterVec,
    channels_active: Gauge,
    channels_funded: Counter,
    channels_closed: Counter,
    disputes: Counter,
    claims_sent: Counter,
    claims_received: Counter,
    /// By [`crate::journal::event::ClaimRejection`] reason.
    claim_failures: [Counter; crate::journal::event::ClaimRejection::ALL.len()],
}

impl SettlementMetrics {
    fn new(r: &mut Families) -> SettlementMetrics {
        let executed = r.counter_vec("settlements_executed_total", HELP_SETTLEMENTS_EXECUTED, &["method", "status"]);
        let failures = r.counter_vec("settlement_failures_total", HELP_SETTLEMENT_FAILURES, &["method", "stage"]);
        let latency =
            r.histogram_vec("settlement_latency_seconds", HELP_SETTLEMENT_LATENCY, &["method"], &SETTLEMENT_LATENCY_BOUNDS_NS, 1e9);
        let amounts = prometheus::CounterVec::new(Opts::new("settlement_amount_total", HELP_SETTLEMENT_AMOUNT), &["method", "token"])
            .expect("valid metric name and labels");
        let amounts = r.register(("settlement_amount_total", HELP_SETTLEMENT_AMOUNT, "counter"), amounts);
        let claim_failures = r.counter_vec("claim_verification_failures_total", HELP_CLAIM_FAILURES, &["reason"]);
        SettlementMetrics {
            executed: SETTLEMENT_METHODS.map(|method| ["success", "failure"].map(|status| executed.with_label_values(&[method, status]))),
            failures: SETTLEMENT_METHODS.map(|method| SETTLEMENT_FAILURE_STAGES.map(|stage| failures.with_label_values(&[method, stage]))),
            latency: SETTLEMENT_METHODS.map(|method| Histogram::of(latency.with_label_values(&[method]), 1e9)),
            amounts,
            channels_active: r.gauge("payment_channels_active", HELP_CHANNELS_ACTIVE),
            channels_funded: r.counter("payment_channels_funded_total", HELP_CHANNELS_FUNDED),
            channels_closed: r.counter("payment_channels_closed_total", HELP_CHANNELS_CLOSED),
            disputes: r.counter("payment_channels_disputes_total", HELP_CHANNEL_DISPUTES),
            claims_sent: r.counter("claims_sent_total", HELP_CLAIMS_SENT),
            claims_received: r.counter("claims_received_total", HELP_CLAIMS_RECEIVED),
            claim_failures: children(&claim_failures, crate::journal::event::ClaimRejection::ALL.map(|reason| reason.label())),
        }
    }

    /// A settlement ended: acknowledged (`success`), with its latency and amount.
    pub fn executed(&self, method: &str, success: bool, latency_ms: u64, amount: u128, token: &str) {
        let index = method_index(method);
        self.executed[index][usize::from(!success)].inc();
        if success {
            self.latency[index].observe(latency_ms.saturating_mul(1_000_000));
            self.amounts.with_label_values(&[SETTLEMENT_METHODS[index], token]).inc_by(amount as f64);
        }
    }

    /// A settlement step or a channel transaction failed (it is retried).
    pub fn failed(&self, method: &str, stage: &str) {
        let method = method_index(method);
        self.executed[method][1].inc();
        let stage = SETTLEMENT_FAILURE_STAGES.iter().position(|known| *known == stage).unwrap_or(0);
        self.failures[method][stage].inc();
    }

    pub fn set_channels_active(&self, count: usize) {
        self.channels_active.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn channel_funded(&self) {
        self.channels_funded.inc();
    }

    pub fn channel_closed(&self) {
        self.channels_closed.inc();
    }

    pub fn dispute(&self) {
        self.disputes.inc();
    }

    pub fn claim_sent(&self) {
        self.claims_sent.inc();
    }

    pub fn claim_received(&self) {
        self.claims_received.inc();
    }

    pub fn claim_refused(&self, reason: crate::journal::event::ClaimRejection) {
        self.claim_failures[reason as usize].inc();
    }

    pub fn executed_count(&self, method: &str, success: bool) -> u64 {
        self.executed[method_index(method)][usize::from(!success)].get()
    }

    pub fn claim_failures_count(&self, reason: crate::journal::event::ClaimRejection) -> u64 {
        self.claim_failures[reason as usize].get()
    }
}

const HELP_SETTLEMENTS_EXECUTED: &str = "Settlement outcomes: success when the payee acknowledged our claim, failure for each failed step (retried).";
const HELP_SETTLEMENT_FAILURES: &str = "Failed settlement steps and channel transactions, by stage (each is retried with backoff).";
const HELP_SETTLEMENT_LATENCY: &str = "Time from a settlement's trigger to the payee's acknowledgement, by event times.";
const HELP_SETTLEMENT_AMOUNT: &str = "Units paid by acknowledged settlements, by method and token.";
const HELP_CHANNELS_ACTIVE: &str = "Payment channels with a configured peer that are not settled yet.";
const HELP_CHANNELS_FUNDED: &str = "Deposits of ours confirmed on chain.";
const HELP_CHANNELS_CLOSED: &str = "Closes of our channels confirmed on chain.";
const HELP_CHANNEL_DISPUTES: &str = "Channels a peer closed with an older proof of its payments than ours (we answer with ours).";
const HELP_CLAIMS_SENT: &str = "Claims we signed and journaled.";
const HELP_CLAIMS_RECEIVED: &str = "Claims peers sent us (accepted, refused or repeated).";
const HELP_CLAIM_FAILURES: &str = "Claims from peers we refused, by reason; the position did not move.";
