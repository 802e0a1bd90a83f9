//! Embedding: token ids → learned vectors, a row of the weight table per id
//! (the same as a one-hot vector times a dense layer, without the one-hot).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{cached, Layer, Param};
use crate::device::{Device, Tensor};
use crate::error::Result;

/// Ids `[T, B]` → vectors `[T, B, D]`, rows of a `[V, D]` table. Only ever
/// the first layer: ids have no gradient.
pub struct Embedding<D: Device> {
    /// `[V, D]`: one vector per token id.
    pub weight: Param<D>,
    ids: Option<D::Tensor>,
}

impl<D: Device> Embedding<D> {
    /// A table of `vocab` vectors of `dim`, named `{name}.weight`, drawn
    /// uniformly with unit variance (±√3), the scale of PyTorch's N(0, 1).
    pub fn new(
        dev: &D,
        name: &str,
        vocab: usize,
        dim: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let bound = 3f32.sqrt();
        let w: Vec<f32> = (0..vocab * dim)
            .map(|_| rng.random_range(-bound..=bound))
            .collect();
        Ok(Embedding {
            weight: Param::new(
                format!("{name}.weight"),
                dev.upload(&w, [vocab, dim])?,
                true,
            ),
            ids: None,
        })
    }
}

impl<D: Device> Layer<D> for Embedding<D> {
    fn forward(&mut self, dev: &D, x: &D::Tensor, train: bool) -> Result<D::Tensor> {
        let n = x.shape().numel();
        let ids = dev.reshape(x, [n])?;
        let rows = dev.gather_rows(&self.weight.value, &ids, 0, n)?;
        let mut shape = x.shape().dims().to_vec();
        shape.push(self.weight.value.shape().dim(1));
        if train {
            self.ids = Some(ids);
        }
        dev.reshape(&rows, shape)
    }

    fn backward(&mut self, dev: &D, dy: &D::Tensor, need_dx: bool) -> Result<Option<D::Tensor>> {
        let ids = cached(&self.ids, "embedding")?;
        let (vocab, dim) = (
            self.weight.value.shape().dim(0),
            self.weight.value.shape().dim(1),
        );
        let dy = dev.reshape(dy, [ids.shape().numel(), dim])?;
        self.weight.grad = Some(dev.scatter_add_rows(&dy, ids, vocab)?);
        // Ids are data, not a function of anything trainable.
        debug_assert!(!need_dx, "an embedding is always the first layer");
        Ok(None)
    }

    fn params(&self) -> Vec<&Param<D>> {
        vec![&self.weight]
    }

    fn params_mut(&mut self) -> Vec<&mut Param<D>> {
        vec![&mut self.weight]
    }
}
