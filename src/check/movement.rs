//! Data movement: gathers (of f32 and of bytes), transposes, one-hot,
//! slices and concatenation, reshapes. Exact, but for the bytes' affine map.

use rand::Rng;

use super::{ints, random, Case, ChaCha8Rng, Check, Tolerance};
use crate::device::{Device, DropoutMask};
use crate::error::Result;
use crate::tensor::Shape;

/// Rows `idx[start..start + count]` of `[rows, row...]`.
#[derive(Clone, Debug)]
pub struct Gather {
    rows: usize,
    row: Vec<usize>,
    start: usize,
    count: usize,
}

impl Check for Gather {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let mut shape = vec![self.rows];
        shape.extend_from_slice(&self.row);
        let src = random(dev, rng, shape, 1.0)?;
        let len = self.start + self.count + 2;
        let idx = dev.upload(&ints(rng, len, self.rows), [len])?;
        Ok(vec![dev.gather_rows(&src, &idx, self.start, self.count)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::EXACT
    }
}

/// Rows of bytes, gathered and mapped to `x/255 − 0.5`.
#[derive(Clone, Debug)]
pub struct GatherU8 {
    rows: usize,
    row_len: usize,
    start: usize,
    count: usize,
}

impl Check for GatherU8 {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let bytes: Vec<u8> = (0..self.rows * self.row_len)
            .map(|_| rng.random())
            .collect();
        let src = dev.upload_u8(&bytes, [self.rows, self.row_len])?;
        let len = self.start + self.count;
        let idx = dev.upload(&ints(rng, len, self.rows), [len])?;
        let scale = 1.0 / 255.0;
        Ok(vec![dev.gather_rows_u8(
            &src, &idx, self.start, self.count, scale, -0.5,
        )?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        // One multiply-add per element.
        Tolerance::ROUNDING
    }
}

/// `[r, c]` → `[c, r]`.
#[derive(Clone, Debug)]
pub struct Transpose(usize, usize);

impl Check for Transpose {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let x = random(dev, rng, [self.0, self.1], 1.0)?;
        Ok(vec![dev.transpose(&x)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::EXACT
    }
}

/// `n` ids as one-hot rows of `depth`.
#[derive(Clone, Debug)]
pub struct OneHot {
    n: usize,
    depth: usize,
}

impl Check for OneHot {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let idx = dev.upload(&ints(rng, self.n, self.depth), [self.n])?;
        Ok(vec![dev.one_hot(&idx, self.depth)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::EXACT
    }
}

/// Rows `start..start + count` of `[rows, cols]`, and that slice put on
/// top of the whole.
#[derive(Clone, Debug)]
pub struct SliceConcat {
    rows: usize,
    cols: usize,
    start: usize,
    count: usize,
}

impl Check for SliceConcat {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let x = random(dev, rng, [self.rows, self.cols], 1.0)?;
        let s = dev.slice_rows(&x, self.start, self.count)?;
        let c = dev.concat_rows(&s, &x)?;
        Ok(vec![s, c])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::EXACT
    }
}

/// An inverted-dropout mask (an integer hash of each index: exact).
#[derive(Clone, Debug)]
pub struct DropoutMaskOf {
    shape: Shape,
    mask: DropoutMask,
}

impl Check for DropoutMaskOf {
    fn run<D: Device>(&self, dev: &D, _: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        Ok(vec![dev.dropout_mask(self.shape.clone(), &self.mask)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::EXACT
    }
}

/// The gradient of a row gather: `n` rows of `dim` summed into `rows` by id.
#[derive(Clone, Debug)]
pub struct ScatterAddRows {
    n: usize,
    dim: usize,
    rows: usize,
}

impl Check for ScatterAddRows {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let dy = random(dev, rng, [self.n, self.dim], 1.0)?;
        let idx = dev.upload(&ints(rng, self.n, self.rows), [self.n])?;
        Ok(vec![dev.scatter_add_rows(&dy, &idx, self.rows)?])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        // Both devices sum in index order; allowed the sum's bound anyway,
        // since a compiler may reorder.
        Tolerance::sum_of(self.n)
    }
}

/// `[n, 6]` reshaped twice, with `synchronize` between: data and shapes.
#[derive(Clone, Debug)]
pub struct Reshape(usize);

impl Check for Reshape {
    fn run<D: Device>(&self, dev: &D, rng: &mut ChaCha8Rng) -> Result<Vec<D::Tensor>> {
        let n = self.0;
        let x = random(dev, rng, [n, 6], 1.0)?;
        let a = dev.reshape(&x, [3, 2 * n])?;
        dev.synchronize()?;
        Ok(vec![dev.reshape(&a, [2 * n, 3])?, a])
    }

    fn tolerance(&self, _: usize) -> Tolerance {
        Tolerance::EXACT
    }
}

pub(super) fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // Rows of 3 and 9 take the element-wise kernel everywhere, rows of 128
    // on software adapters the row-per-invocation vec4 one.
    for (rows, row, start, count) in [
        (10, vec![3], 2, 4),
        (100, vec![1, 3, 3], 0, 17),
        (75, vec![128], 5, 70),
    ] {
        let shape = format!(
            "{} rows {start}..{}",
            Shape::new([&[rows][..], &row].concat()),
            start + count
        );
        v.push(Case::new(
            "gather rows",
            shape,
            Gather {
                rows,
                row,
                start,
                count,
            },
        ));
    }
    for (rows, row_len, start, count) in [(5, 3, 1, 4), (100, 784, 3, 33), (7, 1, 0, 7)] {
        v.push(Case::new(
            "gather rows u8",
            format!("{rows}×{row_len} bytes rows {start}..{}", start + count),
            GatherU8 {
                rows,
                row_len,
                start,
                count,
            },
        ));
    }
    for (r, c) in [(1, 1), (3, 5), (33, 129)] {
        v.push(Case::new("transpose", format!("{r}×{c}"), Transpose(r, c)));
    }
    v.push(Case::new(
        "one hot",
        "[17] depth 5",
        OneHot { n: 17, depth: 5 },
    ));
    v.push(Case::new(
        "slice+concat rows",
        "7×3 rows 2..5",
        SliceConcat {
            rows: 7,
            cols: 3,
            start: 2,
            count: 3,
        },
    ));
    for n in [1, 17, 1000, 70_001] {
        v.push(Case::new("reshape", format!("[{n}, 6]"), Reshape(n)));
    }
    // One id (all rows into one), a few, and ids that never occur; from 64
    // rows on, the hardware adapters' sorted path (its ids padded to a power
    // of two); software adapters sort at every size, and sum vec4s where a
    // row is a multiple of 4 (40×8).
    for (n, dim, rows) in [
        (1, 1, 1),
        (9, 3, 2),
        (40, 8, 3),
        (500, 3, 63),
        (2048, 64, 75),
        (70, 5, 300),
        (1, 4, 64),
        (257, 7, 256),
        (3000, 33, 5000),
    ] {
        v.push(Case::new(
            "scatter add rows",
            format!("{n}×{dim} into {rows} rows"),
            ScatterAddRows { n, dim, rows },
        ));
    }
    for (shape, rate, seed, step) in [
        (Shape::new([1]), 0.5, 1, 0),
        (Shape::new([7, 33]), 0.1, 42, 7),
        (Shape::new([300, 257]), 0.9, u32::MAX, u32::MAX),
    ] {
        v.push(Case::new(
            "dropout mask",
            format!("{shape} rate {rate} seed {seed} step {step}"),
            DropoutMaskOf {
                shape,
                mask: DropoutMask { rate, seed, step },
            },
        ));
    }
    v
}
