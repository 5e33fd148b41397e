//! `RoutingTable::lookup`: longest ILP address prefix on segment boundaries, on tables of 10,
//! 1,000 and 100,000 prefixes.
//!
//! The forwarder routes every Prepare, so lookup sits on the per-packet path; its cost is one
//! hash probe per segment boundary of the destination, longest first, so it depends on how deep
//! the destination is and how deep the matching prefix is, and (for large tables) on whether the
//! probed buckets are in cache. The cases cover hits at depths 2, 3 and 4 from destinations 3 to
//! 6 segments deep, misses that fall to the default route after probing every boundary, the
//! `g.alice` / `g.alicebob` near miss the segment rule exists for, and a mixed workload that
//! walks 4,096 destinations spread over the whole table so large tables pay their cache misses.
//! Tables are built before the timed loop; a lookup must not allocate (ARCHITECTURE.md), which
//! this binary measures with a counting allocator before the timed runs.
//!
//! Run: `cargo bench --bench routing -- --measurement-time 3 --warm-up-time 1`

use std::collections::HashSet;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use m2m_connector::pipeline::routing::{PeerIndex, RoutingTable};

// ---------------------------------------------------------------------------------------------
// Allocation counting

#[path = "support/allocations.rs"]
mod allocations;
use allocations::allocations_per_operation;

// ---------------------------------------------------------------------------------------------
// Fixtures

const TABLE_SIZES: [usize; 3] = [10, 1_000, 100_000];
const PEER_COUNT: usize = 64;
const DEFAULT_PEER: PeerIndex = PEER_COUNT;
const MIXED_DESTINATION_COUNT: usize = 4_096;

/// Name parts for organisations and their sub-accounts. Organisation names are 2 to 4
/// syllables (like `kamilo`); sub-account segments are short words. Destination tails use
/// `dev<n>`/`acct<n>`, which no prefix ever contains, so a fixture's match depth is exact.
const SYLLABLES: [&str; 20] = [
    "al", "be", "ca", "do", "en", "fi", "go", "ha", "io", "ju", "ka", "lo", "mi", "no", "pa", "qu",
    "ri", "so", "tu", "vy",
];
const SUBS: [&str; 12] = [
    "eu", "us", "asia", "prod", "test", "wallet", "fleet", "iot", "pay", "ops", "lab", "edge",
];

/// A small deterministic generator (xorshift64*), so every run benchmarks the same tables.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

fn org_name(random: &mut Random) -> String {
    let syllable_count = 2 + random.below(3);
    (0..syllable_count)
        .map(|_| SYLLABLES[random.below(SYLLABLES.len())])
        .collect()
}

/// The table and its prefixes grouped by depth in segments (index 2, 3, 4).
struct Fixture {
    table: RoutingTable,
    prefixes_by_depth: [Vec<String>; 5],
}

/// `size` distinct prefixes `g.<org>`, `g.<org>.<sub>` and `g.<org>.<sub>.<sub>`, always
/// including `g.alice` (for the near-miss case), plus a default route.
fn fixture(size: usize) -> Fixture {
    let mut random = Random(0x9e37_79b9_7f4a_7c15 ^ size as u64);
    let mut seen = HashSet::new();
    let mut prefixes_by_depth: [Vec<String>; 5] = Default::default();
    let mut table = RoutingTable::new();
    let mut add = |prefix: String, table: &mut RoutingTable, random: &mut Random| {
        if seen.insert(prefix.clone()) {
            let depth = prefix.split('.').count();
            table.insert(&prefix, random.below(PEER_COUNT));
            prefixes_by_depth[depth].push(prefix);
        }
    };
    add("g.alice".to_owned(), &mut table, &mut random);
    while table.len() < size {
        let org = org_name(&mut random);
        let prefix = match random.below(3) {
            0 => format!("g.{org}"),
            1 => format!("g.{org}.{}", SUBS[random.below(SUBS.len())]),
            _ => format!(
                "g.{org}.{}.{}",
                SUBS[random.below(SUBS.len())],
                SUBS[random.below(SUBS.len())]
            ),
        };
        add(prefix, &mut table, &mut random);
    }
    table.set_default_route(Some(DEFAULT_PEER));
    Fixture {
        table,
        prefixes_by_depth,
    }
}

/// `prefix` extended with device segments until it is `depth` segments deep.
fn extend(prefix: &str, depth: usize, tag: usize) -> String {
    let mut destination = prefix.to_owned();
    let mut segment = 0;
    while destination.split('.').count() < depth {
        destination.push_str(&format!(".dev{tag}x{segment}"));
        segment += 1;
    }
    destination
}

/// A destination that no prefix matches, `depth` segments deep, so lookup probes every boundary
/// (including `g`) and then takes the default route.
fn miss(depth: usize, tag: usize) -> String {
    extend(&format!("g.zz{tag}"), depth, tag)
}

/// The named single-destination cases: (label, destination, expected depth of the matching
/// prefix, 0 for the default route).
fn cases(fixture: &Fixture) -> Vec<(&'static str, String, usize)> {
    let first = |depth: usize| {
        let prefixes = &fixture.prefixes_by_depth[depth];
        prefixes[prefixes.len() / 2].clone()
    };
    let mut cases = vec![
        ("hit_exact_d3", first(3), 3),
        ("hit_d4_in_dest6", extend(&first(4), 6, 1), 4),
        ("hit_d3_in_dest5", extend(&first(3), 5, 2), 3),
        ("hit_d2_in_dest3", extend(&first(2), 3, 3), 2),
        ("hit_d2_in_dest6", extend(&first(2), 6, 4), 2),
        ("miss_default_dest3", miss(3, 5), 0),
        ("miss_default_dest6", miss(6, 6), 0),
        ("near_miss_alicebob", "g.alicebob.wallet.dev7".to_owned(), 0),
        (
            "hit_alice_not_alicebob",
            "g.alice.wallet.dev7".to_owned(),
            2,
        ),
    ];
    cases.retain(|(_, destination, _)| !destination.is_empty());
    cases
}

/// 4,096 destinations over the whole table: 80% hits (prefixes of every depth, 3 to 6 segments
/// deep), 15% misses to the default route, 5% `g.alicebob` near misses.
fn mixed_destinations(fixture: &Fixture) -> Vec<String> {
    let mut random = Random(0x5eed);
    let all: Vec<&String> = fixture.prefixes_by_depth.iter().flatten().collect();
    (0..MIXED_DESTINATION_COUNT)
        .map(|tag| match random.below(100) {
            0..80 => {
                let prefix = all[random.below(all.len())];
                let prefix_depth = prefix.split('.').count();
                let depth = (3 + random.below(4)).max(prefix_depth);
                extend(prefix, depth, tag)
            }
            80..95 => miss(3 + random.below(4), tag),
            _ => extend("g.alicebob", 3 + random.below(4), tag),
        })
        .collect()
}

/// Checks that each case matches at the depth its label says, so the numbers mean what the
/// labels claim.
fn check_cases(fixture: &Fixture, cases: &[(&str, String, usize)]) {
    for (label, destination, depth) in cases {
        let matched = fixture.table.matching_prefix(destination);
        let matched_depth = matched.map_or(0, |prefix| prefix.split('.').count());
        assert_eq!(
            matched_depth, *depth,
            "{label}: {destination} matched {matched:?}"
        );
        if *depth == 0 {
            assert_eq!(
                fixture.table.lookup(destination),
                Some(DEFAULT_PEER),
                "{label}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Benchmarks

fn lookup(c: &mut Criterion) {
    let mut allocation_rows = Vec::new();
    for size in TABLE_SIZES {
        let fixture = fixture(size);
        let cases = cases(&fixture);
        check_cases(&fixture, &cases);
        let mixed = mixed_destinations(&fixture);

        let mut group = c.benchmark_group(format!("routing_lookup/{size}"));
        group.throughput(Throughput::Elements(1));
        for (label, destination, _) in &cases {
            group.bench_with_input(
                BenchmarkId::from_parameter(label),
                destination,
                |b, destination| b.iter(|| fixture.table.lookup(black_box(destination))),
            );
        }
        // One element per lookup; the index walks the 4,096 destinations in order.
        let mut next = 0;
        group.bench_function("mixed_4096", |b| {
            b.iter(|| {
                next = (next + 1) % MIXED_DESTINATION_COUNT;
                fixture.table.lookup(black_box(&mixed[next]))
            })
        });
        group.finish();

        let mut index = 0;
        allocation_rows.push((
            size,
            allocations_per_operation(|| {
                index = (index + 1) % MIXED_DESTINATION_COUNT;
                black_box(fixture.table.lookup(black_box(&mixed[index])));
            }),
        ));
    }
    eprintln!("\nHeap allocations per lookup (mixed destinations, counting global allocator):");
    for (size, allocations) in allocation_rows {
        eprintln!("  {allocations:>6.3}  table of {size} prefixes");
    }
    eprintln!();
}

// ---------------------------------------------------------------------------------------------
// Learned routes (CCP, issue 13)

/// The 100,000 prefixes learned over CCP instead of configured: every prefix announced by one of
/// 64 peers, a quarter of them by a second peer too (a candidate that loses on path length), so
/// the table the forwarder looks up is built by `Routes::learn`. Lookup must cost what it costs
/// on the configured table of the same prefixes (`routing_lookup/100000/mixed_4096`); the
/// second number is what applying one learned route costs the forwarder (table, candidates and
/// our announcement log together).
fn learned(c: &mut Criterion) {
    use m2m_connector::ilp::ccp::RoutingTableId;
    use m2m_connector::journal::{PeerRelation, RoutingConfigured};
    use m2m_connector::pipeline::routes::Routes;

    let size = 100_000;
    let base = fixture(size);
    let prefixes: Vec<String> = base.prefixes_by_depth.iter().flatten().cloned().collect();
    let configured = RoutingConfigured {
        node_address: "g.m2m".into(),
        peers: (0..PEER_COUNT).map(|index| PeerRelation { peer: format!("peer{index}"), relation: "peer".into() }).collect(),
        routes: Vec::new(),
    };
    let mut routes = Routes::new(&configured, RoutingTableId([1; 16]), 0);
    let mut random = Random(0xcc9);
    for (index, prefix) in prefixes.iter().enumerate() {
        let peer = random.below(PEER_COUNT);
        routes.learn(peer, prefix, vec![format!("g.peer{peer}")], [0; 32], index as i64);
        if index % 4 == 0 {
            let other = (peer + 1) % PEER_COUNT;
            routes.learn(other, prefix, vec![format!("g.peer{other}"), "g.far".into()], [0; 32], index as i64);
        }
    }
    assert_eq!(routes.in_use().len(), prefixes.len());
    let mixed = mixed_destinations(&base);
    let mut group = c.benchmark_group("routing_learned/100000");
    group.throughput(Throughput::Elements(1));
    let mut next = 0;
    group.bench_function("mixed_4096", |b| {
        b.iter(|| {
            next = (next + 1) % MIXED_DESTINATION_COUNT;
            routes.table().lookup(black_box(&mixed[next]))
        })
    });
    // One element per route learned: 1,000 new prefixes applied to the full table.
    group.throughput(Throughput::Elements(1_000));
    let fresh: Vec<String> = (0..1_000).map(|index| format!("g.fresh{index}.wallet")).collect();
    group.bench_function("learn_1000_into_100000", |b| {
        b.iter_batched(
            || routes.clone(),
            |mut routes| {
                for (index, prefix) in fresh.iter().enumerate() {
                    routes.learn(index % PEER_COUNT, prefix, vec!["g.x".into()], [0; 32], 0);
                }
                routes
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, lookup, learned);
criterion_main!(benches);
