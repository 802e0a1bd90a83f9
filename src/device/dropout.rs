//! Dropout masks from a counter-based hash, identical on every device.
//!
//! Element `i` of the mask for `(seed, step)` is kept when
//! `pcg(i ^ pcg(seed ^ pcg(step)))`, a 32-bit integer, is at least
//! `rate·2³²`. Integer arithmetic only, so the CPU and the WGSL kernel
//! (shaders/dropout.wgsl, which must stay in step with [`pcg`]) draw the
//! same mask bit for bit, and a resumed run, which restores the step, draws
//! the masks the uninterrupted run would have. The hash is the PCG-based
//! one of Jarzynski and Olano, "Hash Functions for GPU Rendering" (JCGT
//! 2020): one multiply-add state step and a permutation.

/// Which mask to draw, and how much it drops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutMask {
    /// Fraction of elements dropped, in `[0, 1)`.
    pub rate: f32,
    /// The layer's seed (from the model's seed and the layer's position).
    pub seed: u32,
    /// The training step (a new mask every step).
    pub step: u32,
}

impl DropoutMask {
    /// Elements whose hash is below this are dropped: `rate·2³²`.
    pub fn threshold(&self) -> u32 {
        (f64::from(self.rate) * 4_294_967_296.0)
            .round()
            .min(f64::from(u32::MAX)) as u32
    }

    /// What kept elements are multiplied by, `1/(1 − rate)` ("inverted"
    /// dropout: evaluation then needs no rescaling).
    pub fn scale(&self) -> f32 {
        1.0 / (1.0 - self.rate)
    }

    /// The per-mask key the element index is mixed with.
    pub fn key(&self) -> u32 {
        pcg(self.seed ^ pcg(self.step))
    }

    /// The mask's value at `index`: 0 or [`Self::scale`].
    pub fn value(&self, key: u32, index: u32) -> f32 {
        if pcg(index ^ key) >= self.threshold() {
            self.scale()
        } else {
            0.0
        }
    }
}

/// The PCG hash: a 32-bit input to a well-mixed 32-bit output.
pub fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}
