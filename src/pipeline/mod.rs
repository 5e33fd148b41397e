//! The packet pipeline: stage wiring. This module creates every queue between stages.
//!
//! ```text
//!  BTP sessions ──prepares (bounded; full → T03 at once)──► forwarder ──commits──► journal writer
//!       ▲        ──replies + session changes (bounded)───►     │                      │
//!       │                                                      │ forwarded Prepares,   │ Fulfills, once
//!       └──────────── session writer queues ◄──────────────────┘ Rejects               │ durable
//!                                              ◄───────────────────────────────────────┘
//! ```
//! The forwarder and the journal writer run on their own threads and block only on their
//! input queues; sessions (tokio tasks) never block on them: they `try_send` Prepares and
//! answer T03 when the queue is full, and wait asynchronously when the reply queue is full.

pub mod ccp_receiver;
pub mod ccp_sender;
pub mod forwarder;
pub mod policy;
pub mod routes;
pub mod routing;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;

use crate::config::Config;
use crate::health::Health;
use crate::ilp::packet::{Fulfill, Prepare, Reject};
use crate::projections::recovery::{self, Recovery};
use crate::journal::{self, Commit, JournalError, JournalStatus, SledStore};
use forwarder::{Forwarder, Held, Recovered};
pub use routing::PeerIndex;

/// Identifies one BTP connection (a peer may have several).
pub type SessionId = u64;

/// What a BTP session hands to the forwarder.
pub enum Input {
    Prepare(IncomingPrepare),
    /// A Fulfill, Reject or BTP Error answering a Prepare we sent on `session`.
    Reply { session: SessionId, request_id: u32, reply: Reply },
    SessionUp(LinkHandle),
    SessionDown { session: SessionId },
    /// A payment-channel claim a peer sent us (a BTP Message with an `m2m-claim` entry), with
    /// the account its signature recovers to (recovered in the session, off this thread).
    Claim(IncomingClaim),
    /// A report from the settlement executor (chain facts, funding outcomes).
    Settlement(crate::settlement::SettlementInput),
    /// A channel message a peer sent us (an `m2m-channel` entry: a cooperative settle proposal).
    ChannelMessage(IncomingChannelMessage),
    /// An operator's request (admin HTTP API).
    Admin(crate::settlement::AdminRequest),
    /// What a rate source read (see `crate::rates`).
    Rates(crate::rates::RatesUpdate),
}

/// Rate sources hand their reads to the forwarder through this. A full queue drops the read
/// (the next one comes an interval later; until then the rates held stay, and go stale on
/// their own).
impl crate::rates::RatesQueue for crossbeam_channel::Sender<Input> {
    fn offer(&self, update: crate::rates::RatesUpdate) -> bool {
        !matches!(self.try_send(Input::Rates(update)), Err(crossbeam_channel::TrySendError::Disconnected(_)))
    }
}

/// The settlement executor reports into the forwarder's queue through this, without knowing
/// the pipeline's types.
impl crate::settlement::ReportQueue for crossbeam_channel::Sender<Input> {
    fn offer(&self, input: crate::settlement::SettlementInput) -> Result<(), crate::settlement::Refused> {
        use crate::settlement::Refused;
        match self.try_send(Input::Settlement(input)) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::TrySendError::Full(Input::Settlement(input))) => Err(Refused::Full(input)),
            Err(crossbeam_channel::TrySendError::Full(_)) => unreachable!("try_send hands back what it was given"),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Err(Refused::Closed),
        }
    }
}

pub struct IncomingChannelMessage {
    pub session: SessionId,
    pub peer: PeerIndex,
    pub request_id: u32,
    pub data: Bytes,
    pub reply: ReplySlot,
}

pub struct IncomingClaim {
    pub session: SessionId,
    pub peer: PeerIndex,
    pub request_id: u32,
    pub claim: crate::settlement::claim::Claim,
    pub signer: Result<String, String>,
    /// The answer's place in the session's reply queue (see [`IncomingPrepare::reply`]).
    pub reply: ReplySlot,
}

pub struct IncomingPrepare {
    pub session: SessionId,
    pub peer: PeerIndex,
    pub request_id: u32,
    pub prepare: Prepare,
    pub received_at: Instant,
    /// A slot reserved in the session's reply queue: the answer to this Prepare (a durable
    /// Fulfill included) always has room, whatever else the session queues.
    pub reply: ReplySlot,
}

/// A reserved place for one frame in a session's reply queue, with a handle on the queue that
/// tells, before a Fulfill is handed over, whether the session is still there.
pub struct ReplySlot {
    permit: tokio::sync::mpsc::OwnedPermit<Bytes>,
    queue: tokio::sync::mpsc::Sender<Bytes>,
}

impl ReplySlot {
    /// Reserves room for one frame in `queue`: `Full` or `Closed` when there is none.
    pub fn reserve(queue: &tokio::sync::mpsc::Sender<Bytes>) -> Result<ReplySlot, tokio::sync::mpsc::error::TrySendError<()>> {
        use tokio::sync::mpsc::error::TrySendError;
        match queue.clone().try_reserve_owned() {
            Ok(permit) => Ok(ReplySlot { permit, queue: queue.clone() }),
            Err(TrySendError::Full(_)) => Err(TrySendError::Full(())),
            Err(TrySendError::Closed(_)) => Err(TrySendError::Closed(())),
        }
    }

    /// Queues `frame` in the reserved place; a closed session drops it.
    pub fn send(self, frame: Bytes) {
        self.permit.send(frame);
    }

    /// Queues `frame` if the session is still there, and says so; false (the frame dropped)
    /// when it had closed. The check comes before the hand-over: checked after, a session that
    /// took the frame, wrote it and then closed would look like one that never got it. A
    /// session that closes between the check and the write still loses the frame, unseen here.
    pub fn deliver(self, frame: Bytes) -> bool {
        if self.queue.is_closed() {
            return false;
        }
        self.permit.send(frame);
        true
    }
}

pub enum Reply {
    Fulfill(Fulfill),
    Reject(Reject),
    /// The next hop could not process our Prepare at all (a BTP Error).
    LinkError { message: String },
    /// A BTP Response without an ILP packet: the peer acknowledged a claim we sent.
    Ack,
    /// A BTP Response carrying an `m2m-channel` entry: the peer's answer to our channel message.
    Channel(Bytes),
}

/// The forwarder's handle on one session's writer: its queue of requests we originate
/// (forwarded Prepares). Replies to the peer's requests travel in each Prepare's [`ReplySlot`].
#[derive(Clone)]
pub struct LinkHandle {
    pub session: SessionId,
    pub peer: PeerIndex,
    pub requests: tokio::sync::mpsc::Sender<Bytes>,
}

/// Capacity of the forwarder's reply queue: replies are bounded by packets in flight, plus
/// room for session changes.
const REPLY_QUEUE_MARGIN: usize = 1024;

/// Commits the journal writer may have queued before the forwarder waits for it.
const JOURNAL_QUEUE_MAX: usize = 64;

/// The running pipeline: the queues sessions send into, and the stage threads.
pub struct Pipeline {
    pub prepares: crossbeam_channel::Sender<Input>,
    pub replies: crossbeam_channel::Sender<Input>,
    pub journal_status: Arc<JournalStatus>,
    /// Packets forwarded and not yet ended, published by the forwarder after each batch.
    pub in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// The seq of the last event the forwarder appended (durable once `durable_seq` reaches it).
    pub journal_head: Arc<std::sync::atomic::AtomicU64>,
    /// The routing table as the forwarder last published it (for the Explorer's `/api/routes`).
    pub routes: routes::RoutesPublished,
    /// A handle on the journal for readers (the store is shared; sled is safe to read while the
    /// writer appends).
    pub journal_store: SledStore,
    /// What the recovered journal says of settlement (where the chain watcher resumes, which
    /// channels are ours).
    pub settlement_recovered: crate::settlement::ledger::SettlementLedger,
    stopping: Arc<AtomicBool>,
    forwarder_thread: Option<JoinHandle<()>>,
    journal_thread: Option<JoinHandle<SledStore>>,
}

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot start the pipeline threads: {0}")]
    Thread(#[from] std::io::Error),
}

impl Pipeline {
    /// Opens the journal, rebuilds the state from it and starts the stages.
    pub fn start(
        config: &Config,
        health: Arc<Health>,
        settlement: Option<crate::settlement::SettlementLink>,
    ) -> Result<Pipeline, StartError> {
        let mut store = SledStore::open(&config.journal.dir)?;
        store.set_durable(config.journal.durable);
        let Recovery { balances, last_seq, snapshot_seq, frames_checked, events_replayed, elapsed } =
            recovery::recover(&store)?;
        tracing::info!(
            dir = %config.journal.dir.display(),
            last_seq,
            snapshot_seq,
            frames_checked,
            events_replayed,
            open_packets = balances.in_flight_count(),
            elapsed_ms = elapsed.as_millis() as u64,
            "journal recovered"
        );
        let settlement_recovered = balances.settlement().clone();
        let recovered = Recovered { balances, last_seq };
        let queue_max = config.node.pipeline_queue_max;
        let in_flight_max = queue_max.max(1) * 4;
        let (prepares_tx, prepares_rx) = crossbeam_channel::bounded(queue_max);
        let (replies_tx, replies_rx) = crossbeam_channel::bounded(in_flight_max + REPLY_QUEUE_MARGIN);
        let (journal_tx, journal_rx) = crossbeam_channel::bounded::<Commit<Held>>(JOURNAL_QUEUE_MAX);
        // Unbounded: at most one report per Fulfill held, and those are bounded by the packets
        // in flight.
        let (undelivered_tx, undelivered_rx) = crossbeam_channel::unbounded();
        let journal_status = Arc::new(JournalStatus::default());
        journal_status.durable_seq.store(last_seq, Ordering::Release);

        let writer_status = journal_status.clone();
        let mut writer_store = store.clone();
        writer_store.attach_commit_log(config.journal.commit_log_bytes)?;
        let journal_thread = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || journal::run_writer(writer_store, journal_rx, writer_status, undelivered_tx))?;
        let forwarder_status = journal_status.clone();
        let forwarder =
            Forwarder::new(config, journal_tx, forwarder_status, health, in_flight_max, recovered, settlement);
        let in_flight = forwarder.in_flight_published();
        let journal_head = forwarder.head_published();
        let routes = forwarder.routes_published();
        let stopping = Arc::new(AtomicBool::new(false));
        let forwarder_stopping = stopping.clone();
        let forwarder_thread = std::thread::Builder::new()
            .name("forwarder".into())
            .spawn(move || forwarder.run(replies_rx, prepares_rx, undelivered_rx, forwarder_stopping))?;
        Ok(Pipeline {
            prepares: prepares_tx,
            replies: replies_tx,
            journal_status,
            in_flight,
            journal_head,
            routes,
            journal_store: store,
            settlement_recovered,
            stopping,
            forwarder_thread: Some(forwarder_thread),
            journal_thread: Some(journal_thread),
        })
    }

    /// Closes the input queues and waits for the stages to drain and stop. Sessions must have
    /// been stopped first (they hold clones of the queues).
    pub fn stop(self) {
        let Pipeline { prepares, replies, stopping, forwarder_thread, journal_thread, .. } = self;
        stopping.store(true, Ordering::Relaxed);
        drop(prepares);
        drop(replies);
        if let Some(thread) = forwarder_thread {
            let _ = thread.join();
        }
        if let Some(thread) = journal_thread {
            let _ = thread.join();
        }
    }
}
