//! Which samples a trained model is evaluated on: the split its training
//! run held out (recreated from the seed in its checkpoint), or another
//! dataset, checked against the model's input shape and classes.

use std::path::Path;

use super::checkpoint::Checkpoint;
use crate::data::spec::{as_sequences, load, Loaded};
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
                    series: exp.series_options()?,
                },
            )?;
            // Its own data again: the splits are the run's only if the data
            // is unchanged (same samples, same settings).
            let changed = ck.meta.data_checksum.is_some_and(|c| c != p.checksum());
            if spec == exp.data && changed {
                return Err(Error::Config(format!(
                    "{spec} has changed since the model was trained on it, so its recreated splits are not the ones the run held out; evaluate on all of it with --split all"
                )));
            }
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
        Split::All | Split::Auto if exp.window.is_some() => {
            // Every window of the series, in time order.
            let p = prepare(
                spec,
                &PrepareOptions {
                    task,
                    target: exp.target.clone(),
                    val_fraction: 0.0,
                    test_fraction: 0.0,
                    seq_len: exp.seq_len,
                    seed: exp.seed,
                    series: exp.series_options()?,
                },
            )?;
            (p.train, format!("all windows of {spec}"))
        }
        Split::All | Split::Auto => {
            let source = DataSource::parse(spec)?;
            let target = exp.target.clone().or_else(|| target_by_name(ck, &source));
            match load(&source, task, target.as_deref())? {
                Loaded::Samples {
                    test: Some(test), ..
                } if split == Split::Auto => (test, format!("test set of {spec}")),
                Loaded::Samples { mut all, test } => {
                    if let (Split::All, Some(t)) = (split, test) {
                        append(&mut all, t);
                    }
                    if exp.sequence {
                        all = as_sequences(all)?;
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
    let ds = align_to_model(ck, ds, spec)?;
    check_fits(ck, &ds, spec)?;
    Ok((ds, what))
}

/// The target column of another CSV for a model trained on a named table:
/// the column named like the training target, or else the one column that
/// is not among the model's features (so a table with its columns in
/// another order still works).
fn target_by_name(ck: &Checkpoint, source: &DataSource) -> Option<String> {
    let DataSource::Csv(path) = source else {
        return None;
    };
    if ck.meta.feature_names.is_empty() {
        return None;
    }
    let bytes = crate::data::limits::read_capped(path, crate::data::limits::MAX_FILE_BYTES).ok()?;
    let header = String::from_utf8_lossy(bytes.split(|&b| b == b'\n').next()?).into_owned();
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    if columns.contains(&ck.meta.target_name.as_str()) {
        return Some(ck.meta.target_name.clone());
    }
    let others: Vec<&str> = columns
        .into_iter()
        .filter(|h| !ck.meta.feature_names.iter().any(|n| n == h))
        .collect();
    match others[..] {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

/// A named table's columns in the model's order, and named labels as the
/// model's class ids: columns are matched by name (any order, extra ones
/// dropped), labels by name.
pub fn align_to_model(ck: &Checkpoint, mut ds: Dataset, spec: &str) -> Result<Dataset> {
    let want = &ck.meta.feature_names;
    if !want.is_empty() && !ds.feature_names.is_empty() && *want != ds.feature_names {
        let have = &ds.feature_names;
        let missing: Vec<&str> = want
            .iter()
            .filter(|n| !have.contains(n))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Error::data(
                spec,
                format!("lacks the model's feature column(s) {}", missing.join(", ")),
            ));
        }
        let order: Vec<usize> = want
            .iter()
            .map(|n| have.iter().position(|h| h == n).expect("checked"))
            .collect();
        if let Features::F32(x) = &ds.features {
            let width = have.len();
            let x: Vec<f32> = x
                .chunks(width)
                .flat_map(|row| order.iter().map(move |&c| row[c]))
                .collect();
            ds.features = Features::F32(x);
        }
        // A table's columns, or (`--sequence`) its columns as steps.
        ds.sample_shape = match ds.sample_shape[..] {
            [_, 1] => vec![want.len(), 1],
            _ => vec![want.len()],
        };
        ds.feature_names = want.clone();
    }
    let names = &ck.meta.class_names;
    if let Targets::Classes { ids, classes, .. } = &mut ds.targets {
        match (names.is_empty(), ds.class_names.is_empty()) {
            (true, true) => {}
            (true, false) => {
                return Err(Error::data(
                    spec,
                    "has named class labels, but the model was trained on numeric ones",
                ))
            }
            (false, true) => {
                return Err(Error::data(
                    spec,
                    format!(
                        "has numeric class labels, but the model's are names ({})",
                        names.join(", ")
                    ),
                ))
            }
            (false, false) => {
                let map: Vec<u32> = ds
                    .class_names
                    .iter()
                    .map(|n| {
                        names
                            .iter()
                            .position(|m| m == n)
                            .map(|i| i as u32)
                            .ok_or_else(|| {
                                Error::data(
                                    spec,
                                    format!(
                                        "label '{n}' is not one of the model's classes ({})",
                                        names.join(", ")
                                    ),
                                )
                            })
                    })
                    .collect::<Result<_>>()?;
                for id in ids.iter_mut() {
                    *id = map[*id as usize];
                }
                *classes = names.len();
                ds.class_names = names.clone();
            }
        }
    }
    Ok(ds)
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
        super::evaluate(dev, &mut model, &data, batch_size, scaler)
    }
}
