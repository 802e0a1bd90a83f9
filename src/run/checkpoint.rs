//! Checkpoints in the safetensors format, readable by the standard Python
//! `safetensors` package. Tensors are f32 and named after the model's
//! parameters by layer position (`layers.0.weight`, `layers.2.bias`,
//! `layers.1.recurrent_weight`); the metadata key `wgtrain` holds a JSON
//! [`ModelMeta`]: the architecture, the feature statistics, the vocabulary
//! for text and the run's settings.
//!
//! A resumable checkpoint also holds the optimizer's state, as the optimizer
//! names it (`optimizer.<parameter>.<slot>`), and a `wgtrain.resume` JSON
//! [`ResumeMeta`].
//!
//! Files are written to a temporary name in the same directory, flushed and
//! renamed, so a crash never leaves a half-written checkpoint.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use super::config::ExperimentConfig;
use super::fit::{restore, TrainState};
use crate::data::{Normalizer, TargetScaler, Task};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::models::{Model, ModelSpec};
use crate::tensor::HostTensor;

/// Bumped when the layout of files changes incompatibly (2: architectures
/// as layer lists, parameters named by position).
pub const FORMAT: u32 = 2;

/// What a model file says about the model, beyond its tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// The file layout's version ([`FORMAT`]).
    pub format: u32,
    /// The wgtrain that wrote it.
    pub wgtrain_version: String,
    /// The complete architecture (output layer included).
    pub model: ModelSpec,
    /// What the targets were.
    pub task: Task,
    /// The feature standardisation fitted on the training split.
    pub normalizer: Normalizer,
    /// Regression: the target standardisation (predictions are unscaled).
    pub target_scaler: Option<TargetScaler>,
    /// Text models: the character of each token id.
    pub vocab: Option<Vec<char>>,
    /// Tables: the feature columns the model takes, by name and in order
    /// (`predict` and `eval` match CSV columns by these); empty otherwise.
    #[serde(default)]
    pub feature_names: Vec<String>,
    /// Tables: the name of the target column it was trained on.
    #[serde(default)]
    pub target_name: String,
    /// Named classes: the name of each class id; empty when labels are ids.
    #[serde(default)]
    pub class_names: Vec<String>,
    /// The settings of the run that produced the model (data, split, seed,
    /// hyper-parameters).
    pub experiment: ExperimentConfig,
    /// [`Prepared::checksum`](crate::data::Prepared::checksum) of the run's
    /// data: `eval` and `--resume` refuse data that has changed since.
    #[serde(default)]
    pub data_checksum: Option<u32>,
}

/// Where a run stood when its resumable checkpoint was written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResumeMeta {
    /// The training loop's state after the saved epoch.
    pub state: TrainState,
    /// Updates the optimizer had taken.
    pub optimizer_steps: u64,
}

/// A loaded checkpoint.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// What the file says about the model.
    pub meta: ModelMeta,
    /// The model's parameters, by name.
    pub params: Vec<HostTensor>,
    /// The resume metadata and the optimizer's tensors, in a resumable
    /// checkpoint.
    pub resume: Option<(ResumeMeta, Vec<HostTensor>)>,
}

/// Writes a checkpoint atomically.
pub fn save(
    path: &Path,
    meta: &ModelMeta,
    params: &[HostTensor],
    resume: Option<(&ResumeMeta, &[HostTensor])>,
) -> Result<()> {
    let mut info = HashMap::new();
    info.insert("wgtrain".to_string(), to_json(meta)?);
    let mut tensors: Vec<&HostTensor> = params.iter().collect();
    if let Some((r, opt)) = resume {
        info.insert("wgtrain.resume".to_string(), to_json(r)?);
        tensors.extend(opt);
    }
    write_safetensors(path, &tensors, info)
}

/// Writes f32 `tensors` and string metadata `info` as one safetensors file,
/// atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &[&HostTensor],
    info: HashMap<String, String>,
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| Error::Config(format!("tensor {}: {e}", t.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    let data = safetensors::serialize(views, Some(info))
        .map_err(|e| Error::Config(format!("serialising {}: {e}", path.display())))?;
    write_atomically(path, &data)
}

/// The directory `path` is in (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `data` to `path` so that it is either wholly there or not changed
/// at all: into an exclusively created temporary file with an unpredictable
/// name beside `path`, synced, then renamed over it. Only a regular file (or
/// nothing) is ever replaced: a symbolic link is refused, and a device or
/// FIFO (`/dev/stdout`) is written through. A replaced file keeps its
/// permissions (whether a read-only one may be replaced is the caller's
/// policy: the run's own files may, a user's named output not).
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let existing = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(Error::data(
                path,
                "is a symbolic link: refusing to replace it (give the path it points to)",
            ))
        }
        Ok(m) if m.is_dir() => return Err(Error::data(path, "is a directory, not a file")),
        Ok(m) if !m.is_file() => {
            // A device or FIFO: write through, never replace.
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            return f.write_all(data).map_err(|e| Error::io(path, e));
        }
        Ok(m) => Some(m.permissions()),
        Err(_) => None,
    };
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("checkpoint");
    if !dir.is_dir() {
        return Err(Error::data(dir, "no such directory"));
    }
    let mut builder = tempfile::Builder::new();
    let prefix = format!(".{name}.");
    builder.prefix(&prefix).suffix(".tmp");
    // A new file gets the mode any program's would (0666 less the umask,
    // not the temporary file's private 0600); a replaced one keeps its own.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| {
        // Without the temporary file's name, which tempfile's message adds.
        let bare = e.raw_os_error().map_or_else(
            || std::io::Error::from(e.kind()),
            std::io::Error::from_raw_os_error,
        );
        Error::io(dir, bare)
    })?;
    if let Some(permissions) = existing {
        tmp.as_file()
            .set_permissions(permissions)
            .map_err(|e| Error::io(path, e))?;
    }
    tmp.write_all(data)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| Error::io(path, e))?;
    // A failed rename drops (and so deletes) the temporary file.
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    // Make the rename itself durable (best effort: not every platform can
    // open a directory for syncing).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a checkpoint written by [`save`].
pub fn load(path: &Path) -> Result<Checkpoint> {
    let bytes = crate::data::limits::read_capped(path, crate::data::limits::MAX_FILE_BYTES)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::data(path, format!("not a safetensors file ({e})")))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::data(path, format!("not a safetensors file ({e})")))?;
    let info = header.metadata().clone().unwrap_or_default();
    let meta_json = info
        .get("wgtrain")
        .ok_or_else(|| Error::data(path, "not a wgtrain checkpoint (no 'wgtrain' metadata)"))?;
    #[derive(Deserialize)]
    struct Format {
        format: u32,
    }
    let format: Format = serde_json::from_str(meta_json)
        .map_err(|e| Error::data(path, format!("unreadable wgtrain metadata: {e}")))?;
    if format.format != FORMAT {
        return Err(Error::data(
            path,
            format!(
                "checkpoint format {} is not supported (this wgtrain reads {FORMAT}; retrain the model)",
                format.format
            ),
        ));
    }
    let meta: ModelMeta = serde_json::from_str(meta_json)
        .map_err(|e| Error::data(path, format!("unreadable wgtrain metadata: {e}")))?;
    meta.model
        .validate()
        .map_err(|e| Error::data(path, format!("invalid architecture: {e}")))?;
    meta.normalizer
        .validate(meta.model.input.numel())
        .and_then(|_| match (&meta.target_scaler, meta.model.output) {
            (Some(s), crate::models::Output::Regression { targets }) => s.validate(targets),
            (None, crate::models::Output::Regression { .. }) => Err(Error::Config(
                "a regression model without its target statistics".into(),
            )),
            _ => Ok(()),
        })
        .map_err(|e| Error::data(path, e.to_string()))?;
    let vocab_ok = match (&meta.vocab, meta.model.output) {
        (Some(v), crate::models::Output::NextToken { vocab }) => {
            v.len() == vocab && v.windows(2).all(|w| w[0] < w[1])
        }
        (None, crate::models::Output::NextToken { .. }) => false,
        _ => true,
    };
    // A time series names the columns of one step; other data every value.
    let named = match (meta.experiment.window, meta.model.input) {
        (Some(_), crate::models::FeatureShape::Sequence { features, .. }) => features,
        _ => meta.model.input.numel(),
    };
    let distinct = |names: &[String]| {
        names.len() == names.iter().collect::<std::collections::HashSet<_>>().len()
    };
    let names_ok = (meta.feature_names.is_empty() || meta.feature_names.len() == named)
        && (meta.class_names.is_empty() || meta.class_names.len() == meta.model.output.size())
        && distinct(&meta.feature_names)
        && distinct(&meta.class_names);
    if !names_ok {
        return Err(Error::data(
            path,
            "the feature or class names do not match the model's input or output (or repeat a name)",
        ));
    }
    if !vocab_ok {
        return Err(Error::data(
            path,
            "the vocabulary does not match the model's output (or is not sorted)",
        ));
    }
    if meta.format != FORMAT {
        return Err(Error::data(
            path,
            format!(
                "checkpoint format {} is not supported (this wgtrain reads {FORMAT})",
                meta.format
            ),
        ));
    }
    let mut params = Vec::new();
    let mut optimizer = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::data(
                path,
                format!("tensor '{name}' is {:?}, expected F32", view.dtype()),
            ));
        }
        let t = HostTensor {
            shape: view.shape().to_vec(),
            values: view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            name,
        };
        // Training never saves a NaN or an infinity in a parameter (a
        // diverged loss stops it first, and saving checks); one in a file
        // would turn every prediction into NaN. (The optimizer's moments
        // are its own business: a resumed run's loss check watches them.)
        let optimizer_state = t.name.starts_with("optimizer.");
        if let Some(v) = t.values.iter().find(|v| !optimizer_state && !v.is_finite()) {
            return Err(Error::data(
                path,
                format!(
                    "tensor '{}' holds {v}: a model's numbers are finite",
                    t.name
                ),
            ));
        }
        if optimizer_state {
            optimizer.push(t);
        } else {
            params.push(t);
        }
    }
    let resume = match info.get("wgtrain.resume") {
        Some(j) => Some((
            serde_json::from_str(j)
                .map_err(|e| Error::data(path, format!("unreadable resume metadata: {e}")))?,
            optimizer,
        )),
        None => None,
    };
    Ok(Checkpoint {
        meta,
        params,
        resume,
    })
}

impl Checkpoint {
    /// The parameter tensor called `name`, or an error naming it.
    pub fn tensor(&self, name: &str) -> Result<&HostTensor> {
        self.params
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::Config(format!("checkpoint lacks tensor '{name}'")))
    }

    /// Checks that the tensors are exactly the architecture's, in number
    /// and shape (by building the model on the CPU), for a reader of the
    /// tensors that does not build one (export).
    pub fn check_tensors(&self) -> Result<()> {
        self.model(&crate::device::CpuDevice::new()).map(drop)
    }

    /// The model on `dev` with this checkpoint's weights.
    pub fn model<D: Device + 'static>(&self, dev: &D) -> Result<Model<D>> {
        // The architecture must account for the tensors exactly before
        // anything is allocated for it: metadata never sizes memory alone.
        let expected = self.meta.model.state_count()?;
        let held: usize = self.params.iter().map(|t| t.values.len()).sum();
        if expected != held {
            return Err(Error::Config(format!(
                "the checkpoint's architecture has {expected} parameters, its tensors hold {held}"
            )));
        }
        // A variance read from a file must be one: a negative or NaN one
        // would make every prediction NaN without a word.
        if let Some(t) = self.params.iter().find(|t| {
            t.name.ends_with(".running_var")
                && t.values.iter().any(|v| !(*v >= 0.0 && v.is_finite()))
        }) {
            return Err(Error::Config(format!(
                "checkpoint tensor '{}' holds a negative or non-finite variance",
                t.name
            )));
        }
        let mut model = Model::new(dev, &self.meta.model, 0)?;
        restore(dev, &mut model, &self.params)?;
        Ok(model)
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Config(format!("checkpoint metadata: {e}")))
}
