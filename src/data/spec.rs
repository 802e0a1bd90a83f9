//! Turning a `--data` argument into train / validation / test splits.

use std::path::{Path, PathBuf};

use super::builtin::{self, Builtin};
use super::idx::{find_idx_files, parse_idx, read_idx, IdxArray};
use super::limits::{read_capped, MAX_FILE_BYTES, MAX_TEXT_BYTES};
use super::series::{parse_windows, Layout, SeriesOptions};
use super::tabular::parse_csv;
use super::Task;
use super::{split_dataset, Dataset, Features, Normalizer, TargetScaler, Targets, TextCorpus};
use crate::error::{Error, Result};

/// Where data comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum DataSource {
    /// A dataset compiled into the binary (see [`builtin::NAMES`]).
    Builtin(String),
    /// A directory of MNIST-format IDX files.
    IdxDir(PathBuf),
    /// A CSV file: a header line, then one sample per row.
    Csv(PathBuf),
    /// Any other file, read as UTF-8 text for character-level models.
    Text(PathBuf),
}

impl DataSource {
    /// Interprets `spec`: a built-in name, `mnist` (the repository's
    /// data/mnist), a directory of IDX files, a `.csv` file, or any other file
    /// as text.
    pub fn parse(spec: &str) -> Result<Self> {
        if builtin::NAMES.contains(&spec) {
            return Ok(DataSource::Builtin(spec.to_string()));
        }
        let path = if spec == "mnist" {
            PathBuf::from("data/mnist")
        } else {
            PathBuf::from(spec)
        };
        if path.is_dir() {
            return Ok(DataSource::IdxDir(path));
        }
        if !path.exists() {
            return Err(Error::data(
                &path,
                format!(
                    "no such file or directory (built-in datasets: {}{})",
                    builtin::NAMES.join(", "),
                    if spec == "mnist" {
                        "; mnist is read from data/mnist in the repository, run from its root"
                    } else {
                        ""
                    }
                ),
            ));
        }
        // The other files a user may hand over, which would otherwise be
        // read as text: an IDX file (its magic: two zero bytes, a type code
        // of 0x08–0x0E, 1–4 dimensions) or a gzip.
        let mut head = [0u8; 4];
        let read = std::fs::File::open(&path).and_then(|mut f| {
            use std::io::Read;
            f.read(&mut head)
        });
        if let Ok(4) = read {
            let idx = head[..2] == [0, 0]
                && (0x08..=0x0E).contains(&head[2])
                && (1..=4).contains(&head[3]);
            if idx {
                return Err(Error::data(
                    &path,
                    "is an IDX (MNIST-format) file: give the directory that holds the images and labels files",
                ));
            }
            if head[..2] == [0x1f, 0x8b] {
                return Err(Error::data(
                    &path,
                    "is gzip-compressed: give MNIST-format .gz files by their directory, decompress anything else",
                ));
            }
        }
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        Ok(if is_csv {
            DataSource::Csv(path)
        } else {
            DataSource::Text(path)
        })
    }

    /// The task this source implies when none is asked for: text for text
    /// files, regression for the built-in diabetes table, classification for
    /// everything else (a CSV is read as classes unless `--task regression`).
    pub fn default_task(&self) -> Task {
        match self {
            DataSource::Builtin(n) => match builtin::builtin(n) {
                Some(Builtin::Text(_)) => Task::Text,
                _ if n == "diabetes" => Task::Regression,
                _ => Task::Classification,
            },
            DataSource::Text(_) => Task::Text,
            DataSource::IdxDir(_) | DataSource::Csv(_) => Task::Classification,
        }
    }

    /// The name used in messages and metadata.
    pub fn describe(&self) -> String {
        match self {
            DataSource::Builtin(n) => n.clone(),
            DataSource::IdxDir(p) | DataSource::Csv(p) | DataSource::Text(p) => {
                p.display().to_string()
            }
        }
    }
}

/// How to split and label the data.
#[derive(Clone, Debug, PartialEq)]
pub struct PrepareOptions {
    /// What to train for; decides how CSV targets are read and which sources fit.
    pub task: Task,
    /// CSV target column (default: the last).
    pub target: Option<String>,
    /// Fraction of the samples (of the characters, for text) held out for validation.
    pub val_fraction: f64,
    /// Ignored when the source has its own test set (MNIST's t10k files).
    pub test_fraction: f64,
    /// Text: characters per training sequence.
    pub seq_len: usize,
    /// Seed of the shuffles that split the samples (text and time-series
    /// splits are contiguous).
    pub seed: u64,
    /// How a CSV file's rows become samples (a table by default).
    pub series: SeriesOptions,
}

/// Splits ready for training, with the transforms fitted on `train`.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The source as [`DataSource::describe`] names it.
    pub source: String,
    /// Training samples; the transforms below were fitted on them.
    pub train: Dataset,
    /// Validation samples.
    pub val: Dataset,
    /// Test samples: the source's own test set if it has one, else a held-out part.
    pub test: Dataset,
    /// Feature transform fitted on `train`.
    pub normalizer: Normalizer,
    /// Target standardisation fitted on `train`; `None` unless targets are values.
    pub target_scaler: Option<TargetScaler>,
    /// Text only: the character of each token id.
    pub vocab: Option<Vec<char>>,
    /// What the user should know about the data (classes without samples,
    /// gaps filled in a series).
    pub warnings: Vec<String>,
    /// Time-series windows whose steps include the target column: its
    /// position among a step's features (the "same as last value"
    /// baseline reads it).
    pub last_value_feature: Option<usize>,
}

impl Prepared {
    /// A CRC-32 of the three splits' samples, in order: the same data
    /// prepared with the same settings gives the same value, so a model can
    /// tell whether the split it is evaluated on is the one it held out.
    pub fn checksum(&self) -> u32 {
        let mut crc = crc32fast::Hasher::new();
        for split in [&self.train, &self.val, &self.test] {
            split.checksum_into(&mut crc);
        }
        crc.finalize()
    }
}

/// Raw contents of a source, before splitting. (Made once per run, so the
/// size difference between the variants does not matter.)
#[allow(clippy::large_enum_variant)]
pub enum Loaded {
    /// Samples, and the source's own test set if it has one.
    Samples {
        /// Every sample of the source (its test set excluded).
        all: Dataset,
        /// The source's own test set (MNIST's t10k files), if any.
        test: Option<Dataset>,
    },
    /// A text corpus, split by character ranges rather than by sample.
    Text(TextCorpus),
}

fn images(images: IdxArray, labels: IdxArray, name: &str, path: &Path) -> Result<Dataset> {
    let [n, rows, cols] = images.dims[..] else {
        return Err(Error::data(
            path,
            format!(
                "images must be 3-d (count, rows, cols), got {:?}",
                images.dims
            ),
        ));
    };
    if labels.dims != [n] {
        return Err(Error::data(
            path,
            format!(
                "{n} images but labels of shape {:?}; both files must hold the same count",
                labels.dims
            ),
        ));
    }
    let ids: Vec<u32> = labels.data.iter().map(|&l| l as u32).collect();
    let classes = ids.iter().max().map_or(0, |&m| m as usize + 1);
    Ok(Dataset {
        name: name.to_string(),
        task: Task::Classification,
        sample_shape: vec![1, rows, cols],
        features: Features::U8(images.data),
        targets: Targets::Classes {
            ids,
            classes,
            per_sample: 1,
        },
        feature_names: Vec::new(),
        target_name: String::new(),
        class_names: Vec::new(),
    })
}

/// Reads a source for `task` (CSV targets are classes or values by task).
pub fn load(source: &DataSource, task: Task, target: Option<&str>) -> Result<Loaded> {
    let name = source.describe();
    let needs = |what: &str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "{name} is {what}, which does not suit a {} model",
                match task {
                    Task::Regression => "regression",
                    Task::Classification => "classification",
                    Task::Text => "text (rnn)",
                }
            )))
        }
    };
    let loaded = match source {
        DataSource::Builtin(n) => match builtin::builtin(n).expect("checked by parse") {
            Builtin::Idx {
                images: i,
                labels: l,
            } => {
                needs("a labelled image set", task == Task::Classification)?;
                let p = Path::new(n);
                let all = images(parse_idx(i, p)?, parse_idx(l, p)?, n, p)?;
                Loaded::Samples { all, test: None }
            }
            Builtin::Csv(bytes) => {
                let regression = n == "diabetes";
                needs(
                    if regression {
                        "a regression table"
                    } else {
                        "a classification table"
                    },
                    (task == Task::Regression) == regression && task != Task::Text,
                )?;
                Loaded::Samples {
                    all: parse_csv(bytes, Path::new(n), target, task)?,
                    test: None,
                }
            }
            Builtin::Text(bytes) => {
                needs("text", task == Task::Text)?;
                Loaded::Text(TextCorpus::from_bytes(bytes, Path::new(n))?)
            }
        },
        DataSource::IdxDir(dir) => {
            needs("a labelled image set", task == Task::Classification)?;
            let files = find_idx_files(dir)?;
            let read = |(i, l): &(PathBuf, PathBuf)| -> Result<Dataset> {
                images(read_idx(i)?, read_idx(l)?, &name, i)
            };
            let all = read(files.train.as_ref().expect("find_idx_files requires train"))?;
            let test = files.test.as_ref().map(read).transpose()?;
            Loaded::Samples { all, test }
        }
        DataSource::Csv(path) => {
            needs("a table", task != Task::Text)?;
            let bytes = read_capped(path, MAX_FILE_BYTES)?;
            Loaded::Samples {
                all: parse_csv(&bytes, path, target, task)?,
                test: None,
            }
        }
        DataSource::Text(path) => {
            needs("text", task == Task::Text)?;
            let bytes = read_capped(path, MAX_TEXT_BYTES)?;
            Loaded::Text(TextCorpus::from_bytes(&bytes, path)?)
        }
    };
    Ok(loaded)
}

/// Loads `spec` and splits it: seeded shuffles for samples, contiguous
/// parts (train, then validation, then test) for text.
pub fn prepare(spec: &str, opts: &PrepareOptions) -> Result<Prepared> {
    check_fractions(opts.val_fraction, opts.test_fraction)?;
    let source = DataSource::parse(spec)?;
    if let Layout::Window(window) = opts.series.layout {
        return prepare_windows(&source, opts, window);
    }
    let name = source.describe();
    let loaded = match (
        load(&source, opts.task, opts.target.as_deref())?,
        opts.series.layout,
    ) {
        (Loaded::Samples { all, test }, Layout::Sequence) => Loaded::Samples {
            all: as_sequences(all)?,
            test: test.map(as_sequences).transpose()?,
        },
        (loaded, _) => loaded,
    };
    let (train, val, test, vocab) = match loaded {
        Loaded::Samples {
            all,
            test: Some(test),
        } => {
            let (tr, va, _) = split_dataset(&all, opts.val_fraction, 0.0, opts.seed);
            check_classes(&all, &test)?;
            (all.subset(&tr), all.subset(&va), test, None)
        }
        Loaded::Samples { all, test: None } => {
            let (tr, va, te) =
                split_dataset(&all, opts.val_fraction, opts.test_fraction, opts.seed);
            (all.subset(&tr), all.subset(&va), all.subset(&te), None)
        }
        Loaded::Text(corpus) => {
            // One step per sequence would make each sample's targets look
            // like a single class label to everything downstream.
            if opts.seq_len < 2 {
                return Err(Error::Config(format!(
                    "--seq-len {} is too short: a text model trains on sequences of at least 2 characters",
                    opts.seq_len
                )));
            }
            let n = corpus.ids.len();
            let n_test = (n as f64 * opts.test_fraction) as usize;
            let n_val = (n as f64 * opts.val_fraction) as usize;
            let n_train = n - n_val - n_test;
            let train = corpus.windows(0..n_train, opts.seq_len, &name);
            let val = corpus.windows(n_train..n_train + n_val, opts.seq_len, &name);
            let test = corpus.windows(n_train + n_val..n, opts.seq_len, &name);
            let short = |part: &Dataset, frac: f64| frac > 0.0 && part.is_empty();
            if train.is_empty()
                || short(&val, opts.val_fraction)
                || short(&test, opts.test_fraction)
            {
                return Err(Error::data(
                    &name,
                    format!(
                        "text of {n} characters is too short for --seq-len {} with these split fractions",
                        opts.seq_len
                    ),
                ));
            }
            (train, val, test, Some(corpus.vocab))
        }
    };
    if train.is_empty() {
        return Err(Error::data(&name, "no training samples"));
    }
    let warnings = check_classes_present(&train)?;
    let normalizer = Normalizer::fit(&train);
    let target_scaler = TargetScaler::fit(&train);
    Ok(Prepared {
        source: name,
        train,
        val,
        test,
        normalizer,
        target_scaler,
        vocab,
        warnings,
        last_value_feature: None,
    })
}

/// A table's rows as sequences: the feature columns, in order, are the
/// steps, one value each (`--sequence`). Fails for data that is not a table.
pub fn as_sequences(mut ds: Dataset) -> Result<Dataset> {
    match (&ds.features, &ds.sample_shape[..]) {
        (Features::F32(_), &[len]) => {
            ds.sample_shape = vec![len, 1];
            Ok(ds)
        }
        _ => Err(Error::data(
            &ds.name,
            "--sequence reads the columns of a CSV table as steps; this data is not a table",
        )),
    }
}

/// A time series in windows of `window` rows, split in time order: the
/// first windows train, the next validate, the last test.
fn prepare_windows(source: &DataSource, opts: &PrepareOptions, window: usize) -> Result<Prepared> {
    let DataSource::Csv(path) = source else {
        return Err(Error::Config(format!(
            "--window reads a time series from a CSV file; {} is not one",
            source.describe()
        )));
    };
    let bytes = read_capped(path, MAX_FILE_BYTES)?;
    let w = parse_windows(
        &bytes,
        path,
        opts.target.as_deref(),
        &opts.series,
        window,
        opts.task,
    )?;
    let n = w.dataset.len();
    let n_test = (n as f64 * opts.test_fraction).round() as usize;
    let n_val = (n as f64 * opts.val_fraction).round() as usize;
    let n_train = n.saturating_sub(n_val + n_test);
    let short = |count: usize, frac: f64| frac > 0.0 && count == 0;
    if n_train == 0 || short(n_val, opts.val_fraction) || short(n_test, opts.test_fraction) {
        return Err(Error::data(
            path,
            format!("{n} windows are too few for these split fractions"),
        ));
    }
    let part = |r: std::ops::Range<usize>| w.dataset.subset(&r.collect::<Vec<_>>());
    let train = part(0..n_train);
    let mut warnings = w.notes;
    warnings.extend(check_classes_present(&train)?);
    Ok(Prepared {
        source: source.describe(),
        val: part(n_train..n_train + n_val),
        test: part(n_train + n_val..n),
        normalizer: Normalizer::fit(&train),
        target_scaler: TargetScaler::fit(&train),
        train,
        vocab: None,
        warnings,
        last_value_feature: w.target_feature,
    })
}

/// Single-label classes of a training split: at least two must have
/// samples (an error otherwise); classes below the largest label that have
/// none are reported, since each still costs the model an output.
pub(crate) fn check_classes_present(train: &Dataset) -> Result<Vec<String>> {
    let Targets::Classes {
        ids,
        classes,
        per_sample: 1,
    } = &train.targets
    else {
        return Ok(Vec::new());
    };
    let mut count = vec![0usize; *classes];
    for &i in ids {
        count[i as usize] += 1;
    }
    let present = count.iter().filter(|&&c| c > 0).count();
    if present < 2 {
        return Err(Error::data(
            &train.name,
            format!(
                "the training data has {present} class{}: classification needs at least two",
                if present == 1 { "" } else { "es" }
            ),
        ));
    }
    let empty: Vec<usize> = (0..*classes).filter(|&c| count[c] == 0).collect();
    Ok(match empty.len() {
        0 => Vec::new(),
        n => vec![format!(
            "{}: labels run to {}, but {n} of the {classes} classes have no training samples ({}{}); the model still has an output for each",
            train.name,
            classes - 1,
            empty.iter().take(8).map(|c| c.to_string()).collect::<Vec<_>>().join(", "),
            if n > 8 { ", …" } else { "" }
        )],
    })
}

/// A test set's labels must fall within the training set's classes.
fn check_classes(train: &Dataset, test: &Dataset) -> Result<()> {
    if train.is_empty() {
        return Err(Error::data(&train.name, "no training samples"));
    }
    if let (Targets::Classes { classes, .. }, Targets::Classes { ids, .. }) =
        (&train.targets, &test.targets)
    {
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= *classes) {
            return Err(Error::data(
                &test.name,
                format!(
                    "test label {bad} is out of range: the training labels are 0..{}",
                    classes - 1
                ),
            ));
        }
    }
    if train.sample_shape != test.sample_shape {
        return Err(Error::data(
            &test.name,
            format!(
                "test samples are {:?}, training samples {:?}",
                test.sample_shape, train.sample_shape
            ),
        ));
    }
    Ok(())
}

/// Validation and test fractions must each lie in [0, 1) and leave training
/// data.
pub(crate) fn check_fractions(val_fraction: f64, test_fraction: f64) -> Result<()> {
    for (what, f) in [("val", val_fraction), ("test", test_fraction)] {
        if !(0.0..1.0).contains(&f) {
            return Err(Error::Config(format!(
                "--{what}-fraction must be in [0, 1), got {f}"
            )));
        }
    }
    if val_fraction + test_fraction >= 1.0 {
        return Err(Error::Config(
            "validation and test fractions leave no training data".into(),
        ));
    }
    Ok(())
}
