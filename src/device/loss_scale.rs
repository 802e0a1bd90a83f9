//! The rule of one loss-scaling step, which both devices implement
//! ([`Device::loss_scale_step`](super::Device::loss_scale_step)) and this
//! file defines.
//!
//! Under loss scaling the loss gradient is multiplied by a scale `S` before
//! backpropagation, so every gradient arrives multiplied by `S`: small ones
//! then stay clear of f16's subnormal range (below 2⁻¹⁴, where the f16
//! matrix-product operands keep fewer significant bits, and 0 below 2⁻²⁵).
//! After backpropagation the step reads the summed squares of the scaled
//! gradients: if they are finite, the optimizer multiplies every gradient
//! by `1/S` (times the clipping factor, computed on the unscaled norm); if
//! they are not (an operand overflowed f16's ±65504), the factor is 0 and
//! the optimizers skip the update entirely. The dynamic rule (PyTorch's
//! `GradScaler`, Micikevicius et al. 2018) halves `S` at such a step and
//! doubles it after `growth_interval` finite steps in a row.

/// The smallest loss scale the dynamic rule goes down to.
pub const MIN_LOSS_SCALE: f32 = 1.0 / 16_777_216.0;
/// The largest loss scale the dynamic rule goes up to (2²⁴: a gradient of
/// f32's smallest normal magnitude then still reaches f16's normal range,
/// and the scaled squares stay far from f32's overflow).
pub const MAX_LOSS_SCALE: f32 = 16_777_216.0;

/// The settings of one loss-scaling step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossScaleStep {
    /// Clip the unscaled gradients' global norm to this (none: no clipping).
    pub max_norm: Option<f32>,
    /// Double the scale after this many finite steps in a row, halve it at
    /// a non-finite one; 0 keeps the scale fixed.
    pub growth_interval: u32,
}

/// What one step makes of the scaled gradients' summed squares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossScaleOutcome {
    /// What the optimizer multiplies each gradient by: `clip / scale`, or 0
    /// (skip the update) when the squares are not finite.
    pub factor: f32,
    /// The scale of the next step.
    pub scale: f32,
    /// Finite steps in a row since the scale last changed (an integer).
    pub good_steps: f32,
}

impl LossScaleStep {
    /// The step from summed squares `sum_squares` of gradients scaled by
    /// `scale`, after `good_steps` finite steps in a row.
    pub fn apply(&self, sum_squares: f32, scale: f32, good_steps: f32) -> LossScaleOutcome {
        let dynamic = self.growth_interval > 0;
        if !sum_squares.is_finite() {
            return LossScaleOutcome {
                factor: 0.0,
                scale: if dynamic {
                    (scale * 0.5).max(MIN_LOSS_SCALE)
                } else {
                    scale
                },
                good_steps: 0.0,
            };
        }
        let norm = sum_squares.sqrt() / scale;
        let clip = match self.max_norm {
            Some(max) if norm > max => max / norm,
            _ => 1.0,
        };
        let good = good_steps + 1.0;
        let (scale_next, good_next) = if dynamic && good >= self.growth_interval as f32 {
            ((scale * 2.0).min(MAX_LOSS_SCALE), 0.0)
        } else if dynamic {
            (scale, good)
        } else {
            (scale, 0.0)
        };
        LossScaleOutcome {
            factor: clip / scale,
            scale: scale_next,
            good_steps: good_next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DYNAMIC: LossScaleStep = LossScaleStep {
        max_norm: None,
        growth_interval: 3,
    };

    #[test]
    fn finite_steps_unscale_and_grow_the_scale_at_the_interval() {
        let a = DYNAMIC.apply(4.0 * 1024.0 * 1024.0, 1024.0, 0.0);
        assert_eq!(
            (a.factor, a.scale, a.good_steps),
            (1.0 / 1024.0, 1024.0, 1.0)
        );
        let b = DYNAMIC.apply(1.0, 1024.0, 2.0);
        assert_eq!((b.scale, b.good_steps), (2048.0, 0.0));
        let top = DYNAMIC.apply(1.0, MAX_LOSS_SCALE, 2.0);
        assert_eq!(top.scale, MAX_LOSS_SCALE);
    }

    #[test]
    fn a_non_finite_step_skips_and_halves() {
        for bad in [f32::INFINITY, f32::NAN] {
            let o = DYNAMIC.apply(bad, 1024.0, 2.0);
            assert_eq!((o.factor, o.scale, o.good_steps), (0.0, 512.0, 0.0));
        }
        assert_eq!(
            DYNAMIC.apply(f32::NAN, MIN_LOSS_SCALE, 0.0).scale,
            MIN_LOSS_SCALE
        );
        let fixed = LossScaleStep {
            max_norm: None,
            growth_interval: 0,
        };
        let o = fixed.apply(f32::INFINITY, 1024.0, 0.0);
        assert_eq!((o.factor, o.scale), (0.0, 1024.0));
        let o = fixed.apply(1.0, 1024.0, 0.0);
        assert_eq!(
            (o.factor, o.scale, o.good_steps),
            (1.0 / 1024.0, 1024.0, 0.0)
        );
    }

    #[test]
    fn clipping_reads_the_unscaled_norm() {
        let clip = LossScaleStep {
            max_norm: Some(1.0),
            growth_interval: 0,
        };
        // Unscaled norm 4 (64 / 16): clipped to 1, so the factor is ¼ / 16.
        let o = clip.apply(64.0 * 64.0, 16.0, 0.0);
        assert_eq!(o.factor, 0.25 / 16.0);
        // Unscaled norm ½: not clipped.
        assert_eq!(clip.apply(8.0 * 8.0, 16.0, 0.0).factor, 1.0 / 16.0);
    }
}
