//! Adam (Kingma & Ba) and AdamW (Loshchilov & Hutter): bias-corrected first
//! and second moments; weight decay either as an L2 term through the moments
//! (Adam) or as a decoupled shrink `p -= lr·wd·p` (AdamW).

use super::{decays, values_and_grads, Common, Optimizer};
use crate::device::{AdamStep, Device};
use crate::error::Result;
use crate::nn::Param;

/// Adam or AdamW; its state is the moments `m` and `v` of every parameter.
pub struct Adam<D: Device> {
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    decoupled: bool,
    common: Common<D>,
}

impl<D: Device> Adam<D> {
    /// Adam at `lr` with `(β1, β2, ε)`; `decoupled` makes it AdamW.
    pub fn new(
        lr: f32,
        (beta1, beta2, eps): (f32, f32, f32),
        weight_decay: f32,
        decoupled: bool,
        clip_norm: Option<f32>,
    ) -> Self {
        Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
            common: Common::new(lr, clip_norm, &["m", "v"]),
        }
    }
}

impl<D: Device> Optimizer<D> for Adam<D> {
    fn name(&self) -> &'static str {
        if self.decoupled {
            "adamw"
        } else {
            "adam"
        }
    }

    fn update(
        &mut self,
        dev: &D,
        params: &mut [&mut Param<D>],
        s: &D::Tensor,
        step: u64,
    ) -> Result<()> {
        let lr = self.common.lr;
        let hps: Vec<AdamStep> = decays(params, self.weight_decay)
            .into_iter()
            .map(|wd| {
                let (l2, decoupled) = if self.decoupled { (0.0, wd) } else { (wd, 0.0) };
                AdamStep {
                    lr,
                    beta1: self.beta1,
                    beta2: self.beta2,
                    eps: self.eps,
                    weight_decay: l2,
                    decoupled_decay: decoupled,
                    // β^t underflows to 0 long before t reaches u32::MAX.
                    step: u32::try_from(step).unwrap_or(u32::MAX),
                }
            })
            .collect();
        let slots = self.common.slots.get(dev, params)?;
        let (mut ms, mut vs) = (Vec::new(), Vec::new());
        for slot in slots.iter_mut() {
            let [m, v] = &mut slot[..] else {
                unreachable!("Adam has two slots")
            };
            ms.push(m);
            vs.push(v);
        }
        let (mut values, grads) = values_and_grads(params)?;
        dev.adam_update_many(&mut values, &mut ms, &mut vs, &grads, s, &hps)
    }

    fn common(&self) -> &Common<D> {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common<D> {
        &mut self.common
    }
}
