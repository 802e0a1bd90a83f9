//! Datasets: loaders for MNIST-format IDX files, CSV tables (and the
//! sequences in them, see [`series`]) and UTF-8 text,
//! the built-in datasets compiled into the binary, seeded splits, and
//! normalisation with training-split statistics.
//!
//! Everything here runs on the host; [`device::DeviceData`] uploads a
//! prepared split once and gathers minibatches on the device.

pub mod builtin;
pub mod device;
pub mod idx;
pub mod limits;
mod memory;
pub mod normalize;
pub mod series;
pub mod spec;
mod stream;
pub mod tabular;
pub mod text;

pub use device::{DeviceData, Residency, SampleOrder, DEFAULT_CHUNK_BYTES, MAX_RESIDENT_SAMPLES};
pub use normalize::{Normalizer, TargetScaler};
pub use series::{Layout, Missing, SeriesOptions};
pub use spec::{prepare, DataSource, PrepareOptions, Prepared};
pub use text::TextCorpus;

use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a dataset's targets are, and so what a model trained on it predicts.
/// It belongs with the data: the model only sees its consequences (the
/// output width and the loss).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Real-valued targets.
    Regression,
    /// One class per sample.
    Classification,
    /// The next token at every position of a sequence.
    Text,
}

impl Task {
    /// The name used in messages and files.
    pub fn name(self) -> &'static str {
        match self {
            Task::Regression => "regression",
            Task::Classification => "classification",
            Task::Text => "text",
        }
    }
}

/// Sample features, row-major, one row per sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Features {
    /// Values already as f32 (table columns, token ids as whole numbers).
    F32(Vec<f32>),
    /// Raw bytes (images); normalised on the device while gathering.
    U8(Vec<u8>),
}

/// What each sample is labelled with.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// Class ids below `classes`, `per_sample` of them per sample (1, or the
    /// sequence length for text).
    Classes {
        /// Class ids, `per_sample` per sample, sample-major.
        ids: Vec<u32>,
        /// Number of classes; every id is below it.
        classes: usize,
        /// Ids per sample: 1 for classification, the sequence length for text.
        per_sample: usize,
    },
    /// Real values, `dims` per sample.
    Values {
        /// `dims` values per sample, sample-major.
        values: Vec<f32>,
        /// Target values per sample.
        dims: usize,
    },
}

impl Targets {
    fn per_sample(&self) -> usize {
        match self {
            Targets::Classes { per_sample, .. } => *per_sample,
            Targets::Values { dims, .. } => *dims,
        }
    }

    fn len(&self) -> usize {
        let n = match self {
            Targets::Classes { ids, .. } => ids.len(),
            Targets::Values { values, .. } => values.len(),
        };
        n / self.per_sample().max(1)
    }

    /// The targets as f32 rows, as they go to the device.
    pub fn as_f32(&self) -> Vec<f32> {
        match self {
            Targets::Classes { ids, .. } => ids.iter().map(|&i| i as f32).collect(),
            Targets::Values { values, .. } => values.clone(),
        }
    }
}

/// A set of samples and their targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Where it came from (a built-in name or a path), for messages.
    pub name: String,
    /// What the targets are; decides the model's output and loss.
    pub task: Task,
    /// One sample's shape: `[features]`, `[channels, height, width]`, or
    /// `[seq_len]` token ids.
    pub sample_shape: Vec<usize>,
    /// `len() * sample_len()` values, one row per sample.
    pub features: Features,
    /// One row of targets per sample, in the same order as `features`.
    pub targets: Targets,
    /// Tables: the feature columns' names, in order (empty when unnamed).
    pub feature_names: Vec<String>,
    /// Tables: the target column's name (empty when unnamed).
    pub target_name: String,
    /// Classification with named labels (`setosa`): the name of each class
    /// id (empty when the labels are the ids themselves).
    pub class_names: Vec<String>,
}

impl Dataset {
    /// Adds the samples (features and targets, in order) to a CRC-32.
    fn checksum_into(&self, crc: &mut crc32fast::Hasher) {
        match &self.features {
            Features::F32(v) => crc.update(bytemuck::cast_slice(v)),
            Features::U8(v) => crc.update(v),
        }
        match &self.targets {
            Targets::Classes { ids, .. } => crc.update(bytemuck::cast_slice(ids)),
            Targets::Values { values, .. } => crc.update(bytemuck::cast_slice(values)),
        }
        crc.update(&(self.len() as u64).to_le_bytes());
    }

    /// Checks that the fields agree: whole rows of targets, features for
    /// each sample, class ids below the class count. The loaders build only
    /// such datasets; one built by hand (the fields are public) is checked
    /// by [`Prepared::from_dataset`] and [`crate::run::Experiment::from_prepared`].
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::data(&self.name, m));
        let (held, per_sample) = match &self.targets {
            Targets::Classes {
                ids,
                classes,
                per_sample,
            } => {
                if let Some(id) = ids.iter().find(|&&i| i as usize >= *classes) {
                    return bad(format!("class id {id} is not below the {classes} classes"));
                }
                (ids.len(), *per_sample)
            }
            Targets::Values { values, dims } => (values.len(), *dims),
        };
        if per_sample == 0 || held % per_sample != 0 {
            return bad(format!(
                "{held} target values are not whole rows of {per_sample}"
            ));
        }
        let features = match &self.features {
            Features::F32(v) => v.len(),
            Features::U8(v) => v.len(),
        };
        let expected = self
            .sample_shape
            .iter()
            .try_fold(self.len(), |a, &d| a.checked_mul(d));
        if expected != Some(features) {
            return bad(format!(
                "{features} feature values for {} samples of shape {:?}",
                self.len(),
                self.sample_shape
            ));
        }
        Ok(())
    }

    /// Number of samples, counted from the targets.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Features per sample: the product of `sample_shape`.
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// Classes (classification, text) or target values per sample.
    pub fn outputs(&self) -> usize {
        match &self.targets {
            Targets::Classes { classes, .. } => *classes,
            Targets::Values { dims, .. } => *dims,
        }
    }

    /// The samples at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        fn rows<T: Copy>(v: &[T], width: usize, idx: &[usize]) -> Vec<T> {
            let mut out = Vec::with_capacity(idx.len() * width);
            for &i in idx {
                out.extend_from_slice(&v[i * width..(i + 1) * width]);
            }
            out
        }
        let w = self.sample_len();
        let features = match &self.features {
            Features::F32(v) => Features::F32(rows(v, w, idx)),
            Features::U8(v) => Features::U8(rows(v, w, idx)),
        };
        let per = self.targets.per_sample();
        let targets = match &self.targets {
            Targets::Classes {
                ids,
                classes,
                per_sample,
            } => Targets::Classes {
                ids: rows(ids, per, idx),
                classes: *classes,
                per_sample: *per_sample,
            },
            Targets::Values { values, dims } => Targets::Values {
                values: rows(values, per, idx),
                dims: *dims,
            },
        };
        Dataset {
            name: self.name.clone(),
            task: self.task,
            sample_shape: self.sample_shape.clone(),
            features,
            targets,
            feature_names: self.feature_names.clone(),
            target_name: self.target_name.clone(),
            class_names: self.class_names.clone(),
        }
    }
}

/// Like [`split_indices`], but for single-label classification each class
/// is split in the given proportions separately (stratified), so small held
/// out sets keep the class balance of the whole.
pub fn split_dataset(
    ds: &Dataset,
    val_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let Targets::Classes {
        ids,
        classes,
        per_sample: 1,
    } = &ds.targets
    else {
        return split_indices(ds.len(), val_fraction, test_fraction, seed);
    };
    let (mut train, mut val, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for c in 0..*classes as u32 {
        let members: Vec<usize> = (0..ids.len()).filter(|&i| ids[i] == c).collect();
        let (tr, va, te) =
            split_indices(members.len(), val_fraction, test_fraction, seed ^ c as u64);
        train.extend(tr.iter().map(|&i| members[i]));
        val.extend(va.iter().map(|&i| members[i]));
        test.extend(te.iter().map(|&i| members[i]));
    }
    // Interleave the classes again: minibatches are drawn from a shuffle
    // anyway, but evaluation order should not group classes.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    train.shuffle(&mut rng);
    val.shuffle(&mut rng);
    test.shuffle(&mut rng);
    (train, val, test)
}

/// Indices `0..n` shuffled by `seed`, cut into train / validation / test
/// parts of the given fractions (rounded; train gets the rest).
pub fn split_indices(
    n: usize,
    val_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_test = (n as f64 * test_fraction).round() as usize;
    let n_val = (n as f64 * val_fraction).round() as usize;
    let test = idx.split_off(n - n_test.min(n));
    let val = idx.split_off(idx.len() - n_val.min(idx.len()));
    (idx, val, test)
}
