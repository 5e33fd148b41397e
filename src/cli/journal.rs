//! `m2m-connector journal inspect|verify|replay|stats`: the operator's and auditor's view of
//! the event journal.
//!
//! Every command opens the journal directory (`--dir`, else `JOURNAL_DIR`, else
//! `./data/journal`) and, with `--archive DIR`, reads the frames that retention archived
//! there before the live ones, as one sequence checked for continuity across the boundary. A
//! running node holds sled's exclusive lock on its journal: stop it, or copy the directory and
//! point `--dir` at the copy.
//!
//! Exit status: 0 done; 1 the journal is corrupt, locked or unreadable (one line naming the
//! frame and the reason); 2 bad arguments (one line). Output is never "repaired": a bad frame
//! stops the command where it is.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rustc_hash::FxHashSet;
use serde_json::Value;

use crate::journal::json::{event_fields, json_line, rfc3339};
use crate::journal::retention::{self, Frame};
use crate::journal::{JournalEntry, JournalError, SledStore};
use crate::projections::balances::Balances;
use crate::projections::Projection;

const EXIT_STATUS_JOURNAL: u8 = 1;
/// Bad arguments, the same status as clap's usage errors and `packet decode`.
const EXIT_STATUS_INVALID_INPUT: u8 = 2;

/// Event kinds, as `Event::kind` names them, accepted by `inspect --type`.
const EVENT_KINDS: [&str; 23] = crate::journal::Event::KINDS;

#[derive(clap::Args, Debug)]
pub struct JournalArgs {
    #[command(subcommand)]
    command: JournalCommand,
}

#[derive(clap::Args, Debug)]
struct Location {
    /// The journal directory. The node must be stopped (it holds the journal's lock), or copy
    /// the directory and point here at the copy.
    #[arg(long, env = "JOURNAL_DIR", default_value = "./data/journal")]
    dir: PathBuf,
    /// Also read the frames retention archived in this directory (JOURNAL_RETENTION=archive).
    #[arg(long, value_name = "DIR")]
    archive: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
enum JournalCommand {
    /// Print events as JSON lines, oldest first.
    Inspect {
        #[command(flatten)]
        location: Location,
        /// First sequence number to print.
        #[arg(long, value_name = "SEQ", default_value_t = 1)]
        from: u64,
        /// Most events to print; 0 prints all.
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: u64,
        /// Only events naming this peer (peer, from_peer, to_peer), and the end of every packet
        /// whose PacketPrepared was shown.
        #[arg(long, value_name = "ID")]
        peer: Option<String>,
        /// Only events about this packet id.
        #[arg(long, value_name = "ID")]
        packet: Option<u64>,
        /// Only events of this type (e.g. PacketRejected; case-insensitive).
        #[arg(long = "type", value_name = "T")]
        kind: Option<String>,
    },
    /// Check every frame's checksum and the sequence's continuity; print a summary.
    Verify {
        #[command(flatten)]
        location: Location,
    },
    /// Rebuild a projection from the journal and print its state digest.
    Replay {
        #[command(flatten)]
        location: Location,
        /// The projection to rebuild: balances (printed), or explorer (the Explorer's index,
        /// rewritten in --index-dir).
        #[arg(long, value_name = "NAME")]
        projection: String,
        /// With --projection explorer: the index to rebuild [default: <dir>/../explorer-index,
        /// where the node keeps it]. The node must be stopped.
        #[arg(long, value_name = "DIR")]
        index_dir: Option<PathBuf>,
        /// Start from the newest snapshot at or before SEQ instead of the beginning.
        #[arg(long, value_name = "SEQ")]
        from: Option<u64>,
        /// Stop after SEQ: the state as of that point in history.
        #[arg(long, value_name = "SEQ")]
        at: Option<u64>,
    },
    /// The routing table (configured and learned routes) as it was at a point in history,
    /// rebuilt from the start's RoutingConfigured and the RouteLearned/RouteWithdrawn after it.
    Routes {
        #[command(flatten)]
        location: Location,
        /// The table as of this event [default: the journal's last].
        #[arg(long, value_name = "SEQ")]
        at: Option<u64>,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Counts and ranges: events, frames, bytes, times, snapshots, checkpoints, event types.
    Stats {
        #[command(flatten)]
        location: Location,
    },
}

/// Why a command stopped; decides the exit status.
#[derive(Debug)]
enum Failure {
    /// Bad arguments: exit 2.
    Usage(String),
    /// The journal can't be read as asked: exit 1.
    Journal(String),
}

impl From<JournalError> for Failure {
    fn from(error: JournalError) -> Failure {
        Failure::Journal(match error {
            JournalError::Corrupt { dir, frame, reason } => {
                format!("frame {frame} of the journal in {} is bad: {reason}", dir.display())
            }
            JournalError::Locked(dir) => format!(
                "the journal in {0} is locked by a running node (sled holds an exclusive lock while \
                 the node runs): stop the node, or copy the directory (cp -a {0} /tmp/journal-copy) \
                 and pass --dir /tmp/journal-copy",
                dir.display()
            ),
            JournalError::Storage(message) => message,
        })
    }
}

pub fn run(args: JournalArgs) -> ExitCode {
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let result = match args.command {
        JournalCommand::Inspect { location, from, limit, peer, packet, kind } => {
            let filter = Filter { peer, packet_id: packet, kind: None };
            inspect(&location, from, limit, filter, kind, &mut stdout)
        }
        JournalCommand::Verify { location } => verify(&location, &mut stdout),
        JournalCommand::Replay { location, projection, from: None, at: None, index_dir } if projection == "explorer" => {
            rebuild_explorer(&location, index_dir, &mut stdout)
        }
        JournalCommand::Replay { projection, index_dir: Some(_), .. } if projection != "explorer" => {
            Err(Failure::Usage("--index-dir goes with --projection explorer".into()))
        }
        JournalCommand::Replay { projection, .. } if projection == "explorer" => {
            Err(Failure::Usage("the explorer index is rebuilt from the beginning: drop --from and --at".into()))
        }
        JournalCommand::Replay { location, projection, from, at, .. } => {
            replay(&location, &projection, from, at, &mut stdout)
        }
        JournalCommand::Stats { location } => stats(&location, &mut stdout),
        JournalCommand::Routes { location, at, json } => routes(&location, at, json, &mut stdout),
    };
    // What was printed before a failure stays printed; a closed pipe (`| head`) is no error.
    let _ = stdout.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let (status, message) = match failure {
                Failure::Usage(message) => (EXIT_STATUS_INVALID_INPUT, message),
                Failure::Journal(message) => (EXIT_STATUS_JOURNAL, message),
            };
            let _ = writeln!(std::io::stderr().lock(), "error: {}", message.replace(['\n', '\r'], " "));
            ExitCode::from(status)
        }
    }
}

/// Opens the journal for reading; refuses a directory that holds no journal rather than letting
/// sled create one there.
fn open(location: &Location) -> Result<SledStore, Failure> {
    if !location.dir.join("db").is_file() || !location.dir.join("conf").is_file() {
        return Err(Failure::Usage(format!(
            "no journal in {} (pass --dir DIR or set JOURNAL_DIR)",
            location.dir.display()
        )));
    }
    if let Some(archive) = &location.archive {
        if !archive.is_dir() {
            return Err(Failure::Usage(format!("the archive directory {} does not exist", archive.display())));
        }
    }
    Ok(SledStore::open(&location.dir)?)
}

/// Frames from `from_seq` on, archived ones first when `--archive` is given.
fn frames<'a>(
    store: &'a SledStore,
    location: &Location,
    from_seq: u64,
) -> Result<impl Iterator<Item = Result<Frame, JournalError>> + 'a, Failure> {
    Ok(retention::frames_with_archive(store, location.archive.as_deref(), from_seq)?)
}

// ---------------------------------------------------------------------------------------------
// inspect

struct Filter {
    peer: Option<String>,
    packet_id: Option<u64>,
    kind: Option<&'static str>,
}

fn inspect(
    location: &Location,
    from_seq: u64,
    limit: u64,
    mut filter: Filter,
    kind: Option<String>,
    out: &mut impl Write,
) -> Result<(), Failure> {
    if let Some(kind) = kind {
        filter.kind = Some(EVENT_KINDS.iter().copied().find(|known| known.eq_ignore_ascii_case(&kind)).ok_or_else(
            || Failure::Usage(format!("unknown event type {kind:?} (one of: {})", EVENT_KINDS.join(", "))),
        )?);
    }
    let from_seq = from_seq.max(1);
    let store = open(location)?;
    // Packets whose PacketPrepared matched `--peer`: their end is shown too.
    let mut followed: FxHashSet<u64> = FxHashSet::default();
    let mut printed: u64 = 0;
    let mut first_frame = true;
    for frame in frames(&store, location, from_seq)? {
        let frame = frame?;
        if first_frame && frame.key > from_seq && location.archive.is_none() {
            eprintln!(
                "note: the live journal starts at seq {}; earlier events were archived or deleted \
                 (read an archive with --archive DIR)",
                frame.key
            );
        }
        first_frame = false;
        for entry in frame.entries.iter().filter(|entry| entry.seq >= from_seq) {
            if filter.kind.is_some_and(|kind| kind != entry.event.kind()) {
                continue;
            }
            let fields = event_fields(entry);
            if !filter.matches(entry, &fields, &mut followed) {
                continue;
            }
            if writeln!(out, "{}", json_line(entry, &fields)).is_err() {
                return Ok(()); // The reader went away (`| head`).
            }
            printed += 1;
            if limit != 0 && printed >= limit {
                return Ok(());
            }
        }
    }
    Ok(())
}

impl Filter {
    fn matches(&self, entry: &JournalEntry, fields: &serde_json::Map<String, Value>, followed: &mut FxHashSet<u64>) -> bool {
        let packet_id = fields.get("packet_id").and_then(Value::as_u64);
        if self.packet_id.is_some() && packet_id != self.packet_id {
            return false;
        }
        let Some(peer) = &self.peer else { return true };
        let names_peer = ["peer", "from_peer", "to_peer"]
            .iter()
            .any(|key| fields.get(*key).and_then(Value::as_str) == Some(peer.as_str()));
        let kind = entry.event.kind();
        let ends_packet = kind == "PacketFulfilled" || kind == "PacketRejected";
        match packet_id {
            Some(packet_id) if ends_packet => followed.remove(&packet_id) || names_peer,
            Some(packet_id) if names_peer => {
                followed.insert(packet_id);
                true
            }
            _ => names_peer,
        }
    }
}


// ---------------------------------------------------------------------------------------------
// verify

#[derive(Default)]
struct Totals {
    frames_live: u64,
    frames_archived: u64,
    events: u64,
    size_bytes: u64,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
}

fn verify(location: &Location, out: &mut impl Write) -> Result<(), Failure> {
    let store = open(location)?;
    let totals = match &location.archive {
        None => {
            let summary = store.verify()?;
            Totals {
                frames_live: summary.frame_count,
                frames_archived: 0,
                events: summary.event_count,
                size_bytes: summary.size_bytes,
                first_seq: summary.first_seq,
                last_seq: summary.last_seq,
            }
        }
        // Decodes every frame, archived and live, and checks each continues the one before.
        Some(_) => {
            let mut totals = Totals::default();
            for frame in frames(&store, location, 1)? {
                let frame = frame?;
                totals.add(&frame);
            }
            totals
        }
    };
    let snapshot_seqs = store.snapshot_seqs()?;
    if let Some(first_seq) = totals.first_seq.filter(|&first_seq| first_seq > 1) {
        // Start-up needs a snapshot at or after the seq before the first frame held.
        if !snapshot_seqs.iter().any(|&seq| seq + 1 >= first_seq) {
            return Err(Failure::Journal(format!(
                "the journal in {} starts at seq {first_seq} and no snapshot covers seqs 1..{} \
                 (snapshots held: {}); the node cannot start on it",
                location.dir.display(),
                first_seq - 1,
                list(&snapshot_seqs)
            )));
        }
    }
    let _ = writeln!(out, "journal {}: ok", location.dir.display());
    let _ = writeln!(out, "frames      {}", totals.frames_text());
    let _ = writeln!(out, "events      {}", totals.events_text());
    let _ = writeln!(out, "size        {} bytes", totals.size_bytes);
    let _ = writeln!(out, "snapshots   {}", list(&snapshot_seqs));
    if location.archive.is_none() && totals.first_seq.is_some_and(|first_seq| first_seq > 1) {
        let _ = writeln!(out, "note        events before seq {} are not in the live journal (archived or deleted; covered by a snapshot)", totals.first_seq.unwrap_or(1));
    }
    commit_log_note(&store, out);
    Ok(())
}

/// After a crash, opening the journal copies into sled the frames only its commit log held:
/// say so, since the tool, not the node, did it.
fn commit_log_note(store: &SledStore, out: &mut impl Write) {
    if let Some((frames, last_seq)) = store.copied_from_commit_log() {
        let _ = writeln!(
            out,
            "recovered   {frames} frame(s) up to seq {last_seq} copied from the commit log into sled \
             (written after sled's last flush; the node stopped without closing the journal)"
        );
    }
}

impl Totals {
    fn add(&mut self, frame: &Frame) {
        if frame.archived {
            self.frames_archived += 1;
        } else {
            self.frames_live += 1;
        }
        self.events += frame.entries.len() as u64;
        self.size_bytes += frame.size as u64;
        self.first_seq.get_or_insert(frame.key);
        self.last_seq = frame.entries.last().map(|entry| entry.seq);
    }

    fn frames_text(&self) -> String {
        let total = self.frames_live + self.frames_archived;
        if self.frames_archived == 0 {
            total.to_string()
        } else {
            format!("{total} ({} archived, {} live)", self.frames_archived, self.frames_live)
        }
    }

    fn events_text(&self) -> String {
        match (self.first_seq, self.last_seq) {
            (Some(first_seq), Some(last_seq)) => format!("{} (seq {first_seq}..={last_seq})", self.events),
            _ => "0 (empty journal)".to_string(),
        }
    }
}

fn list(seqs: &[u64]) -> String {
    if seqs.is_empty() {
        return "none".to_string();
    }
    seqs.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------------------------
// replay

/// `journal replay --projection explorer`: the Explorer's index, cleared and written again from
/// every frame (archive included).
fn rebuild_explorer(location: &Location, index_dir: Option<PathBuf>, out: &mut impl Write) -> Result<(), Failure> {
    use crate::explorer::index::ExplorerIndex;
    let started = Instant::now();
    let index_dir = index_dir.unwrap_or_else(|| location.dir.parent().unwrap_or(std::path::Path::new(".")).join("explorer-index"));
    let store = open(location)?;
    let live = std::sync::Arc::new(crate::explorer::live::Live::detached());
    let mut frames = frames(&store, location, 1)?.peekable();
    let first_seq = match frames.peek() {
        Some(Ok(frame)) => frame.entries.first().map_or(1, |entry| entry.seq),
        _ => 1,
    };
    let mut index = ExplorerIndex::rebuild(&index_dir, &store, live, first_seq).map_err(|error| Failure::Journal(format!("{error:#}")))?;
    for frame in frames {
        let frame = frame?;
        index.apply_batch(&frame.entries).map_err(|error| Failure::Journal(error.message))?;
    }
    let reader = index.reader();
    index.close();
    let counts = reader.counts();
    let _ = writeln!(out, "projection   explorer");
    let _ = writeln!(out, "index        {}", index_dir.display());
    let _ = writeln!(out, "state at     seq {}", reader.position());
    let _ = writeln!(out, "events       {} (packets {})", counts.events, counts.packets);
    let _ = writeln!(out, "elapsed      {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
    for (kind, count) in &counts.kinds {
        let _ = writeln!(out, "  {kind:24} {count}");
    }
    Ok(())
}

/// A projection `journal replay` can rebuild. Add a row to [`PROJECTIONS`] for each new one
/// (`tigerbeetle`, `explorer`).
struct NamedProjection {
    name: &'static str,
    replay: fn(&SledStore, &Location, Range) -> Result<Replayed, Failure>,
}

const PROJECTIONS: &[NamedProjection] = &[NamedProjection { name: "balances", replay: replay_as::<Balances> }];

/// What a projection offers `journal replay`.
trait Replayable: Projection + Sized {
    fn empty() -> Self;
    /// The state as of a journal snapshot taken at `seq`; None when the journal's snapshots
    /// don't hold this projection (it can then only be replayed from the beginning).
    fn from_journal_snapshot(seq: u64, bytes: &[u8]) -> Option<Result<Self, String>>;
    /// SHA-256 of a canonical rendering: equal digests mean equal state.
    fn state_digest(&self) -> [u8; 32];
    /// A few lines for a human.
    fn summary(&self) -> Vec<String>;
}

impl Replayable for Balances {
    fn empty() -> Self {
        Balances::new()
    }

    fn from_journal_snapshot(seq: u64, bytes: &[u8]) -> Option<Result<Self, String>> {
        Some(Balances::from_snapshot(bytes).map(|mut balances| {
            balances.set_position(seq);
            balances
        }))
    }

    fn state_digest(&self) -> [u8; 32] {
        self.digest()
    }

    fn summary(&self) -> Vec<String> {
        let mut lines = vec!["peers".to_string()];
        let width = self.iter().map(|(peer, _)| peer.len()).max().unwrap_or(0);
        for (peer, balance) in self.iter() {
            lines.push(format!("  {peer:width$}  position {}  reserved {}", balance.position, balance.reserved));
        }
        let open = self.open_packets();
        let mut open_line = format!("open packets {}", open.len());
        if let Some((packet_id, expires_at_in_ms)) = open.first() {
            open_line.push_str(&format!(" (oldest id {packet_id}, expires {})", rfc3339(*expires_at_in_ms)));
        }
        lines.push(open_line);
        lines.push(format!("packet id max {}", self.packet_id_max()));
        lines
    }
}

#[derive(Clone, Copy)]
struct Range {
    from_seq: Option<u64>,
    at_seq: Option<u64>,
}

struct Replayed {
    digest: [u8; 32],
    snapshot_seq: Option<u64>,
    events_applied: u64,
    first_applied_seq: Option<u64>,
    last_seq: u64,
    summary: Vec<String>,
    elapsed: Duration,
}

fn replay(
    location: &Location,
    name: &str,
    from_seq: Option<u64>,
    at_seq: Option<u64>,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let Some(projection) = PROJECTIONS.iter().find(|projection| projection.name == name) else {
        let names: Vec<&str> = PROJECTIONS.iter().map(|projection| projection.name).collect();
        return Err(Failure::Usage(format!("unknown projection {name:?} (one of: {})", names.join(", "))));
    };
    if let (Some(from_seq), Some(at_seq)) = (from_seq, at_seq) {
        if from_seq > at_seq {
            return Err(Failure::Usage(format!("--from {from_seq} is after --at {at_seq}")));
        }
    }
    let store = open(location)?;
    let replayed = (projection.replay)(&store, location, Range { from_seq, at_seq })?;
    let start = match replayed.snapshot_seq {
        Some(seq) => format!("snapshot at seq {seq}"),
        None => "empty state".to_string(),
    };
    let applied = match replayed.first_applied_seq {
        Some(first_seq) => format!("{} events (seq {first_seq}..={})", replayed.events_applied, replayed.last_seq),
        None => "0 events".to_string(),
    };
    let _ = writeln!(out, "projection   {}", projection.name);
    let _ = writeln!(out, "digest       {}", hex::encode(replayed.digest));
    let _ = writeln!(out, "start        {start}");
    let _ = writeln!(out, "applied      {applied}");
    let _ = writeln!(out, "state at     seq {}", replayed.last_seq);
    let _ = writeln!(out, "elapsed      {:.1} ms", replayed.elapsed.as_secs_f64() * 1e3);
    for line in replayed.summary {
        let _ = writeln!(out, "{line}");
    }
    Ok(())
}

fn replay_as<P: Replayable>(store: &SledStore, location: &Location, range: Range) -> Result<Replayed, Failure> {
    let started = Instant::now();
    let (mut projection, snapshot_seq) = starting_state::<P>(store, range.from_seq)?;
    let start_seq = projection.position();
    let at_seq = range.at_seq.unwrap_or(u64::MAX);
    let mut last_seq = start_seq;
    let mut events_applied = 0u64;
    let mut first_applied_seq = None;
    let _quiet = QuietPanics::install();
    'frames: for frame in frames(store, location, start_seq + 1)? {
        let frame = frame?;
        for entry in frame.entries.into_iter().filter(|entry| entry.seq > start_seq) {
            if entry.seq > at_seq {
                break 'frames;
            }
            if entry.seq != last_seq + 1 {
                return Err(gap(store, location, last_seq, entry.seq));
            }
            apply_checked(&mut projection, &entry)?;
            first_applied_seq.get_or_insert(entry.seq);
            last_seq = entry.seq;
            events_applied += 1;
        }
    }
    if let Some(at_seq) = range.at_seq.filter(|&at_seq| at_seq > last_seq) {
        return Err(Failure::Usage(format!("--at {at_seq} is beyond the journal's last seq {last_seq}")));
    }
    Ok(Replayed {
        digest: projection.state_digest(),
        snapshot_seq,
        events_applied,
        first_applied_seq,
        last_seq,
        summary: projection.summary(),
        elapsed: started.elapsed(),
    })
}

/// The empty state, or with `--from SEQ` (SEQ > 1) the newest snapshot at or before SEQ.
fn starting_state<P: Replayable>(store: &SledStore, from_seq: Option<u64>) -> Result<(P, Option<u64>), Failure> {
    let Some(from_seq) = from_seq.filter(|&from_seq| from_seq > 1) else {
        return Ok((P::empty(), None));
    };
    let Some((seq, bytes)) = store.latest_snapshot_at_most(from_seq)? else {
        return Err(Failure::Usage(format!(
            "no snapshot at or before seq {from_seq} (snapshots held: {}); use --from 1 to replay from the beginning",
            list(&store.snapshot_seqs()?)
        )));
    };
    match P::from_journal_snapshot(seq, &bytes) {
        Some(Ok(projection)) => Ok((projection, Some(seq))),
        Some(Err(reason)) => Err(Failure::Journal(format!("the snapshot at seq {seq} is unreadable: {reason}"))),
        None => Err(Failure::Usage("this projection is not in the journal's snapshots; replay it without --from".into())),
    }
}

fn gap(store: &SledStore, location: &Location, last_seq: u64, found_seq: u64) -> Failure {
    if last_seq == 0 || location.archive.is_none() {
        let snapshots = store.snapshot_seqs().map(|seqs| list(&seqs)).unwrap_or_else(|_| "unknown".into());
        return Failure::Journal(format!(
            "seqs {}..={} are not in the live journal (it continues at seq {found_seq}): they were \
             archived or deleted; pass --archive DIR, or --from a snapshot seq (snapshots held: {snapshots})",
            last_seq + 1,
            found_seq - 1,
        ));
    }
    Failure::Journal(format!("the journal jumps from seq {last_seq} to {found_seq}: events are missing"))
}

/// Applies one event; a projection's assertion (an event its state can't take, such as a
/// Fulfill for a packet not in flight) becomes an error naming the event, not a crash.
fn apply_checked<P: Projection>(projection: &mut P, entry: &JournalEntry) -> Result<(), Failure> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| projection.apply(entry)));
    result.map_err(|payload| {
        let reason = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
            .unwrap_or_else(|| "the projection refused it".into());
        Failure::Journal(format!("event seq {} ({}) cannot be applied: {reason}", entry.seq, entry.event.kind()))
    })
}

/// While alive, panics print nothing: [`apply_checked`] reports them as one-line errors.
type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

struct QuietPanics(Option<PanicHook>);

impl QuietPanics {
    fn install() -> QuietPanics {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        QuietPanics(Some(previous))
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        if let Some(previous) = self.0.take() {
            std::panic::set_hook(previous);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// stats

fn routes(location: &Location, at: Option<u64>, json: bool, out: &mut impl Write) -> Result<(), Failure> {
    use crate::ilp::ccp::RoutingTableId;
    use crate::pipeline::routes::Routes;
    let store = open(location)?;
    let mut table: Option<(u64, Routes)> = None;
    let mut last: Option<(u64, i64)> = None;
    'frames: for frame in frames(&store, location, 1)? {
        for entry in &frame?.entries {
            if at.is_some_and(|at| entry.seq > at) {
                break 'frames;
            }
            last = Some((entry.seq, entry.timestamp_ms));
            match &entry.event {
                crate::journal::Event::RoutingConfigured(configured) => {
                    table = Some((entry.seq, Routes::new(configured, RoutingTableId::default(), entry.timestamp_ms)));
                }
                event => {
                    if let Some((_, routes)) = table.as_mut() {
                        routes.apply(event, entry.timestamp_ms);
                    }
                }
            }
        }
    }
    let Some((seq, timestamp_ms)) = last else {
        return Err(Failure::Journal(format!("the journal in {} holds no events", location.dir.display())));
    };
    if at.is_some_and(|at| at > seq) {
        return Err(Failure::Usage(format!("--at {}: the journal ends at seq {seq}", at.unwrap_or_default())));
    }
    let Some((started, routes)) = table else {
        return Err(Failure::Journal(format!(
            "no RoutingConfigured event at or before seq {seq}: the journal was written before routes were journaled"
        )));
    };
    let rows = routes.rows();
    if json {
        let value = serde_json::json!({"seq": seq, "timestamp": rfc3339(timestamp_ms), "configured_at_seq": started, "routes": rows});
        let _ = writeln!(out, "{value}");
        return Ok(());
    }
    let _ = writeln!(out, "routing table as of seq {seq} ({}), configured at seq {started}", rfc3339(timestamp_ms));
    let width = rows.iter().map(|row| row.prefix.len().max(15)).max().unwrap_or(15);
    let _ = writeln!(out, "  {:width$}  {:12}  {:8}  {:24}  path", "prefix", "next hop", "source", "since");
    for row in &rows {
        let prefix = if row.prefix.is_empty() { "(default route)" } else { &row.prefix };
        let since = if row.since_ms > 0 { rfc3339(row.since_ms) } else { "-".into() };
        let _ = writeln!(out, "  {prefix:width$}  {:12}  {:8}  {since:24}  {}", row.peer, row.source, row.path.join(" "));
    }
    Ok(())
}

fn stats(location: &Location, out: &mut impl Write) -> Result<(), Failure> {
    let store = open(location)?;
    let mut totals = Totals::default();
    let mut first_timestamp_ms = None;
    let mut last_timestamp_ms = None;
    let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
    for frame in frames(&store, location, 1)? {
        let frame = frame?;
        totals.add(&frame);
        for entry in &frame.entries {
            first_timestamp_ms.get_or_insert(entry.timestamp_ms);
            last_timestamp_ms = Some(entry.timestamp_ms);
            *kinds.entry(entry.event.kind()).or_default() += 1;
        }
    }
    let snapshot_seqs = store.snapshot_seqs()?;
    let checkpoints = store.checkpoints()?;
    let time = |timestamp_ms: Option<i64>| timestamp_ms.map_or("-".to_string(), rfc3339);
    let _ = writeln!(out, "journal      {}", location.dir.display());
    if let Some(archive) = &location.archive {
        let files = retention::archive_files(archive)?;
        let plural = if files.len() == 1 { "" } else { "s" };
        let _ = writeln!(out, "archive      {} ({} file{plural})", archive.display(), files.len());
    }
    let _ = writeln!(out, "events       {}", totals.events_text());
    let _ = writeln!(out, "frames       {}", totals.frames_text());
    let _ = writeln!(out, "size         {} bytes", totals.size_bytes);
    let _ = writeln!(out, "first event  {}", time(first_timestamp_ms));
    let _ = writeln!(out, "last event   {}", time(last_timestamp_ms));
    let _ = writeln!(out, "snapshots    {}", list(&snapshot_seqs));
    let checkpoints_text = if checkpoints.is_empty() {
        "none".to_string()
    } else {
        checkpoints.iter().map(|(name, seq)| format!("{name} at seq {seq}")).collect::<Vec<_>>().join(", ")
    };
    let _ = writeln!(out, "checkpoints  {checkpoints_text}");
    commit_log_note(&store, out);
    let _ = writeln!(out, "events by type");
    let width = kinds.keys().map(|kind| kind.len()).max().unwrap_or(0);
    for (kind, count) in &kinds {
        let _ = writeln!(out, "  {kind:width$}  {count}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Event, PacketRejected, Stage};

    #[test]
    fn rfc3339_from_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_772_366_400_250), "2026-03-01T12:00:00.250Z");
    }

    #[test]
    fn json_line_makes_codes_and_bytes_readable() {
        let entry = JournalEntry {
            seq: 7,
            timestamp_ms: 1_772_366_400_250,
            event: Event::PacketRejected(PacketRejected {
                packet_id: 3,
                prepared: true,
                from_peer: "alice".into(),
                amount_in: 10,
                destination: "test.m2m.bob".into(),
                code: *b"F99",
                triggered_by: "test.m2m.bob".into(),
                message: "no".into(),
                stage: Stage::Downstream,
            }),
        };
        let line = json_line(&entry, &event_fields(&entry));
        assert!(line.starts_with(r#"{"seq":7,"timestamp":"2026-03-01T12:00:00.250Z","timestamp_ms":1772366400250,"type":"PacketRejected","#), "{line}");
        let json: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["code"], "F99");
        assert_eq!(json["stage"], "downstream");
        assert_eq!(json["from_peer"], "alice");
        let fulfillment = crate::journal::json::readable("fulfillment", serde_json::to_value([0xabu8; 32]).unwrap());
        assert_eq!(fulfillment, Value::String("ab".repeat(32)));
    }
}
