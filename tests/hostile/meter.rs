//! A counting global allocator: how many bytes the current thread holds at its peak while a
//! closure runs. It wraps `System` and keeps two thread-local counters, so proptest's own
//! allocations between cases, and other tests' threads, are not counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The test binary's allocator (see `main.rs`).
pub struct Counting;

thread_local! {
    // Const-initialised and without a destructor: reading them never allocates.
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn grow(bytes: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + bytes as i64;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrink(bytes: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get() - bytes as i64));
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrink(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as if the block were resized in place: the copy's brief overlap is
            // the system allocator's business, not the decoder's.
            shrink(layout.size());
            grow(new_size);
        }
        p
    }
}

/// Runs `f` and returns its value and the most bytes this thread held at once during it,
/// beyond what it held before (the returned value included, as it is still alive).
pub fn peak<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(before));
    let value = f();
    let peak = PEAK.with(Cell::get);
    (value, (peak - before).max(0) as usize)
}

#[test]
fn the_meter_sees_an_allocation_and_its_peak() {
    let ((), bytes) = peak(|| {
        let big = vec![0u8; 1 << 20];
        std::hint::black_box(&big);
        drop(big);
        let small = vec![0u8; 10];
        std::hint::black_box(&small);
    });
    assert!((1 << 20..(1 << 20) + 4096).contains(&bytes), "{bytes}");
}
