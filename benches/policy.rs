//! The forwarder's per-packet risk arithmetic: expiry shortening (`outgoing_expiry_ms`), asset
//! conversion (`Conversion::apply`), the packet-rate and throughput buckets
//! (`TokenBucket::try_take`), and the credit check and bookkeeping of the balances projection
//! (`Balances::can_reserve`, `prepared`, `fulfilled`).
//!
//! All of these run once or twice for every Prepare on the forwarder's single thread, so their
//! sum is a floor on that thread's time per packet. They are pure arithmetic over plain data;
//! the cases worth watching are the ones that leave the fast path: a conversion whose product
//! needs more than 128 bits (the 256-by-128-bit long division) and the hash-map insert and
//! remove that `prepared`/`fulfilled` do with a realistic number of packets in flight. Before
//! the timed runs this binary prints the heap allocations per operation (counting allocator).
//!
//! Run: `cargo bench --bench policy -- --measurement-time 3 --warm-up-time 1`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use m2m_connector::pipeline::policy::{outgoing_expiry_ms, Conversion, TokenBucket};
use m2m_connector::projections::balances::Balances;

// ---------------------------------------------------------------------------------------------
// Allocation counting

#[path = "support/allocations.rs"]
mod allocations;
use allocations::allocations_per_operation;

// ---------------------------------------------------------------------------------------------
// Fixtures

const NOW_MS: i64 = 1_767_225_600_000;
const MIN_MESSAGE_WINDOW_MS: u64 = 1_000;
const MAX_HOLD_TIME_MS: u64 = 30_000;

/// Packets kept in flight in the balances benchmark: a busy link's worth (sessions bound their
/// in-flight count in the low thousands), so the pending map has a realistic size.
const IN_FLIGHT_COUNT: u64 = 4_096;
const PEER_COUNT: usize = 64;

/// The conversions to apply, with an amount that exercises each. (label, conversion, amount)
fn conversions() -> [(&'static str, Conversion, u64); 5] {
    [
        ("identity", Conversion::new(1, 1, 6, 6), 1_000_000),
        // USD cents (scale 2) to a scale-6 stablecoin at 0.9987: product fits in 128 bits.
        (
            "ratio_small",
            Conversion::new(9_987, 10_000, 2, 6),
            1_000_000,
        ),
        // ETH wei (scale 18) to USD cents (scale 2) at 3,141.59 USD/ETH: a 10^16 denominator.
        (
            "ratio_wei_to_cents",
            Conversion::new(314_159, 100, 18, 2),
            250_000_000_000_000_000,
        ),
        // A rate quoted to 30 decimal places: the product needs more than 128 bits, so apply
        // takes the 128-step long division.
        (
            "ratio_huge_factor_long_division",
            Conversion::new(
                917_364_512_839_471_625_384_910_273_645,
                10u128.pow(30),
                9,
                9,
            ),
            1_000_000_000_000_000,
        ),
        // The extreme: numerator and denominator near 2^126, amount u64::MAX.
        (
            "ratio_u128_max_third",
            Conversion::Ratio {
                numerator: u128::MAX / 3,
                denominator: u128::MAX / 3 - 1,
            },
            u64::MAX / 2,
        ),
    ]
}

/// A projection with `PEER_COUNT` peers and `IN_FLIGHT_COUNT` packets in flight, and the id of
/// the next packet to prepare.
fn balances_in_steady_state() -> (Balances, u64) {
    let mut balances = Balances::new();
    for peer in 0..PEER_COUNT {
        balances.peer_index(&format!("peer{peer}"));
    }
    for packet_id in 0..IN_FLIGHT_COUNT {
        let from = packet_id as usize % PEER_COUNT;
        balances.prepared(
            packet_id,
            from,
            1_000,
            (from + 1) % PEER_COUNT,
            999,
            NOW_MS + 30_000,
        );
    }
    (balances, IN_FLIGHT_COUNT)
}

/// One packet's bookkeeping in steady state: prepare a new packet and fulfill the oldest, so the
/// number in flight stays at `IN_FLIGHT_COUNT`.
fn prepare_and_fulfill(balances: &mut Balances, next_packet_id: &mut u64) {
    let packet_id = *next_packet_id;
    let from = packet_id as usize % PEER_COUNT;
    balances.prepared(
        packet_id,
        from,
        black_box(1_000),
        (from + 1) % PEER_COUNT,
        black_box(999),
        black_box(NOW_MS + 30_000),
    );
    balances.fulfilled(packet_id - IN_FLIGHT_COUNT);
    *next_packet_id += 1;
}

// ---------------------------------------------------------------------------------------------
// Benchmarks

fn expiry(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_expiry");
    group.throughput(Throughput::Elements(1));
    for (label, incoming_expires_at_ms) in [
        ("capped_by_max_hold", NOW_MS + 60_000),
        ("shortened_by_window", NOW_MS + 10_000),
        ("insufficient_R02", NOW_MS + 1_500),
    ] {
        group.bench_function(label, |b| {
            b.iter(|| {
                outgoing_expiry_ms(
                    black_box(incoming_expires_at_ms),
                    black_box(NOW_MS),
                    black_box(MIN_MESSAGE_WINDOW_MS),
                    black_box(MAX_HOLD_TIME_MS),
                )
            })
        });
    }
    group.finish();
}

fn conversion(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_conversion");
    group.throughput(Throughput::Elements(1));
    for (label, conversion, amount_in) in conversions() {
        assert!(conversion.apply(amount_in).is_ok(), "{label} converts");
        group.bench_function(label, |b| {
            b.iter(|| black_box(conversion).apply(black_box(amount_in)))
        });
    }
    group.finish();
}

fn token_bucket(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_token_bucket");
    group.throughput(Throughput::Elements(1));
    // Within one batch the forwarder passes the same now_ms: no refill, just the subtraction.
    // The rate is high enough that the bucket never runs dry during the run.
    let mut bucket = TokenBucket::new(u64::MAX / 1_000, NOW_MS);
    group.bench_function("take_same_ms", |b| {
        b.iter(|| bucket.try_take(black_box(1), black_box(NOW_MS)))
    });
    // Every call a millisecond later: the refill branch each time.
    let mut bucket = TokenBucket::new(1_000_000, NOW_MS);
    let mut now_ms = NOW_MS;
    group.bench_function("take_with_refill", |b| {
        b.iter(|| {
            now_ms += 1;
            bucket.try_take(black_box(1), black_box(now_ms))
        })
    });
    // An empty bucket refusing (T05 / T04): the cheap path under overload.
    let mut bucket = TokenBucket::new(1, NOW_MS);
    bucket.try_take(1, NOW_MS);
    group.bench_function("refuse_empty", |b| {
        b.iter(|| bucket.try_take(black_box(1), black_box(NOW_MS)))
    });
    group.finish();
}

fn balances(c: &mut Criterion) {
    let mut group = c.benchmark_group("balances");
    group.throughput(Throughput::Elements(1));
    let (mut balances, mut next_packet_id) = balances_in_steady_state();
    group.bench_function("can_reserve", |b| {
        let mut peer = 0;
        b.iter(|| {
            peer = (peer + 1) % PEER_COUNT;
            balances.can_reserve(black_box(peer), black_box(1_000), black_box(1_000_000_000))
        })
    });
    group.bench_function(
        BenchmarkId::new(
            "prepared_then_fulfilled",
            format!("{IN_FLIGHT_COUNT}_in_flight"),
        ),
        |b| b.iter(|| prepare_and_fulfill(&mut balances, &mut next_packet_id)),
    );
    group.finish();
}

fn allocation_report(_: &mut Criterion) {
    let (mut balances, mut next_packet_id) = balances_in_steady_state();
    let mut bucket = TokenBucket::new(1_000_000, NOW_MS);
    let mut now_ms = NOW_MS;
    let conversions = conversions();
    let rows = [
        (
            "outgoing_expiry_ms",
            allocations_per_operation(|| {
                black_box(
                    outgoing_expiry_ms(black_box(NOW_MS + 10_000), NOW_MS, 1_000, 30_000).ok(),
                );
            }),
        ),
        (
            "Conversion::apply (long division)",
            allocations_per_operation(|| {
                let (_, conversion, amount_in) = conversions[3];
                black_box(black_box(conversion).apply(black_box(amount_in)).ok());
            }),
        ),
        (
            "TokenBucket::try_take",
            allocations_per_operation(|| {
                now_ms += 1;
                black_box(bucket.try_take(1, now_ms));
            }),
        ),
        (
            "Balances::prepared + fulfilled (steady state)",
            allocations_per_operation(|| {
                prepare_and_fulfill(&mut balances, &mut next_packet_id);
            }),
        ),
    ];
    eprintln!("\nHeap allocations per operation (counting global allocator, 10,000 calls each):");
    for (operation, allocations) in rows {
        eprintln!("  {allocations:>6.3}  {operation}");
    }
    eprintln!();
}

criterion_group!(
    benches,
    allocation_report,
    expiry,
    conversion,
    token_bucket,
    balances
);
criterion_main!(benches);
