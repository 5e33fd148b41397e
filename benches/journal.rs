//! The event journal: append throughput by frame size, what encoding a frame costs, and how long
//! recovery takes on a journal of 1,000,000 events with and without a snapshot.
//!
//! Groups (each benchmark id is `group/case/frame size`, throughput in events):
//!
//! - `journal_append/commit_log/N`: what the journal writer does per batch: `Store::write_frame`
//!   (`frame::encode`, one sled insert, the frame queued for the commit log) then `Store::flush`
//!   (one write and one fdatasync of the commit log; a sled flush when the log is full), one
//!   frame of N events per iteration.
//! - `journal_append/sled_flush/N`: the same without a commit log (how the writer worked before
//!   it, and how tools still flush): the flush is sled's `db.flush()` plus an fdatasync of sled's
//!   log file. sled 0.34's flush ends in `sync_file_range` on Linux, not fdatasync (sled issues
//!   #1351, #1452), so it flushes neither the disk's write cache nor a grown file's size; and it
//!   hands the write to sled's IO thread pool and waits for it.
//! - `journal_append/no_flush/N`: `SledStore::set_durable(false)`: encode + insert only, to
//!   separate the disk from the rest.
//! - `journal_encode/*/N`: `frame::encode` alone into the store's reused buffer, and its two parts
//!   (bincode over serde, CRC-32), plus `prototype_manual`: a hand-written encoder in this file
//!   that produces the same bytes (checked before timing) without going through serde, to show
//!   what the serde layer costs.
//! - `journal_recovery/*` (only built when selected, it writes ~120 MB: run it with the filter
//!   `journal_recovery`): a journal of 1,000,000 events in frames of 256 in a temp dir, then
//!   `SledStore::open`, `check_checksums`, and `recovery::recover` without a snapshot (replays
//!   everything) and with a snapshot 2,624 events before the end. Few samples, seconds each.
//!
//! Events are a mix like the forwarder writes on a healthy link: per packet a `PacketPrepared`
//! (peers "alice" → "bob", a 30-byte destination, a 32-byte condition, real timestamps) and then,
//! 64 packets later, a `PacketFulfilled` (90%) or a relayed `PacketRejected` (F02 from
//! downstream, 8%); 2% of Prepares are refused before forwarding (a `PacketRejected` with
//! `prepared: false`, T04). Temp dirs are created under `$TMPDIR` (here /tmp, ext4 on the VM's
//! disk, not tmpfs: the fsync is real).
//!
//! Before the timed runs this binary prints the encoded frame size per frame size.
//!
//! Run:
//! `cargo bench --bench journal -- journal_append --measurement-time 3 --warm-up-time 1`
//! `cargo bench --bench journal -- journal_encode --measurement-time 3 --warm-up-time 1`
//! `cargo bench --bench journal -- journal_recovery`

use std::hint::black_box;
use std::path::Path;
use std::cell::OnceCell;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use m2m_connector::journal::{commit_log, frame};
use m2m_connector::projections::recovery;
use m2m_connector::journal::{
    Event, JournalEntry, PacketFulfilled, PacketPrepared, PacketRejected, SledStore, Stage, Store,
};
use m2m_connector::projections::balances::Balances;
use m2m_connector::projections::Projection;

const FRAME_SIZES: [usize; 6] = [1, 16, 64, 256, 1024, 4096];

// ---------------------------------------------------------------------------------------------
// Realistic events

/// Generates the forwarder's event stream: consecutive seqs from 1, every packet ended 64
/// packets after it was prepared, so the stream always replays cleanly into `Balances`.
struct EventStream {
    seq: u64,
    packet_id: u64,
    now_ms: i64,
    /// Prepared packets not yet ended, oldest first.
    in_flight: std::collections::VecDeque<(u64, u64)>,
    /// A cheap deterministic generator (xorshift) for the mix.
    rng: u64,
}

const IN_FLIGHT: usize = 64;

impl EventStream {
    fn new() -> Self {
        EventStream {
            seq: 0,
            packet_id: 0,
            now_ms: 1_767_000_000_000,
            in_flight: std::collections::VecDeque::new(),
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn entry(&mut self, event: Event) -> JournalEntry {
        self.seq += 1;
        JournalEntry { seq: self.seq, timestamp_ms: self.now_ms, event }
    }

    fn next(&mut self) -> JournalEntry {
        // End the oldest packet once the window is full, every other event.
        if self.in_flight.len() >= IN_FLIGHT && self.seq % 2 == 1 {
            let (packet_id, amount_in) = self.in_flight.pop_front().expect("window is full");
            let roll = self.random() % 100;
            let event = if roll < 92 {
                let mut fulfillment = [0u8; 32];
                for (index, byte) in fulfillment.iter_mut().enumerate() {
                    *byte = (packet_id as u8).wrapping_mul(31).wrapping_add(index as u8);
                }
                Event::PacketFulfilled(PacketFulfilled { packet_id, fulfillment })
            } else {
                Event::PacketRejected(PacketRejected {
                    packet_id,
                    prepared: true,
                    from_peer: "alice".into(),
                    amount_in,
                    destination: String::new(),
                    code: *b"F02",
                    triggered_by: "test.m2m.bob".into(),
                    message: "unreachable".into(),
                    stage: Stage::Downstream,
                })
            };
            return self.entry(event);
        }
        self.packet_id += 1;
        self.now_ms += (self.random() % 2) as i64;
        let packet_id = self.packet_id;
        let amount_in = 1_000 + self.random() % 100_000;
        // 30 bytes, like the load generator's `test.m2m.bob.<...>.p<counter>` destinations.
        let destination = format!("g.usd.bob.wallet.dev7.p{:08}", packet_id % 100_000_000);
        if self.random() % 100 < 2 {
            let event = Event::PacketRejected(PacketRejected {
                packet_id,
                prepared: false,
                from_peer: "alice".into(),
                amount_in,
                destination,
                code: *b"T04",
                triggered_by: "test.m2m".into(),
                message: "insufficient liquidity".into(),
                stage: Stage::Risk,
            });
            return self.entry(event);
        }
        let mut condition = [0u8; 32];
        for (index, byte) in condition.iter_mut().enumerate() {
            *byte = (packet_id as u8).wrapping_mul(17).wrapping_add(index as u8);
        }
        self.in_flight.push_back((packet_id, amount_in));
        let event = Event::PacketPrepared(PacketPrepared {
            packet_id,
            from_peer: "alice".into(),
            to_peer: "bob".into(),
            amount_in,
            amount_out: amount_in - amount_in / 1000,
            expires_at_in_ms: self.now_ms + 30_000,
            expires_at_out_ms: self.now_ms + 29_000,
            condition,
            destination,
            rate: None,
        });
        self.entry(event)
    }

    fn take(&mut self, count: usize) -> Vec<JournalEntry> {
        (0..count).map(|_| self.next()).collect()
    }
}

/// A frame of `size` events from the middle of a stream (past the warm-up of the window).
fn sample_frame(size: usize) -> Vec<JournalEntry> {
    let mut stream = EventStream::new();
    stream.take(1_000);
    stream.take(size)
}

/// Gives the frame the next `size` seqs, as the writer's next batch would have.
fn renumber(entries: &mut [JournalEntry], next_seq: &mut u64) {
    for entry in entries.iter_mut() {
        entry.seq = *next_seq;
        *next_seq += 1;
    }
}

fn print_frame_sizes() {
    println!("encoded frame size (bytes, bytes/event) and event mix:");
    for size in FRAME_SIZES {
        let entries = sample_frame(size);
        let mut buffer = Vec::new();
        frame::encode(&entries, &mut buffer).unwrap();
        let count = |kind: &str| entries.iter().filter(|entry| entry.event.kind() == kind).count();
        println!(
            "  {size:>5} events: {:>8} B, {:>6.1} B/event (prepared {}, fulfilled {}, rejected {})",
            buffer.len(),
            buffer.len() as f64 / size as f64,
            count("PacketPrepared"),
            count("PacketFulfilled"),
            count("PacketRejected"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Append

fn bench_append(c: &mut Criterion) {
    print_frame_sizes();
    let mut group = c.benchmark_group("journal_append");
    for (case, durable, commit_log) in
        [("commit_log", true, true), ("sled_flush", true, false), ("no_flush", false, false)]
    {
        for size in FRAME_SIZES {
            group.throughput(Throughput::Elements(size as u64));
            group.bench_with_input(BenchmarkId::new(case, size), &size, |b, &size| {
                let dir = tempfile::tempdir().expect("temp dir");
                let mut store = SledStore::open(dir.path()).expect("open journal");
                store.set_durable(durable);
                if commit_log {
                    store.attach_commit_log(commit_log::CAPACITY_DEFAULT).expect("commit log");
                }
                let mut entries = sample_frame(size);
                let mut next_seq = 1;
                b.iter_custom(|iterations| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        renumber(&mut entries, &mut next_seq);
                        let started = Instant::now();
                        store.write_frame(black_box(&entries)).expect("write");
                        store.flush().expect("flush");
                        total += started.elapsed();
                    }
                    total
                });
                drop(store);
            });
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// Encode, and a prototype without serde

/// Writes bincode 2's `standard()` varint for an unsigned integer (same bytes as bincode).
#[inline(always)]
fn varint_u64(out: &mut Vec<u8>, value: u64) {
    if value < 251 {
        out.push(value as u8);
    } else if value <= u16::MAX as u64 {
        out.push(251);
        out.extend_from_slice(&(value as u16).to_le_bytes());
    } else if value <= u32::MAX as u64 {
        out.push(252);
        out.extend_from_slice(&(value as u32).to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

fn varint_u128(out: &mut Vec<u8>, value: u128) {
    match u64::try_from(value) {
        Ok(small) => varint_u64(out, small),
        Err(_) => {
            out.push(254);
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
}

#[inline(always)]
fn varint_i64(out: &mut Vec<u8>, value: i64) {
    varint_u64(out, ((value << 1) ^ (value >> 63)) as u64);
}

#[inline(always)]
fn string(out: &mut Vec<u8>, value: &str) {
    varint_u64(out, value.len() as u64);
    out.extend_from_slice(value.as_bytes());
}

/// A hand-written encoder for the packet events (the prototype only covers the three packet
/// events; anything else falls back to bincode). Produces exactly `frame::encode`'s bytes.
fn encode_manual(entries: &[JournalEntry], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[frame::FORMAT_VERSION, 0, 0, 0, 0]);
    varint_u64(out, entries.len() as u64);
    for entry in entries {
        varint_u64(out, entry.seq);
        varint_i64(out, entry.timestamp_ms);
        match &entry.event {
            Event::PacketPrepared(event) => {
                out.push(3);
                varint_u64(out, event.packet_id);
                string(out, &event.from_peer);
                string(out, &event.to_peer);
                varint_u64(out, event.amount_in);
                varint_u64(out, event.amount_out);
                varint_i64(out, event.expires_at_in_ms);
                varint_i64(out, event.expires_at_out_ms);
                out.extend_from_slice(&event.condition);
                string(out, &event.destination);
                match event.rate {
                    None => out.push(0),
                    Some(rate) => {
                        out.push(1);
                        varint_u128(out, rate.numerator);
                        varint_u128(out, rate.denominator);
                    }
                }
            }
            Event::PacketFulfilled(event) => {
                out.push(4);
                varint_u64(out, event.packet_id);
                out.extend_from_slice(&event.fulfillment);
            }
            Event::PacketRejected(event) => {
                out.push(5);
                varint_u64(out, event.packet_id);
                out.push(event.prepared as u8);
                string(out, &event.from_peer);
                varint_u64(out, event.amount_in);
                string(out, &event.destination);
                out.extend_from_slice(&event.code);
                string(out, &event.triggered_by);
                string(out, &event.message);
                out.push(event.stage as u8);
            }
            other => {
                bincode::serde::encode_into_std_write(other, out, bincode::config::standard()).unwrap();
            }
        }
    }
    let checksum = crc32fast::hash(&out[frame::HEADER_SIZE..]);
    out[1..frame::HEADER_SIZE].copy_from_slice(&checksum.to_be_bytes());
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal_encode");
    for size in FRAME_SIZES {
        let entries = sample_frame(size);
        let mut buffer = Vec::with_capacity(64 << 10);
        let mut reference = Vec::new();
        frame::encode(&entries, &mut reference).unwrap();
        encode_manual(&entries, &mut buffer);
        assert_eq!(buffer, reference, "the prototype must write frame::encode's bytes");
        assert_eq!(frame::decode(entries[0].seq, &buffer).unwrap(), entries);

        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::new("frame_encode", size), &entries, |b, entries| {
            b.iter(|| frame::encode(black_box(entries), &mut buffer).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("bincode_serde_only", size), &entries, |b, entries| {
            b.iter(|| {
                buffer.clear();
                bincode::serde::encode_into_std_write(black_box(entries), &mut buffer, bincode::config::standard())
                    .unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("crc32_only", size), &reference, |b, bytes| {
            b.iter(|| crc32fast::hash(black_box(&bytes[frame::HEADER_SIZE..])))
        });
        group.bench_with_input(BenchmarkId::new("prototype_manual", size), &entries, |b, entries| {
            b.iter(|| encode_manual(black_box(entries), &mut buffer))
        });
        group.bench_with_input(BenchmarkId::new("frame_decode", size), &reference, |b, bytes| {
            b.iter(|| frame::decode(black_box(entries[0].seq), black_box(bytes)).unwrap())
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// Recovery

const RECOVERY_EVENTS: u64 = 1_000_000;
const RECOVERY_FRAME: usize = 256;
/// Where the snapshot goes: at the end of a frame ten full frames before the last full frame
/// (seq 997,376; 2,624 events to replay), as if the last one was made a moment ago.
const SNAPSHOT_SEQ: u64 = (RECOVERY_EVENTS / RECOVERY_FRAME as u64 - 10) * RECOVERY_FRAME as u64;

struct RecoveryJournals {
    _root: tempfile::TempDir,
    plain: std::path::PathBuf,
    with_snapshot: std::path::PathBuf,
    snapshot_bytes: usize,
}

/// Writes the journal the way the writer does (frames of 256, not flushed per frame: only the
/// result matters here), optionally with a snapshot of `Balances` at `SNAPSHOT_SEQ` made the
/// way the forwarder makes one (the state after applying every event up to it).
fn build_journal(dir: &Path, snapshot: bool) -> usize {
    let started = Instant::now();
    let mut store = SledStore::open(dir).expect("open journal");
    store.set_durable(false);
    let mut stream = EventStream::new();
    let mut balances = Balances::new();
    let mut snapshot_bytes = 0;
    let mut written = 0u64;
    while written < RECOVERY_EVENTS {
        let entries = stream.take(RECOVERY_FRAME.min((RECOVERY_EVENTS - written) as usize));
        written += entries.len() as u64;
        store.write_frame(&entries).expect("write");
        if snapshot {
            for entry in &entries {
                balances.apply(entry);
            }
            if written == SNAPSHOT_SEQ {
                let bytes = balances.to_snapshot();
                snapshot_bytes = bytes.len();
                store.save_snapshot(written, &bytes).expect("snapshot");
            }
        }
    }
    store.set_durable(true);
    store.flush().expect("flush");
    drop(store);
    println!(
        "built {} ({} events{}) in {:.1} s, {:.1} MB on disk",
        dir.display(),
        RECOVERY_EVENTS,
        if snapshot { format!(", snapshot at {SNAPSHOT_SEQ} of {snapshot_bytes} B") } else { String::new() },
        started.elapsed().as_secs_f64(),
        dir_size(dir) as f64 / 1e6
    );
    snapshot_bytes
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn build_journals() -> RecoveryJournals {
    let root = tempfile::tempdir().expect("temp dir");
    let plain = root.path().join("plain");
    let with_snapshot = root.path().join("with-snapshot");
    build_journal(&plain, false);
    let snapshot_bytes = build_journal(&with_snapshot, true);
    RecoveryJournals { _root: root, plain, with_snapshot, snapshot_bytes }
}

fn bench_recovery(c: &mut Criterion) {
    // Built on first use (only when a recovery benchmark is selected), removed at the end of
    // this function (a static would never be dropped, leaving ~500 MB in the temp dir).
    let built: OnceCell<RecoveryJournals> = OnceCell::new();
    let journals = || built.get_or_init(build_journals);
    let mut group = c.benchmark_group("journal_recovery");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(5));

    // The sled open alone (sled scans its own log at open).
    group.bench_function("open", |b| {
        let journals = journals();
        b.iter(|| drop(SledStore::open(&journals.plain).expect("open")))
    });
    // Reported per event from here on.
    group.throughput(Throughput::Elements(RECOVERY_EVENTS));
    group.bench_function("check_checksums_only", |b| {
        let store = SledStore::open(&journals().plain).expect("open");
        b.iter(|| assert_eq!(store.check_checksums().unwrap(), RECOVERY_EVENTS.div_ceil(RECOVERY_FRAME as u64)))
    });
    group.bench_function("decode_all_frames_only", |b| {
        let store = SledStore::open(&journals().plain).expect("open");
        b.iter(|| {
            let mut events = 0;
            for frame in store.frames_from(1) {
                events += frame.unwrap().entries.len();
            }
            assert_eq!(events as u64, RECOVERY_EVENTS);
        })
    });
    group.bench_function("recover_no_snapshot", |b| {
        let store = SledStore::open(&journals().plain).expect("open");
        b.iter(|| {
            let recovered = recovery::recover(&store).expect("recover");
            assert_eq!((recovered.snapshot_seq, recovered.last_seq), (0, RECOVERY_EVENTS));
            recovered
        })
    });
    group.bench_function("recover_snapshot_near_end", |b| {
        let journals = journals();
        let store = SledStore::open(&journals.with_snapshot).expect("open");
        assert!(journals.snapshot_bytes > 0);
        b.iter(|| {
            let recovered = recovery::recover(&store).expect("recover");
            assert_eq!((recovered.snapshot_seq, recovered.last_seq), (SNAPSHOT_SEQ, RECOVERY_EVENTS));
            assert_eq!(recovered.events_replayed, RECOVERY_EVENTS - SNAPSHOT_SEQ);
            recovered
        })
    });
    // Start-up as the node sees it: open + recover, a fresh handle each time.
    group.bench_function("open_and_recover_no_snapshot", |b| {
        let journals = journals();
        b.iter(|| {
            let store = SledStore::open(&journals.plain).expect("open");
            recovery::recover(&store).expect("recover").last_seq
        })
    });
    group.bench_function("open_and_recover_snapshot_near_end", |b| {
        let journals = journals();
        b.iter(|| {
            let store = SledStore::open(&journals.with_snapshot).expect("open");
            recovery::recover(&store).expect("recover").last_seq
        })
    });
    // The same after a reboot, as far as this process can arrange it: the journal's files are
    // evicted from the page cache (posix_fadvise DONTNEED on each, outside the timed part)
    // before every open, so sled's open and the scan read from the disk.
    for (name, snapshot) in [("cold_open_and_recover_no_snapshot", false), ("cold_open_and_recover_snapshot_near_end", true)] {
        group.bench_function(name, |b| {
            let journals = journals();
            let dir = if snapshot { &journals.with_snapshot } else { &journals.plain };
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    evict_from_page_cache(dir);
                    let started = Instant::now();
                    let store = SledStore::open(dir).expect("open");
                    black_box(recovery::recover(&store).expect("recover").last_seq);
                    total += started.elapsed();
                    drop(store);
                }
                total
            })
        });
    }
    group.finish();
}

/// Drops the page-cache pages of every file under `dir` (they are clean: sled wrote them).
fn evict_from_page_cache(dir: &Path) {
    extern "C" {
        fn posix_fadvise(fd: i32, offset: i64, len: i64, advice: i32) -> i32;
    }
    const POSIX_FADV_DONTNEED: i32 = 4;
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            evict_from_page_cache(&path);
        } else if let Ok(file) = std::fs::File::open(&path) {
            use std::os::unix::io::AsRawFd;
            // SAFETY: a valid open descriptor; the call only advises the kernel.
            let result = unsafe { posix_fadvise(file.as_raw_fd(), 0, 0, POSIX_FADV_DONTNEED) };
            assert_eq!(result, 0, "posix_fadvise on {}", path.display());
        }
    }
}

criterion_group!(benches, bench_append, bench_encode, bench_recovery);
criterion_main!(benches);
