//! Matrix-product operand copies kept for the next product that reads the
//! same tensor the same way.
//!
//! A product copies an operand when its kernel cannot read the tensor as
//! it is: to f16 under `Precision::F16` (every operand), zero-padded to
//! multiples of 4 for the padded variants. A dense layer reads each tensor
//! twice per step, its weight forward and for the input gradient, its input
//! forward and for the weight gradient, the output gradient for both
//! gradients: the second read finds the first's copy here instead of
//! copying again. (Under f16 the layer keeps its input as the unpadded f16
//! copy, `Device::to_half`, and a padded copy of that is keyed by the f32
//! tensor it came from, so the weight gradient finds the forward's padded
//! copy too: `GpuHalf`'s `origin`. An activation layer's f16 pass keeps
//! the copy it writes here too, under the key `to_half` would use.)
//!
//! A copy is valid while its source holds the same values. Tensors are
//! immutable once made, except under the in-place ops (the optimizer
//! updates and the loss-scale step), which call
//! [`GpuDevice::forget_copies`](super::GpuDevice::forget_copies) before
//! they write. An entry is keyed by its source's loan
//! ([`PooledBuffer::loan`]), which a buffer back from the pool does not
//! keep, so an entry need not keep its source alive: under f16 a layer
//! keeps only the f16 copy of its input, and the f32 tensor goes back to
//! the pool (`Device::to_half`). The copies are bounded in number and
//! bytes, the oldest dropped first (evaluation, which updates nothing,
//! would otherwise keep every batch's). A copy whose source is gone stays
//! until then, though nothing can find it any more, unless a kept half
//! came from that source: its padded copies are keyed by the source's
//! loan and the generation it was kept in, which ends at the next
//! in-place write.

use std::collections::VecDeque;
use std::sync::Arc;

use super::context::PooledBuffer;
use crate::device::Precision;

/// Most copies kept.
const MAX_COPIES: usize = 64;
/// Most bytes of copies kept.
const MAX_BYTES: u64 = 256 << 20;

/// Which copy: of which buffer's values when, read as which matrix, padded
/// to what, at which precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CopyKey {
    /// The source buffer's loan ([`PooledBuffer::loan`]).
    pub source: u64,
    /// The [`Copies::generation`] its values are of: an in-place write
    /// starts a new one, so a tensor kept in f16 before it (keyed by the
    /// loan of the f32 tensor it came from) never meets a copy of the
    /// values written after.
    pub generation: u64,
    pub precision: Precision,
    /// The operand as stored, `[rows, cols]`, and as the kernel reads it.
    pub stored: (usize, usize),
    pub padded: (usize, usize),
}

struct Entry {
    key: CopyKey,
    copy: Arc<PooledBuffer>,
}

/// The kept copies, oldest first.
#[derive(Default)]
pub(crate) struct Copies {
    entries: VecDeque<Entry>,
    bytes: u64,
    generation: u64,
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

    /// Keeps `copy` under `key`, dropping the oldest copies beyond the
    /// bounds.
    pub fn insert(&mut self, key: CopyKey, copy: Arc<PooledBuffer>) {
        self.bytes += copy.size();
        self.entries.push_back(Entry { key, copy });
        while self.entries.len() > MAX_COPIES || self.bytes > MAX_BYTES {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.copy.size();
        }
    }

    /// Drops every copy, and starts a new generation.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
        self.generation += 1;
    }

    /// How many times the copies were cleared: tensors hold the same
    /// values as long as it stays the same.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Copies kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}
