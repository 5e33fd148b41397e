//! Counts heap allocations per operation in the benches: a global allocator that wraps the
//! system one. Included by each bench file with `#[path]` (one copy, one global allocator per
//! bench binary).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator, counting every allocation and reallocation (not frees).
struct CountingAllocator;

static ALLOCATION_COUNT: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATION_COUNT.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        System.dealloc(pointer, layout)
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        ALLOCATION_COUNT.fetch_add(1, Ordering::Relaxed);
        System.realloc(pointer, layout, size)
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Heap allocations per call of `operation`, averaged over enough calls that one-off warm-up
/// allocations (a buffer's first growth) round away.
pub fn allocations_per_operation(mut operation: impl FnMut()) -> f64 {
    const OPERATION_COUNT: u64 = 10_000;
    operation();
    let before = ALLOCATION_COUNT.load(Ordering::Relaxed);
    for _ in 0..OPERATION_COUNT {
        operation();
    }
    let after = ALLOCATION_COUNT.load(Ordering::Relaxed);
    (after - before) as f64 / OPERATION_COUNT as f64
}
