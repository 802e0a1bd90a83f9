//! Every loader on arbitrary and on mutated valid bytes: an error or a valid
//! result, never a panic, and never an allocation beyond a bound set by the
//! input's size (a counting allocator measures each call's peak).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use wgtrain::data::idx::parse_idx;
use wgtrain::data::series::{parse_windows, Missing, SeriesOptions};
use wgtrain::data::tabular::parse_csv;
use wgtrain::data::{Task, TextCorpus};
use wgtrain::run::checkpoint;
use wgtrain::CpuDevice;

/// Counts the bytes each thread has allocated and their peak (tests run on
/// several threads; every loader here runs on the thread that calls it).
struct Counting;

thread_local! {
    static NOW: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = NOW.try_with(|n| {
            n.set(n.get() + layout.size());
            let _ = PEAK.try_with(|p| p.set(p.get().max(n.get())));
        });
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = NOW.try_with(|n| n.set(n.get().saturating_sub(layout.size())));
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns the most it had allocated at once beyond what was
/// already allocated.
fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = NOW.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    (r, PEAK.with(Cell::get) - base)
}

/// Allocation allowed for an input of `n` bytes: a small multiple of it
/// plus a fixed allowance for buffers (decoders, parsers).
fn bound(n: usize) -> usize {
    64 * n + (2 << 20)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).unwrap();
    z.finish().unwrap()
}

fn small_idx() -> Vec<u8> {
    let mut v = vec![0u8, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 4, 0, 0, 0, 4];
    v.extend((0..80).map(|i| (i * 7) as u8));
    v
}

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)]) -> Vec<u8> {
    for &(at, value) in edits {
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] = value;
        }
    }
    bytes
}

/// A small trained-shape checkpoint, as bytes.
fn small_checkpoint(dir: &Path) -> Vec<u8> {
    let w = dir.join("seed.safetensors");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args([
            "train",
            "--layers",
            "dense:3,relu",
            "--data",
            "iris",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--quiet",
            "--out",
        ])
        .arg(dir.join("run"))
        .env("XDG_RUNTIME_DIR", dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::copy(dir.join("run/model.safetensors"), &w).unwrap();
    std::fs::read(w).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn idx_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6)) {
        for input in [bytes.clone(), mutate(small_idx(), &edits), mutate(gzip(&small_idx()), &edits),
                      gzip(&bytes)] {
            let (r, peak) = peak_of(|| parse_idx(&input, Path::new("fuzz")));
            if let Ok(a) = r {
                prop_assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
            }
            prop_assert!(peak <= bound(input.len()), "{} bytes allocated for {} of input", peak, input.len());
        }
    }

    #[test]
    fn csv_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300),
                        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6)) {
        let valid = b"a,b,target\n1,2,0\n3.5,-4,1\n5e3,6,2\n".to_vec();
        for input in [bytes.clone(), mutate(valid, &edits)] {
            for task in [Task::Classification, Task::Regression] {
                let (r, peak) = peak_of(|| parse_csv(&input, Path::new("fuzz.csv"), None, task));
                if let Ok(ds) = r {
                    prop_assert!(!ds.is_empty());
                }
                prop_assert!(peak <= bound(input.len()), "{} bytes allocated for {} of input", peak, input.len());
            }
        }
    }

    #[test]
    fn series_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300),
                          edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6)) {
        let valid = b"t,v\n1,10\n2,\n,30\n4,40\n5,\n6,60\n".to_vec();
        for input in [bytes.clone(), mutate(valid, &edits)] {
            for (missing, both) in [(Missing::Error, false), (Missing::Drop, false), (Missing::Interpolate, false),
                                    (Missing::Drop, true), (Missing::Interpolate, true)] {
                // Both columns as features, gaps in either: what the
                // target-only default never exercises.
                let features = both.then(|| vec!["t".to_string(), "v".to_string()]);
                let opts = SeriesOptions { missing, features, relative: missing == Missing::Drop, ..Default::default() };
                let (r, peak) = peak_of(|| {
                    parse_windows(&input, Path::new("fuzz.csv"), None, &opts, 3, Task::Regression)
                });
                if let Ok(w) = r {
                    prop_assert!(!w.dataset.is_empty());
                }
                prop_assert!(peak <= bound(input.len()), "{} bytes allocated for {} of input", peak, input.len());
            }
        }
    }

    #[test]
    fn text_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (r, peak) = peak_of(|| TextCorpus::from_bytes(&bytes, Path::new("fuzz.txt")));
        if let Ok(t) = r {
            prop_assert!(t.ids.iter().all(|&i| (i as usize) < t.vocab.len()));
        }
        prop_assert!(peak <= bound(bytes.len()));
    }
}

#[test]
fn checkpoints_never_panic_nor_size_memory_by_their_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let valid = small_checkpoint(dir.path());
    let path = dir.path().join("fuzz.safetensors");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(400));
    // Edits anywhere, and edits concentrated in the header (the metadata).
    let header_len = u64::from_le_bytes(valid[..8].try_into().unwrap()) as usize + 8;
    let strategy = (
        proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        any::<bool>(),
    );
    runner
        .run(&strategy, |(edits, in_header)| {
            let edits: Vec<(usize, u8)> = edits
                .into_iter()
                .map(|(at, v)| (if in_header { at % header_len } else { at }, v))
                .collect();
            let bytes = mutate(valid.clone(), &edits);
            std::fs::write(&path, &bytes).unwrap();
            let (_, peak) = peak_of(|| {
                if let Ok(ck) = checkpoint::load(&path) {
                    let _ = ck.model(&CpuDevice::new());
                }
            });
            prop_assert!(
                peak <= bound(bytes.len()),
                "{} bytes allocated for {} of input",
                peak,
                bytes.len()
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_allocation_counter_sees_allocations() {
    let (v, peak) = peak_of(|| vec![1u8; 10 << 20]);
    assert!(peak >= 10 << 20, "{peak}");
    drop(v);
    // A gzip bomb the IDX header does not account for is not inflated.
    let mut header = vec![0u8, 0, 8, 1, 0, 0, 0, 4];
    header.extend(std::iter::repeat_n(0u8, 50 << 20));
    let bomb = gzip(&header);
    let (r, peak) = peak_of(|| parse_idx(&bomb, Path::new("bomb")));
    assert!(r.is_err());
    assert!(
        peak < 1 << 20,
        "{peak} bytes allocated for a {}-byte bomb",
        bomb.len()
    );
}
