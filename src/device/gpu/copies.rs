//! Matrix-product operand copies kept for the next product that reads the
//! same tensor the same way.
//!
//! A product copies an operand when its kernel cannot read the tensor as
//! it is: to f16 under `Precision::F16` (every operand), zero-padded to
//! multiples of 4 for the padded variants. A dense layer reads each tensor
//! twice per step, its weight forward and for the input gradient, its input
//! forward and for the weight gradient, the output gradient for both
//! gradients: the second read finds the first's copy here instead of
//! copying again (in an f16 MLP step, 9 casts instead of 17).
//!
//! A copy is valid while its source holds the same values. Tensors are
//! immutable once made, except under the in-place ops (the optimizer
//! updates and the loss-scale step), which call
//! [`GpuDevice::forget_copies`](super::GpuDevice::forget_copies) before
//! they write; and an entry keeps its source alive, so the source's buffer
//! cannot return to the pool and come back as another tensor while the
//! copy is kept. The copies are bounded in number and bytes, the oldest
//! dropped first (evaluation, which updates nothing, would otherwise keep
//! every batch's).

use std::collections::VecDeque;
use std::sync::Arc;

use super::context::PooledBuffer;
use crate::device::Precision;

/// Most copies kept.
const MAX_COPIES: usize = 64;
/// Most bytes kept, copies and the sources they hold together (in a
/// training step the sources are alive anyway; in evaluation they would
/// otherwise go back to the pool).
const MAX_BYTES: u64 = 256 << 20;

/// Which copy: of which buffer, read as which matrix, padded to what, at
/// which precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CopyKey {
    /// The source buffer's id (unique while the buffer lives; the entry
    /// keeps it alive).
    pub source: u64,
    pub precision: Precision,
    /// The operand as stored, `[rows, cols]`, and as the kernel reads it.
    pub stored: (usize, usize),
    pub padded: (usize, usize),
}

struct Entry {
    key: CopyKey,
    /// Held so that the source's buffer is not recycled while its copy is
    /// kept; never read.
    _source: Arc<PooledBuffer>,
    copy: Arc<PooledBuffer>,
    /// The source's and the copy's.
    bytes: u64,
}

/// The kept copies, oldest first.
#[derive(Default)]
pub(crate) struct Copies {
    entries: VecDeque<Entry>,
    bytes: u64,
}

impl Copies {
    /// The copy for `key`, if kept (it becomes the newest).
    pub fn get(&mut self, key: &CopyKey) -> Option<Arc<PooledBuffer>> {
        let at = self.entries.iter().position(|e| e.key == *key)?;
        let entry = self.entries.remove(at)?;
        let copy = entry.copy.clone();
        self.entries.push_back(entry);
        Some(copy)
    }

    /// Keeps `copy` of `source` under `key`, dropping the oldest copies
    /// beyond the bounds.
    pub fn insert(&mut self, key: CopyKey, source: Arc<PooledBuffer>, copy: Arc<PooledBuffer>) {
        let bytes = source.size() + copy.size();
        self.bytes += bytes;
        self.entries.push_back(Entry {
            key,
            _source: source,
            copy,
            bytes,
        });
        while self.entries.len() > MAX_COPIES || self.bytes > MAX_BYTES {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.bytes;
        }
    }

    /// Drops every copy.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Copies kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}
