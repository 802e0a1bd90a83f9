//! The IDX format of the MNIST release (plain or gzip-compressed): a
//! big-endian header (`0x00 0x00`, a type byte, a rank byte, one u32 per
//! dimension) and the data. wgtrain reads unsigned-byte IDX files (type 0x08).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::limits::{read_capped, MAX_FILE_BYTES};
use crate::error::{Error, Result};

/// A decoded IDX file.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    /// The dimensions from the header, outermost first (`[count, rows, cols]` for images).
    pub dims: Vec<usize>,
    /// The payload, row-major; its length is the product of `dims`.
    pub data: Vec<u8>,
}

/// Reads an IDX file, decompressing it first when it is gzip.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = read_capped(path, MAX_FILE_BYTES)?;
    parse_idx(&bytes, path)
}

/// Parses IDX bytes (gzip or not); `path` names the source in errors.
/// Compressed data is inflated only as far as the header says it should
/// go (plus one byte, to notice excess), never further.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    let plain;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        plain = inflate(bytes, path)?;
        &plain[..]
    } else {
        bytes
    };
    parse_plain(bytes, path)
}

/// Inflates gzip (several members are valid gzip, and read as one stream):
/// first the header, then exactly the payload it implies, capped at
/// [`MAX_FILE_BYTES`].
fn inflate(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    let err = |m: String| Error::data(path, m);
    let corrupt = |e: std::io::Error| err(format!("corrupt gzip data: {e}"));
    let mut z = flate2::read::MultiGzDecoder::new(bytes);
    let mut out = Vec::new();
    (&mut z).take(4).read_to_end(&mut out).map_err(corrupt)?;
    if out.len() < 4 {
        return Ok(out); // parse_plain says what is wrong
    }
    let rank = out[3] as u64;
    (&mut z)
        .take(4 * rank)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    let payload = out
        .get(4..)
        .unwrap_or_default()
        .chunks_exact(4)
        .try_fold(1u64, |a, d| {
            a.checked_mul(u32::from_be_bytes(d.try_into().expect("4 bytes")) as u64)
        })
        .filter(|&n| n <= MAX_FILE_BYTES)
        .ok_or_else(|| {
            err(format!(
                "IDX dimensions imply more than the limit of {} MiB",
                MAX_FILE_BYTES >> 20
            ))
        })?;
    z.take(payload + 1).read_to_end(&mut out).map_err(corrupt)?;
    Ok(out)
}

fn parse_plain(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    let err = |m: String| Error::data(path, m);
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(err(format!(
            "not an IDX file: wrong magic number {:02x?} (expected 00 00 08 <rank>)",
            &bytes[..bytes.len().min(4)]
        )));
    }
    if bytes[2] != 0x08 {
        return Err(err(format!(
            "IDX data type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
            bytes[2]
        )));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if rank == 0 || bytes.len() < header {
        return Err(err(format!("truncated IDX header (rank {rank})")));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let expected = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let payload = bytes.len() - header;
    match expected {
        Some(n) if n == payload => Ok(IdxArray {
            dims,
            data: bytes[header..].to_vec(),
        }),
        Some(n) if n > payload => Err(err(format!(
            "truncated: dimensions {dims:?} need {n} bytes of data, the file has {payload}"
        ))),
        _ => Err(err(format!(
            "dimensions {dims:?} do not match the {payload} bytes of data"
        ))),
    }
}

/// Image and label files found in a directory, by set name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IdxFiles {
    /// `(images, labels)` paths of the training set.
    pub train: Option<(PathBuf, PathBuf)>,
    /// `(images, labels)` paths of the test set (`t10k` or `test`), if present.
    pub test: Option<(PathBuf, PathBuf)>,
}

/// Finds `<prefix>-images-idx3-ubyte[.gz]` / `<prefix>-labels-idx1-ubyte[.gz]`
/// pairs in `dir`: prefix `train` (or any single other prefix) is the
/// training set, `t10k` or `test` the test set.
pub fn find_idx_files(dir: &Path) -> Result<IdxFiles> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut pairs: Vec<(String, Option<PathBuf>, Option<PathBuf>)> = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let stem = name.strip_suffix(".gz").unwrap_or(name);
        let (prefix, is_images) = if let Some(p) = stem.strip_suffix("-images-idx3-ubyte") {
            (p, true)
        } else if let Some(p) = stem.strip_suffix("-labels-idx1-ubyte") {
            (p, false)
        } else {
            continue;
        };
        let slot = match pairs.iter().position(|(p, _, _)| p == prefix) {
            Some(i) => i,
            None => {
                pairs.push((prefix.to_string(), None, None));
                pairs.len() - 1
            }
        };
        if is_images {
            pairs[slot].1 = Some(path.clone());
        } else {
            pairs[slot].2 = Some(path.clone());
        }
    }
    let mut files = IdxFiles::default();
    let others = pairs
        .iter()
        .filter(|(p, _, _)| p != "t10k" && p != "test")
        .count();
    for (prefix, images, labels) in pairs {
        let (Some(images), Some(labels)) = (images, labels) else {
            return Err(Error::data(
                dir,
                format!("'{prefix}' has an images or a labels IDX file but not both"),
            ));
        };
        if prefix == "t10k" || prefix == "test" {
            files.test = Some((images, labels));
        } else if prefix == "train" || others == 1 {
            files.train = Some((images, labels));
        }
    }
    if files.train.is_none() {
        return Err(Error::data(
            dir,
            "no training IDX files (expected train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz])",
        ));
    }
    Ok(files)
}
