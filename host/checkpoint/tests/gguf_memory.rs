//! GGUF metadata arrays cost about their size in the file, not 32 bytes an element (issue #11:
//! a 64 MB file of byte arrays reached 2.1 GB). Measured with a counting allocator, which is
//! why this test has a binary of its own.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::gguf::Builder;
use ponder_checkpoint::gguf::GgufFile;

/// The system allocator, keeping the live and peak byte counts.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::SeqCst) + bytes;
    PEAK.fetch_max(live, Ordering::SeqCst);
}

// SAFETY: every call forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(pointer, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as received.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
            grew(new_size);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn gguf_metadata_arrays_cost_about_their_size_in_the_file() {
    let bytes = Builder::default()
        .kv_u8_array("bytes", &vec![1u8; 4 << 20])
        .kv_str_array("strings", &vec!["x"; 400_000])
        .build();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arrays.gguf");
    std::fs::write(&path, &bytes).unwrap();
    let file_size = bytes.len();
    drop(bytes);

    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let file = GgufFile::open(&path).unwrap();
    let peak = PEAK.load(Ordering::SeqCst) - before;
    assert_eq!(
        file.get("bytes").unwrap().as_array().unwrap().len(),
        4 << 20
    );
    assert_eq!(
        file.get("strings").unwrap().as_array().unwrap().len(),
        400_000
    );
    // One element per element: a generous 2x for vector growth, where a vector of
    // `MetadataValue`s took 32x.
    assert!(
        peak <= 2 * file_size,
        "parsing a {file_size}-byte file peaked at {peak} bytes"
    );
}
