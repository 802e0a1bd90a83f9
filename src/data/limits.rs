//! The caps on what input may make wgtrain allocate. Every size that comes
//! from a file or a flag is checked against what the input can hold and
//! against one of these before anything is allocated, so a crafted or
//! mistaken input gets a one-line error instead of exhausting memory.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Largest file read whole: CSV tables, IDX files (decompressed), text,
/// checkpoints and `predict` inputs (2 GiB).
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// Largest text corpus, in bytes (256 MiB: four bytes of token id per
/// character on the host, more on the device).
pub const MAX_TEXT_BYTES: u64 = 256 << 20;

/// Most values the windows of a time series may hold in all (samples ×
/// window × columns; 256 Mi floats, 1 GiB).
pub const MAX_SERIES_VALUES: usize = 1 << 28;

/// Most classes a label may imply (a label is at most this minus one).
pub const MAX_CLASSES: usize = 65_536;

/// Most distinct characters in a text (a character model's one-hot width).
pub const MAX_VOCAB: usize = 4_096;

/// Most characters `sample` generates in one call.
pub const MAX_SAMPLE_LENGTH: usize = 1_000_000;

/// Reads at most `cap` bytes of `path`: a larger file, or a stream that
/// does not end (`/dev/zero`), is an error after `cap + 1` bytes, never an
/// allocation of its size.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    if let Ok(m) = f.metadata() {
        if m.is_dir() {
            return Err(Error::data(path, "is a directory, not a file"));
        }
        if m.is_file() && m.len() > cap {
            return Err(too_large(path, cap));
        }
    }
    let mut out = Vec::new();
    f.take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, e))?;
    if out.len() as u64 > cap {
        return Err(too_large(path, cap));
    }
    Ok(out)
}

fn too_large(path: &Path, cap: u64) -> Error {
    Error::data(
        path,
        format!("is larger than the limit of {} MiB", cap >> 20),
    )
}
