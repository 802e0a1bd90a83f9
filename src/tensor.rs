//! Shapes. Tensors themselves are device-specific (`Device::Tensor`); what
//! they share is a row-major [`Shape`].

use std::fmt;

/// A row-major tensor shape. The last dimension varies fastest.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    /// A shape with dimensions `dims`, outermost first.
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a scalar of rank 0).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// Size of dimension `i` (panics if `i >= rank()`).
    pub fn dim(&self, i: usize) -> usize {
        self.0[i]
    }

    /// Leading dimension: rows when the tensor is read as a matrix.
    pub fn rows(&self) -> usize {
        self.0.first().copied().unwrap_or(1)
    }

    /// Elements per row: the product of all dimensions but the first.
    pub fn row_len(&self) -> usize {
        self.0.iter().skip(1).product()
    }

    /// The same shape with the first dimension replaced.
    pub fn with_rows(&self, rows: usize) -> Shape {
        let mut d = self.0.clone();
        if d.is_empty() {
            d.push(rows);
        } else {
            d[0] = rows;
        }
        Shape(d)
    }

    /// `(rows, cols)` for a rank-2 shape, or `None`.
    pub fn as_matrix(&self) -> Option<(usize, usize)> {
        match self.0[..] {
            [r, c] => Some((r, c)),
            _ => None,
        }
    }

    /// `(n, c, h, w)` for a rank-4 shape, or `None`.
    pub fn as_nchw(&self) -> Option<(usize, usize, usize, usize)> {
        match self.0[..] {
            [n, c, h, w] => Some((n, c, h, w)),
            _ => None,
        }
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|d| d.to_string()).collect();
        write!(f, "[{}]", parts.join("×"))
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape(v)
    }
}

impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(v.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(v.to_vec())
    }
}

impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}

impl HostTensor {
    /// The matrix `[rows, cols]` as `[cols, rows]`, named `name`; an error
    /// for a tensor that is not 2-d (files are untrusted).
    pub fn transposed(&self, name: String) -> crate::error::Result<HostTensor> {
        let &[r, c] = self.shape.as_slice() else {
            return Err(crate::error::Error::Config(format!(
                "tensor '{}' of shape {:?} is not a matrix",
                self.name, self.shape
            )));
        };
        let mut values = vec![0.0; self.values.len()];
        for i in 0..r {
            for j in 0..c {
                values[j * r + i] = self.values[i * c + j];
            }
        }
        Ok(HostTensor {
            name,
            shape: vec![c, r],
            values,
        })
    }
}

/// A tensor copied to the host, with its name and shape (checkpoints,
/// snapshots of the best parameters, optimizer state).
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Its name in checkpoints, e.g. `layers.0.weight`.
    pub name: String,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Elements in row-major order; as many as the product of `shape`.
    pub values: Vec<f32>,
}
