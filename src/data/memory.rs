//! Datasets from arrays already in memory (ndarray), for library users who
//! have their data in a program rather than in a file.

use ndarray::{ArrayView2, ArrayView4};

use super::{split_dataset, Dataset, Features, Normalizer, Prepared, TargetScaler, Targets, Task};
use crate::error::{Error, Result};

fn check_finite(name: &str, what: &str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::data(
            name,
            format!("{what} value {i} is {}, not a finite number", values[i]),
        )),
        None => Ok(()),
    }
}

fn class_targets(name: &str, rows: usize, labels: &[u32]) -> Result<Targets> {
    if labels.len() != rows {
        return Err(Error::data(
            name,
            format!("{rows} samples but {} labels", labels.len()),
        ));
    }
    let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    if classes > super::limits::MAX_CLASSES {
        return Err(Error::data(
            name,
            format!(
                "label {} is over the limit of {} classes",
                classes - 1,
                super::limits::MAX_CLASSES
            ),
        ));
    }
    if classes < 2 {
        return Err(Error::data(
            name,
            "classification needs labels of at least two classes",
        ));
    }
    Ok(Targets::Classes {
        ids: labels.to_vec(),
        classes,
        per_sample: 1,
    })
}

impl Dataset {
    /// Samples `x` (`[samples, features]`) with class ids `labels`
    /// (`0..classes`).
    pub fn classification(name: &str, x: ArrayView2<f32>, labels: &[u32]) -> Result<Dataset> {
        let values: Vec<f32> = x.iter().copied().collect();
        check_finite(name, "feature", &values)?;
        Ok(Dataset {
            name: name.into(),
            task: Task::Classification,
            sample_shape: vec![x.ncols()],
            features: Features::F32(values),
            targets: class_targets(name, x.nrows(), labels)?,
            feature_names: Vec::new(),
            target_name: String::new(),
            class_names: Vec::new(),
        })
    }

    /// Images `x` (`[samples, channels, height, width]`) with class ids.
    pub fn image_classification(name: &str, x: ArrayView4<f32>, labels: &[u32]) -> Result<Dataset> {
        let (n, c, h, w) = x.dim();
        let values: Vec<f32> = x.iter().copied().collect();
        check_finite(name, "pixel", &values)?;
        Ok(Dataset {
            name: name.into(),
            task: Task::Classification,
            sample_shape: vec![c, h, w],
            features: Features::F32(values),
            targets: class_targets(name, n, labels)?,
            feature_names: Vec::new(),
            target_name: String::new(),
            class_names: Vec::new(),
        })
    }

    /// Samples `x` (`[samples, features]`) with real-valued targets `y`
    /// (`[samples, targets]`).
    pub fn regression(name: &str, x: ArrayView2<f32>, y: ArrayView2<f32>) -> Result<Dataset> {
        if x.nrows() != y.nrows() || y.ncols() == 0 {
            return Err(Error::data(
                name,
                format!("{} samples but targets of shape {:?}", x.nrows(), y.dim()),
            ));
        }
        let values: Vec<f32> = x.iter().copied().collect();
        check_finite(name, "feature", &values)?;
        let targets: Vec<f32> = y.iter().copied().collect();
        check_finite(name, "target", &targets)?;
        Ok(Dataset {
            name: name.into(),
            task: Task::Regression,
            sample_shape: vec![x.ncols()],
            features: Features::F32(values),
            targets: Targets::Values {
                values: targets,
                dims: y.ncols(),
            },
            feature_names: Vec::new(),
            target_name: String::new(),
            class_names: Vec::new(),
        })
    }
}

impl Prepared {
    /// Splits `all` into seeded train / validation / test parts (stratified
    /// by class) and fits the normalisation on the training part, as a file
    /// loaded by `--data` would be.
    pub fn from_dataset(
        all: Dataset,
        val_fraction: f64,
        test_fraction: f64,
        seed: u64,
    ) -> Result<Prepared> {
        super::spec::check_fractions(val_fraction, test_fraction)?;
        all.validate()?;
        let (tr, va, te) = split_dataset(&all, val_fraction, test_fraction, seed);
        let train = all.subset(&tr);
        if train.is_empty() {
            return Err(Error::data(&all.name, "no training samples"));
        }
        let warnings = super::spec::check_classes_present(&train)?;
        let normalizer = Normalizer::fit(&train);
        let target_scaler = TargetScaler::fit(&train);
        Ok(Prepared {
            source: all.name.clone(),
            val: all.subset(&va),
            test: all.subset(&te),
            train,
            normalizer,
            target_scaler,
            vocab: None,
            warnings,
            last_value_feature: None,
        })
    }
}
