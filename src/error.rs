//! The crate's error type. Every failure a user can cause surfaces as one of
//! these variants, whose `Display` is a single line fit for a CLI message.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Operands whose shapes do not fit the operation.
    #[error("shape mismatch in {op}: {detail}")]
    Shape { op: &'static str, detail: String },

    /// No wgpu adapter matched the request (or none exists at all).
    #[error("no GPU adapter found{0}; install a Vulkan/Metal/DX12 driver (on Linux without a GPU: apt-get install mesa-vulkan-drivers) or use --device cpu")]
    NoAdapter(String),

    /// A buffer would exceed one of the adapter's limits.
    #[error("{what} needs {} MiB, over the {limit_name} of {} MiB; use a smaller batch or model, or --device cpu", bytes.div_ceil(1 << 20), limit >> 20)]
    TooLarge {
        what: String,
        bytes: u64,
        limit_name: &'static str,
        limit: u64,
    },

    /// A dispatch would need more workgroups than the adapter allows.
    #[error("{what} needs {groups} workgroups, over the adapter's limit of {limit} per dimension")]
    TooManyWorkgroups {
        what: String,
        groups: u64,
        limit: u64,
    },

    /// An error reported by wgpu itself (device lost, validation, mapping).
    #[error("GPU error: {0}")]
    Gpu(String),

    /// Bad input data: the file and what is wrong with it.
    #[error("{}: {msg}", path.display())]
    Data { path: PathBuf, msg: String },

    /// An invalid setting (hyper-parameter, model configuration).
    #[error("{0}")]
    Config(String),

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Shape {
            op,
            detail: detail.into(),
        }
    }

    pub fn data(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            msg: msg.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
