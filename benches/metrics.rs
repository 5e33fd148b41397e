//! What recording a metric costs on the packet path, through `m2m_connector::metrics` (the
//! `prometheus` crate underneath) against the bare atomics the hand-written registry used
//! before (reproduced here as the baseline, since the code itself is gone).
//!
//! The per-packet path records about four counter increments (packets in/out, processed,
//! frames) and one or two histogram observations (latency; batch sizes once per batch), so
//! `4 × counter + 2 × histogram` is what metrics add to a packet's time on its threads.
//!
//! Run: `cargo bench --bench metrics -- --measurement-time 3 --warm-up-time 1`

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, Criterion};
use m2m_connector::metrics::{Metrics, PacketKind, PacketStatus, ReplyKind, LATENCY_BOUNDS_NS};

/// The old registry's histogram: one relaxed `fetch_add` per bucket, sum and count.
struct AtomicHistogram {
    bounds: &'static [u64],
    buckets: [AtomicU64; 24],
    sum: AtomicU64,
    count: AtomicU64,
}

impl AtomicHistogram {
    fn new(bounds: &'static [u64]) -> AtomicHistogram {
        AtomicHistogram { bounds, buckets: std::array::from_fn(|_| AtomicU64::new(0)), sum: AtomicU64::new(0), count: AtomicU64::new(0) }
    }

    fn observe(&self, value: u64) {
        let index = self.bounds.partition_point(|&bound| bound < value);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

fn recording(c: &mut Criterion) {
    let metrics = Metrics::new();
    let peer = metrics.register_peer("alice", "USD");
    let mut group = c.benchmark_group("metrics");

    let baseline = AtomicU64::new(0);
    group.bench_function("counter/atomic_baseline", |b| b.iter(|| baseline.fetch_add(black_box(1), Ordering::Relaxed)));
    group.bench_function("counter/peer_packet_in", |b| b.iter(|| black_box(&peer).packet_in()));
    group.bench_function("counter/packet_processed", |b| {
        b.iter(|| metrics.packet_processed(black_box(PacketKind::Prepare), black_box(PacketStatus::Fulfilled)))
    });

    // A latency in the middle of the bounds (1 ms), and a spread of them.
    let old = AtomicHistogram::new(&LATENCY_BOUNDS_NS);
    let latencies: Vec<u64> = (0..1024u64).map(|i| 20_000 + i * i * 997).collect();
    group.bench_function("histogram/atomic_baseline", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 1023;
            old.observe(black_box(latencies[i]))
        })
    });
    group.bench_function("histogram/packet_latency", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 1023;
            metrics.packet_latency_ns(black_box(ReplyKind::Fulfill), black_box(latencies[i]))
        })
    });
    group.finish();
}

criterion_group!(benches, recording);
criterion_main!(benches);
