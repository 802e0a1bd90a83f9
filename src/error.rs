//! The crate's error type. Every failure a user can cause surfaces as one of
//! these variants, whose `Display` is a single line fit for a CLI message.

use std::path::PathBuf;

/// The crate's result type, with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in wgtrain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Operands whose shapes do not fit the operation.
    #[error("shape mismatch in {op}: {detail}")]
    Shape {
        /// The operation's name, e.g. `matmul`.
        op: &'static str,
        /// The offending shapes or values.
        detail: String,
    },

    /// No wgpu adapter matched the request (or none exists at all).
    #[error("no GPU adapter found{0}; install a Vulkan/Metal/DX12 driver (on Linux without a GPU: apt-get install mesa-vulkan-drivers) or use --device cpu")]
    NoAdapter(String),

    /// A buffer would exceed one of the adapter's limits.
    #[error("{what} needs {} MiB, over the {limit_name} of {} MiB; use a smaller batch or model, or --device cpu", bytes.div_ceil(1 << 20), limit >> 20)]
    TooLarge {
        /// What the buffer would hold, for the message.
        what: String,
        /// Size of the requested buffer, in bytes.
        bytes: u64,
        /// The limit exceeded, e.g. `adapter's max_buffer_size`.
        limit_name: &'static str,
        /// The limit's value, in bytes.
        limit: u64,
    },

    /// A dispatch would need more workgroups than the adapter allows.
    #[error("{what} needs {groups} workgroups, over the adapter's limit of {limit} per dimension")]
    TooManyWorkgroups {
        /// The operation being dispatched, for the message.
        what: String,
        /// The workgroup count that does not fit.
        groups: u64,
        /// The adapter's `max_compute_workgroups_per_dimension`.
        limit: u64,
    },

    /// An error reported by wgpu itself (device lost, validation, mapping).
    #[error("GPU error: {0}")]
    Gpu(String),

    /// Bad input data: the file and what is wrong with it.
    #[error("{}: {msg}", path.display())]
    Data {
        /// The file (or built-in dataset name) the data came from.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },

    /// An invalid setting (hyper-parameter, model configuration).
    #[error("{0}")]
    Config(String),

    /// A file or directory could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error. Its message is this error's (not a
        /// `source()` too, which would have reporters print it twice).
        error: std::io::Error,
    },
}

impl Error {
    /// A [`Error::Shape`] for operation `op`.
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Shape {
            op,
            detail: detail.into(),
        }
    }

    /// A [`Error::Data`] about the file at `path`.
    pub fn data(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// An [`Error::Io`] on `path`.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
}
