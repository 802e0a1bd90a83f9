//! Which samples a trained model is evaluated on: the split its training
//! run held out (recreated from the seed in its checkpoint), or another
//! dataset, checked against the model's input shape and classes.

use std::path::Path;

use super::checkpoint::Checkpoint;
use crate::data::spec::{load, Loaded};
use crate::data::{
    prepare, DataSource, Dataset, Features, PrepareOptions, Targets, Task, TextCorpus,
};
use crate::error::{Error, Result};

/// Which part of a dataset to evaluate on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training run's test split for its own data; otherwise the data's
    /// own test set (MNIST t10k) or all of it.
    Auto,
    /// Every sample.
    All,
    /// The split the run trained on, recreated from its seed.
    Train,
    /// The validation split (model selection), recreated.
    Val,
    /// The test split, recreated.
    Test,
}

/// The samples to evaluate `ck` on from `spec` (a `--data` argument), and a
/// description of them.
pub fn eval_dataset(ck: &Checkpoint, spec: &str, split: Split) -> Result<(Dataset, String)> {
    let exp = &ck.meta.experiment;
    let split = match split {
        Split::Auto if spec == exp.data => Split::Test,
        s => s,
    };
    let task = ck.meta.task;
    let (ds, what) = match split {
        Split::Train | Split::Val | Split::Test => {
            let p = prepare(
                spec,
                &PrepareOptions {
                    task,
                    target: exp.target.clone(),
                    val_fraction: exp.val_fraction,
                    test_fraction: exp.test_fraction,
                    seq_len: exp.seq_len,
                    seed: exp.seed,
                },
            )?;
            if task == Task::Text && p.vocab.as_deref() != ck.meta.vocab.as_deref() {
                return Err(Error::Config(format!(
                    "{spec} has a different character set from the model's training text; use --split all"
                )));
            }
            let (ds, name) = match split {
                Split::Train => (p.train, "training split"),
                Split::Val => (p.val, "validation split"),
                _ if p.test.is_empty() => (p.val, "held-out split"),
                _ => (p.test, "test split"),
            };
            (ds, format!("{name} of {spec}"))
        }
        Split::All | Split::Auto => {
            let source = DataSource::parse(spec)?;
            match load(&source, task, exp.target.as_deref())? {
                Loaded::Samples {
                    test: Some(test), ..
                } if split == Split::Auto => (test, format!("test set of {spec}")),
                Loaded::Samples { mut all, test } => {
                    if let (Split::All, Some(t)) = (split, test) {
                        append(&mut all, t);
                    }
                    (all, format!("all of {spec}"))
                }
                Loaded::Text(_) => {
                    let bytes = text_bytes(&source)?;
                    let vocab = ck.meta.vocab.as_deref().unwrap_or_default();
                    let corpus = TextCorpus::with_vocab(&bytes, Path::new(spec), vocab)?;
                    (
                        corpus.windows(0..corpus.ids.len(), exp.seq_len, spec),
                        format!("all of {spec}"),
                    )
                }
            }
        }
    };
    check_fits(ck, &ds, spec)?;
    Ok((ds, what))
}

fn text_bytes(source: &DataSource) -> Result<Vec<u8>> {
    Ok(match source {
        DataSource::Builtin(n) => match crate::data::builtin::builtin(n) {
            Some(crate::data::builtin::Builtin::Text(b)) => b.to_vec(),
            _ => unreachable!("load() returned text"),
        },
        DataSource::Text(p) => {
            crate::data::limits::read_capped(p, crate::data::limits::MAX_TEXT_BYTES)?
        }
        _ => unreachable!("load() returned text"),
    })
}

/// `b`'s samples after `a`'s (one source, so one feature and target type).
fn append(a: &mut Dataset, b: Dataset) {
    match (&mut a.features, b.features) {
        (Features::U8(x), Features::U8(y)) => x.extend(y),
        (Features::F32(x), Features::F32(y)) => x.extend(y),
        _ => unreachable!("one source has one feature type"),
    }
    match (&mut a.targets, b.targets) {
        (Targets::Classes { ids: x, .. }, Targets::Classes { ids: y, .. }) => x.extend(y),
        (Targets::Values { values: x, .. }, Targets::Values { values: y, .. }) => x.extend(y),
        _ => unreachable!("one source has one target type"),
    }
}

/// The data must have the model's sample shape and stay within its classes.
pub fn check_fits(ck: &Checkpoint, ds: &Dataset, spec: &str) -> Result<()> {
    let m = &ck.meta.model;
    let dims = m.input.dims();
    if ds.sample_shape != dims && ck.meta.task != Task::Text {
        return Err(Error::data(
            spec,
            format!(
                "samples of shape {:?} do not fit this {} model, which takes {}",
                ds.sample_shape,
                ck.meta.experiment.name(),
                m.input
            ),
        ));
    }
    if let Targets::Classes { ids, .. } = &ds.targets {
        let classes = m.output.size();
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= classes) {
            return Err(Error::data(
                spec,
                format!("label {bad} is out of range for a model of {classes} classes"),
            ));
        }
    }
    if ds.is_empty() {
        return Err(Error::data(spec, "no samples to evaluate"));
    }
    Ok(())
}

impl Checkpoint {
    /// This checkpoint's model on `ds` (raw samples, normalised here as in
    /// training), `batch_size` samples at a time.
    pub fn evaluate<D: crate::device::Device + 'static>(
        &self,
        dev: &D,
        ds: &Dataset,
        batch_size: usize,
    ) -> Result<super::Evaluation> {
        if batch_size == 0 {
            return Err(Error::Config("--batch-size must be at least 1".into()));
        }
        let mut model = self.model(dev)?;
        let scaler = self.meta.target_scaler.as_ref();
        let data = crate::data::DeviceData::upload(dev, ds, &self.meta.normalizer, scaler)?;
        let order = super::identity_order(dev, data.len())?;
        super::evaluate(dev, &mut model, &data, &order, batch_size, scaler)
    }
}
