//! The wire codec on the packet path: ILP Prepare/Fulfill/Reject parsing, building a Prepare,
//! the in-place rewrite of a forwarded Prepare's amount and expiry, and the BTP frame around it.
//!
//! Every packet a connector relays is decoded once from BTP, parsed as a Prepare, rewritten and
//! framed again on the way out, and its Fulfill or Reject is parsed and framed on the way back.
//! These are the per-packet costs that bound a single core's packet rate before any routing or
//! IO, and DESIGN.md §4 promises that they are zero-copy and allocation-free where a buffer can
//! be reused. Before the timed runs this binary prints the heap allocations per operation (a
//! counting global allocator wraps the system one), so the "allocates nothing" claims are
//! measured too, not just asserted in prose.
//!
//! Run: `cargo bench --bench codec -- --measurement-time 3 --warm-up-time 1`

use std::hint::black_box;

use bytes::{Buf, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use m2m_connector::btp::packet::{
    ilp_frame_len, write_ilp_frame, BtpPacket, TYPE_MESSAGE, TYPE_RESPONSE,
};
use m2m_connector::ilp::oer::Reader;
use m2m_connector::ilp::packet::DATA_SIZE_MAX;
use m2m_connector::ilp::{
    ErrorCode, Fulfill, FulfillBuilder, Prepare, PrepareBuilder, Reject, RejectBuilder,
};

// ---------------------------------------------------------------------------------------------
// Allocation counting

#[path = "support/allocations.rs"]
mod allocations;
use allocations::allocations_per_operation;

// ---------------------------------------------------------------------------------------------
// Fixtures

/// 2026-01-01T00:00:30.000Z: a plausible expiry, in the middle of the timestamp range.
const EXPIRES_AT_MS: i64 = 1_767_225_630_000;
/// A five-segment destination, typical of a device behind a connector and its wallet.
const DESTINATION: &str = "g.usd.alice.wallet.device42";
const TRIGGERED_BY: &str = "g.usd.connector";

/// Data sizes: a STREAM-sized small payload, 1 KiB, and the largest the format allows.
const DATA_SIZES: [(&str, usize); 3] = [("32B", 32), ("1KiB", 1024), ("32KiB", DATA_SIZE_MAX)];

fn data_of_size(size: usize) -> Vec<u8> {
    (0..size).map(|index| (index % 251) as u8).collect()
}

fn prepare_bytes(data: &[u8]) -> Bytes {
    PrepareBuilder {
        amount: 1_000_000,
        expires_at_ms: EXPIRES_AT_MS,
        execution_condition: [7; 32],
        destination: DESTINATION,
        data,
    }
    .build()
    .expect("fixture Prepare is valid")
}

fn fulfill_bytes() -> Bytes {
    FulfillBuilder {
        fulfillment: [9; 32],
        data: &data_of_size(32),
    }
    .build()
    .expect("fixture Fulfill is valid")
}

fn reject_bytes() -> Bytes {
    RejectBuilder {
        code: ErrorCode::F02_UNREACHABLE,
        triggered_by: TRIGGERED_BY,
        message: "no route to g.usd.alice.wallet.device42",
        data: &[],
    }
    .build()
    .expect("fixture Reject is valid")
}

/// A BTP Message carrying `packet`, framed as the forwarder frames it.
fn message_frame(request_id: u32, packet: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(ilp_frame_len(packet.len()));
    write_ilp_frame(&mut out, TYPE_MESSAGE, request_id, packet.len());
    out.extend_from_slice(packet);
    out.freeze()
}

/// A `Bytes` as a WebSocket layer hands it over (backed by a `Vec`), already cloned once so the
/// timed clones are the reference-count increments the session pays, not the one-off promotion
/// of a `Vec`-backed `Bytes` to a shared one.
fn shared_bytes(bytes: &[u8]) -> Bytes {
    let shared = Bytes::from(bytes.to_vec());
    drop(shared.clone());
    shared
}

// ---------------------------------------------------------------------------------------------
// Allocation report

fn report_allocations() {
    let prepare_small = shared_bytes(&prepare_bytes(&data_of_size(32)));
    let prepare = Prepare::parse(prepare_small.clone()).expect("fixture parses");
    let fulfill = shared_bytes(&fulfill_bytes());
    let reject = shared_bytes(&reject_bytes());
    let frame = shared_bytes(&message_frame(42, &prepare_small));
    let data = data_of_size(32);
    let mut out = BytesMut::new();

    let rows: [(&str, f64); 10] = [
        (
            "Prepare::parse (32 B data)",
            allocations_per_operation(|| {
                black_box(Prepare::parse(black_box(prepare_small.clone())).ok());
            }),
        ),
        (
            "Fulfill::parse",
            allocations_per_operation(|| {
                black_box(Fulfill::parse(black_box(fulfill.clone())).ok());
            }),
        ),
        (
            "Reject::parse",
            allocations_per_operation(|| {
                black_box(Reject::parse(black_box(reject.clone())).ok());
            }),
        ),
        (
            "PrepareBuilder::build (fresh buffer)",
            allocations_per_operation(|| {
                black_box(prepare_builder(&data).build().ok());
            }),
        ),
        (
            "PrepareBuilder::write (reused buffer, clear)",
            allocations_per_operation(|| {
                out.clear();
                black_box(prepare_builder(&data).write(&mut out).ok());
            }),
        ),
        (
            "Prepare::write_forwarded (reused buffer, clear)",
            allocations_per_operation(|| {
                out.clear();
                prepare.write_forwarded(
                    black_box(999_000),
                    black_box(EXPIRES_AT_MS - 1000),
                    &mut out,
                );
                black_box(&out);
            }),
        ),
        (
            "forwarded frame as the forwarder builds it (fresh buffer, freeze)",
            allocations_per_operation(|| {
                black_box(forwarded_frame_fresh(&prepare, 42));
            }),
        ),
        (
            "BtpPacket::parse (Message carrying a Prepare)",
            allocations_per_operation(|| {
                black_box(BtpPacket::parse(black_box(frame.clone())).ok());
            }),
        ),
        (
            "PROTOTYPE BTP ilp fast path + Prepare::parse",
            allocations_per_operation(|| {
                let (_, _, packet) = ilp_frame_prototype(black_box(frame.clone())).expect("shape");
                black_box(Prepare::parse(packet).ok());
            }),
        ),
        (
            "write_ilp_frame + packet (reused buffer, clear)",
            allocations_per_operation(|| {
                out.clear();
                write_ilp_frame(&mut out, TYPE_RESPONSE, black_box(42), fulfill.len());
                out.extend_from_slice(&fulfill);
                black_box(&out);
            }),
        ),
    ];
    eprintln!("\nHeap allocations per operation (counting global allocator, 10,000 calls each):");
    for (operation, allocations) in rows {
        eprintln!("  {allocations:>6.3}  {operation}");
    }
    eprintln!();
}

fn prepare_builder(data: &[u8]) -> PrepareBuilder<'_> {
    PrepareBuilder {
        amount: 1_000_000,
        expires_at_ms: EXPIRES_AT_MS,
        execution_condition: [7; 32],
        destination: DESTINATION,
        data,
    }
}

/// What `pipeline::forwarder::forwarded_frame` does today: a new buffer per packet, frozen and
/// handed to the next hop's writer queue.
fn forwarded_frame_fresh(prepare: &Prepare, request_id: u32) -> Bytes {
    let ilp_len = prepare.forwarded_len();
    let mut out = BytesMut::with_capacity(ilp_frame_len(ilp_len));
    write_ilp_frame(&mut out, TYPE_MESSAGE, request_id, ilp_len);
    prepare.write_forwarded(999_000, EXPIRES_AT_MS - 1000, &mut out);
    out.freeze()
}

/// The alternative: frames carved with `split().freeze()` off one large buffer, which
/// allocates once per `ARENA_SIZE` bytes of frames instead of once per frame.
fn forwarded_frame_arena(prepare: &Prepare, request_id: u32, arena: &mut BytesMut) -> Bytes {
    const ARENA_SIZE: usize = 64 * 1024;
    let ilp_len = prepare.forwarded_len();
    let frame_len = ilp_frame_len(ilp_len);
    if arena.capacity() < frame_len {
        *arena = BytesMut::with_capacity(ARENA_SIZE.max(frame_len));
    }
    write_ilp_frame(arena, TYPE_MESSAGE, request_id, ilp_len);
    prepare.write_forwarded(999_000, EXPIRES_AT_MS - 1000, arena);
    arena.split().freeze()
}

/// PROTOTYPE of a suggested fast path, not production code: decodes a BTP Message or Response
/// whose protocol data is exactly one `ilp` entry of content type 0 (what every peer sends for
/// ILP), returning the packet as the input `Bytes` narrowed in place (`advance` + `truncate`:
/// no allocation, no reference-count traffic). `None` means "not that shape: use
/// `BtpPacket::parse`". Canonical lengths are still enforced by the OER reader.
fn ilp_frame_prototype(mut input: Bytes) -> Option<(u8, u32, Bytes)> {
    const ILP_ENTRY_HEAD: [u8; 7] = [0x01, 0x01, 0x03, b'i', b'l', b'p', 0];
    let (frame_type, request_id, packet_start, packet_size) = {
        let mut reader = Reader::new(&input);
        let frame_type = reader.read_u8("type").ok()?;
        if frame_type != TYPE_MESSAGE && frame_type != TYPE_RESPONSE {
            return None;
        }
        let request_id = reader.read_u32("requestId").ok()?;
        let contents = reader.read_var_octets("contents").ok()?;
        let entry = contents.strip_prefix(&ILP_ENTRY_HEAD)?;
        if !reader.is_empty() {
            return None;
        }
        let mut entry_reader = Reader::new(entry);
        let packet = entry_reader.read_var_octets("protocolData.data").ok()?;
        if !entry_reader.is_empty() {
            return None;
        }
        let packet_start = packet.as_ptr() as usize - input.as_ptr() as usize;
        (frame_type, request_id, packet_start, packet.len())
    };
    input.truncate(packet_start + packet_size);
    input.advance(packet_start);
    Some((frame_type, request_id, input))
}

// ---------------------------------------------------------------------------------------------
// Benchmarks

fn ilp_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("ilp_parse");
    group.throughput(Throughput::Elements(1));
    for (label, size) in DATA_SIZES {
        let input = shared_bytes(&prepare_bytes(&data_of_size(size)));
        group.bench_with_input(BenchmarkId::new("prepare", label), &input, |b, input| {
            b.iter(|| Prepare::parse(black_box(input.clone())).expect("valid"))
        });
    }
    let fulfill = shared_bytes(&fulfill_bytes());
    group.bench_function("fulfill/32B", |b| {
        b.iter(|| Fulfill::parse(black_box(fulfill.clone())).expect("valid"))
    });
    let reject = shared_bytes(&reject_bytes());
    group.bench_function("reject/F02", |b| {
        b.iter(|| Reject::parse(black_box(reject.clone())).expect("valid"))
    });
    group.finish();
}

fn ilp_build(c: &mut Criterion) {
    let mut group = c.benchmark_group("ilp_build");
    for (label, size) in DATA_SIZES {
        let data = data_of_size(size);
        let packet_size = prepare_bytes(&data).len() as u64;
        group.throughput(Throughput::Bytes(packet_size));
        group.bench_with_input(
            BenchmarkId::new("prepare_build", label),
            &data,
            |b, data| b.iter(|| prepare_builder(black_box(data)).build().expect("valid")),
        );
        let mut out = BytesMut::new();
        group.bench_with_input(
            BenchmarkId::new("prepare_write_reused", label),
            &data,
            |b, data| {
                b.iter(|| {
                    out.clear();
                    prepare_builder(black_box(data))
                        .write(&mut out)
                        .expect("valid");
                })
            },
        );
    }
    group.finish();
}

fn ilp_forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("ilp_forward");
    for (label, size) in DATA_SIZES {
        let prepare = Prepare::parse(shared_bytes(&prepare_bytes(&data_of_size(size))))
            .expect("fixture parses");
        group.throughput(Throughput::Bytes(prepare.forwarded_len() as u64));
        let mut out = BytesMut::with_capacity(prepare.forwarded_len());
        group.bench_function(BenchmarkId::new("write_forwarded_reused", label), |b| {
            b.iter(|| {
                out.clear();
                prepare.write_forwarded(
                    black_box(999_000),
                    black_box(EXPIRES_AT_MS - 1000),
                    &mut out,
                );
                black_box(&out);
            })
        });
        group.bench_function(BenchmarkId::new("frame_fresh_buffer", label), |b| {
            b.iter(|| forwarded_frame_fresh(black_box(&prepare), black_box(42)))
        });
        let mut arena = BytesMut::new();
        group.bench_function(BenchmarkId::new("frame_arena_split", label), |b| {
            b.iter(|| forwarded_frame_arena(black_box(&prepare), black_box(42), &mut arena))
        });
    }
    group.finish();
}

fn btp(c: &mut Criterion) {
    let mut group = c.benchmark_group("btp");
    group.throughput(Throughput::Elements(1));
    for (label, size) in DATA_SIZES {
        let frame = shared_bytes(&message_frame(42, &prepare_bytes(&data_of_size(size))));
        group.bench_with_input(
            BenchmarkId::new("parse_message_prepare", label),
            &frame,
            |b, frame| b.iter(|| BtpPacket::parse(black_box(frame.clone())).expect("valid")),
        );
    }
    // The session's whole inbound decode: BTP frame, then the Prepare inside it.
    let frame = shared_bytes(&message_frame(42, &prepare_bytes(&data_of_size(32))));
    group.bench_function("parse_message_then_prepare/32B", |b| {
        b.iter(|| {
            let BtpPacket::Message { protocol_data, .. } =
                BtpPacket::parse(black_box(frame.clone())).expect("valid")
            else {
                unreachable!("fixture is a Message");
            };
            let entry = protocol_data.into_iter().next().expect("one entry");
            Prepare::parse(entry.data).expect("valid")
        })
    });
    for (label, packet) in [
        ("fulfill_32B", fulfill_bytes()),
        ("reject_F02", reject_bytes()),
    ] {
        let mut out = BytesMut::new();
        group.bench_function(BenchmarkId::new("write_ilp_frame_reused", label), |b| {
            b.iter(|| {
                out.clear();
                write_ilp_frame(&mut out, TYPE_RESPONSE, black_box(42), packet.len());
                out.extend_from_slice(black_box(&packet));
                black_box(&out);
            })
        });
    }
    group.finish();
}

/// Reference costs that explain the numbers above: one `Bytes` clone + drop (an atomic
/// increment and decrement on the shared buffer) and one small heap allocation + free (the size
/// of the one-entry `Vec<ProtocolData>` that `BtpPacket::parse` returns).
fn baseline(c: &mut Criterion) {
    let mut group = c.benchmark_group("baseline");
    group.throughput(Throughput::Elements(1));
    let shared = shared_bytes(&prepare_bytes(&data_of_size(32)));
    group.bench_function("bytes_clone_drop", |b| b.iter(|| black_box(shared.clone())));
    group.bench_function("alloc_free_72B", |b| {
        b.iter(|| black_box(Vec::<[u64; 9]>::with_capacity(black_box(1))))
    });
    group.finish();
}

/// The suggested BTP fast path (see [`ilp_frame_prototype`]), for comparison with
/// `btp/parse_message_prepare` and `btp/parse_message_then_prepare`.
fn btp_prototype(c: &mut Criterion) {
    let mut group = c.benchmark_group("btp_prototype");
    group.throughput(Throughput::Elements(1));
    let frame = shared_bytes(&message_frame(42, &prepare_bytes(&data_of_size(32))));
    let full = BtpPacket::parse(frame.clone()).expect("valid");
    let fast = ilp_frame_prototype(frame.clone()).expect("fast-path shape");
    assert_eq!(
        (fast.0, fast.1, &fast.2),
        (
            full.frame_type(),
            full.request_id(),
            &full.protocol_data()[0].data
        )
    );
    group.bench_function("ilp_fast_path/32B", |b| {
        b.iter(|| ilp_frame_prototype(black_box(frame.clone())).expect("fast-path shape"))
    });
    group.bench_function("ilp_fast_path_then_prepare/32B", |b| {
        b.iter(|| {
            let (_, _, packet) =
                ilp_frame_prototype(black_box(frame.clone())).expect("fast-path shape");
            Prepare::parse(packet).expect("valid")
        })
    });
    group.finish();
}

fn allocation_report(_: &mut Criterion) {
    report_allocations();
}

criterion_group!(
    benches,
    allocation_report,
    baseline,
    ilp_parse,
    ilp_build,
    ilp_forward,
    btp,
    btp_prototype
);
criterion_main!(benches);
