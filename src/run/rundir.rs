//! A run's directory: never shared, never silently overwritten, and locked
//! for as long as a run writes to it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The files a run leaves; `--overwrite` replaces these, and only these.
pub const RUN_FILES: [&str; 7] = [
    "model.safetensors",
    "last.safetensors",
    "config.toml",
    "metrics.csv",
    "loss.svg",
    "metric.svg",
    "summary.json",
];

/// The lock file inside a run directory; it holds the locking process's id.
const LOCK: &str = ".wgtrain.lock";

/// Where `--overwrite` keeps the previous run's files until the new run
/// has saved a completed epoch ([`RunDir::replace_previous`]). The files
/// move in through [`MOVING`] and back out through [`RESTORING`], so that
/// whichever of the three folders a crash leaves says what to finish
/// ([`restore_previous`]).
const PREVIOUS: &str = ".wgtrain-previous";
/// The previous run's files while they are being moved aside.
const MOVING: &str = ".wgtrain-previous.moving";
/// The previous run's files while they are being put back.
const RESTORING: &str = ".wgtrain-previous.restoring";

/// A run directory held by this process: an advisory lock on its lock file
/// lasts until the value is dropped, so a second run on the same directory
/// fails with a message naming the holder. A run that was to replace
/// another (`overwrite`) and ends before [`RunDir::replace_previous`] gives
/// the previous run back when the value is dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    _lock: File,
}

impl RunDir {
    /// A new run directory at `path`. With `unique` (a default name), a
    /// taken name gets a suffix (`-2`, `-3`, …) instead. An existing
    /// directory is refused unless it is empty or `overwrite` is set, which
    /// moves the previous run's files aside: [`RunDir::replace_previous`]
    /// deletes them, and otherwise they come back when the value is dropped
    /// (or, after a crash, when the directory is next locked).
    pub fn create(path: &Path, unique: bool, overwrite: bool) -> Result<RunDir> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Some(file) = parent.ancestors().find(|a| a.is_file()) {
                return Err(Error::data(file, "is a file, not a directory"));
            }
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut candidate = path.to_path_buf();
        for n in 2.. {
            match std::fs::create_dir(&candidate) {
                Ok(()) => return RunDir::lock(candidate),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && unique && n < 1000 => {
                    candidate = PathBuf::from(format!("{}-{n}", path.display()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => break,
                Err(e) => return Err(Error::io(&candidate, e)),
            }
        }
        if !candidate.is_dir() {
            return Err(Error::data(&candidate, "exists and is not a directory"));
        }
        let dir = RunDir::lock(candidate)?;
        let previous: Vec<&str> = RUN_FILES
            .into_iter()
            .filter(|f| dir.path.join(f).exists())
            .collect();
        if !previous.is_empty() {
            if !overwrite {
                return Err(Error::data(
                    &dir.path,
                    format!(
                        "already holds a run ({}): continue it with --resume, replace it with --overwrite, or choose another --out",
                        previous.join(", ")
                    ),
                ));
            }
            let moving = dir.path.join(MOVING);
            std::fs::create_dir(&moving).map_err(|e| Error::io(&moving, e))?;
            for f in previous {
                let p = dir.path.join(f);
                // On failure, dropping `dir` puts back what has moved.
                std::fs::rename(&p, moving.join(f)).map_err(|e| Error::io(&p, e))?;
            }
            let aside = dir.path.join(PREVIOUS);
            std::fs::rename(&moving, &aside).map_err(|e| Error::io(&aside, e))?;
        }
        Ok(dir)
    }

    /// Whether a previous run's files are held aside, to be replaced by
    /// this run or put back.
    pub fn holds_previous(&self) -> bool {
        self.path.join(PREVIOUS).is_dir()
    }

    /// This run now replaces the one `create` moved aside, whose files are
    /// deleted. Call it once the new run has saved something worth more
    /// than the old (a completed epoch); nothing happens without one.
    pub fn replace_previous(&self) -> Result<()> {
        let aside = self.path.join(PREVIOUS);
        if aside.is_dir() {
            std::fs::remove_dir_all(&aside).map_err(|e| Error::io(&aside, e))?;
        }
        Ok(())
    }

    /// An existing run directory, to resume the run in it.
    pub fn resume(path: &Path) -> Result<RunDir> {
        if !path.is_dir() {
            return Err(Error::data(path, "no such run directory"));
        }
        RunDir::lock(path.to_path_buf())
    }

    /// Where the run's files go.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(path: PathBuf) -> Result<RunDir> {
        let lock_path = path.join(LOCK);
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = f.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    format!("process {holder}")
                };
                return Err(Error::data(
                    &path,
                    format!("is in use by another wgtrain run ({who}, lock {LOCK})"),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        // A run that died while replacing another (a second Ctrl-C, a
        // crash) leaves the previous run aside: it comes back.
        restore_previous(&path).map_err(|e| Error::io(path.join(PREVIOUS), e))?;
        // Who holds it, for the message a second run prints.
        let _ = f
            .set_len(0)
            .and_then(|_| f.rewind())
            .and_then(|_| write!(f, "{}", std::process::id()))
            .and_then(|_| f.flush());
        Ok(RunDir { path, _lock: f })
    }
}

/// Whether `path` names one of a run's files ([`RUN_FILES`]) inside a run
/// directory (one that holds a run's lock file): a command's output must
/// not replace it.
pub fn is_run_file(path: &Path) -> bool {
    let dir = super::checkpoint::parent_dir(path);
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| RUN_FILES.contains(&n));
    named && dir.join(LOCK).is_file()
}

impl Drop for RunDir {
    fn drop(&mut self) {
        // Best effort: what a failure leaves aside, the next run to lock
        // the directory puts back.
        let _ = restore_previous(&self.path);
    }
}

/// Puts back a previous run that an `--overwrite` moved aside and did not
/// replace, whichever step it was at: files still moving aside ([`MOVING`],
/// beside the old files not moved yet), aside while the new run wrote its
/// own ([`PREVIOUS`]: those go first), or half put back ([`RESTORING`]).
fn restore_previous(dir: &Path) -> std::io::Result<()> {
    let (moving, aside, restoring) = (dir.join(MOVING), dir.join(PREVIOUS), dir.join(RESTORING));
    if aside.is_dir() {
        for f in RUN_FILES {
            if dir.join(f).exists() {
                std::fs::remove_file(dir.join(f))?;
            }
        }
        std::fs::rename(&aside, &restoring)?;
    } else if moving.is_dir() {
        std::fs::rename(&moving, &restoring)?;
    }
    if restoring.is_dir() {
        for f in RUN_FILES {
            if restoring.join(f).exists() {
                std::fs::rename(restoring.join(f), dir.join(f))?;
            }
        }
        std::fs::remove_dir(&restoring)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_collide_and_runs_are_never_shared() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("runs/mlp-1");
        let a = RunDir::create(&base, true, false).unwrap();
        let b = RunDir::create(&base, true, false).unwrap();
        assert_eq!(a.path(), base);
        assert_eq!(b.path(), tmp.path().join("runs/mlp-1-2"));
        // The same directory while it is held: refused, naming the holder.
        let e = RunDir::resume(&base).unwrap_err().to_string();
        assert!(
            e.contains("in use") && e.contains(&std::process::id().to_string()),
            "{e}"
        );
        drop(a);
        std::fs::write(base.join("model.safetensors"), b"x").unwrap();
        let e = RunDir::create(&base, false, false).unwrap_err().to_string();
        assert!(e.contains("already holds a run (model.safetensors)"), "{e}");
        let c = RunDir::create(&base, false, true).unwrap();
        assert!(!c.path().join("model.safetensors").exists() && c.holds_previous());
        // Replaced only when the new run says so: otherwise the previous
        // run comes back when the new one ends, whatever it wrote.
        std::fs::write(base.join("config.toml"), b"new").unwrap();
        std::fs::write(base.join("last.safetensors"), b"new").unwrap();
        drop(c);
        assert_eq!(std::fs::read(base.join("model.safetensors")).unwrap(), b"x");
        assert!(!base.join("config.toml").exists() && !base.join("last.safetensors").exists());
        let c = RunDir::create(&base, false, true).unwrap();
        std::fs::write(base.join("last.safetensors"), b"new").unwrap();
        c.replace_previous().unwrap();
        drop(c);
        assert!(!base.join("model.safetensors").exists());
        assert_eq!(
            std::fs::read(base.join("last.safetensors")).unwrap(),
            b"new"
        );
        for aside in [PREVIOUS, MOVING, RESTORING] {
            assert!(!base.join(aside).exists());
        }
        // What a crash leaves at each step comes back at the next lock: a
        // move cut short (one old file aside, one still in place) ...
        std::fs::create_dir(base.join(MOVING)).unwrap();
        std::fs::rename(
            base.join("last.safetensors"),
            base.join(MOVING).join("last.safetensors"),
        )
        .unwrap();
        std::fs::write(base.join("config.toml"), b"old").unwrap();
        drop(RunDir::resume(&base).unwrap());
        assert_eq!(
            std::fs::read(base.join("last.safetensors")).unwrap(),
            b"new"
        );
        assert_eq!(std::fs::read(base.join("config.toml")).unwrap(), b"old");
        // ... and a restore cut short (one file back, one still aside).
        std::fs::create_dir(base.join(RESTORING)).unwrap();
        std::fs::rename(
            base.join("config.toml"),
            base.join(RESTORING).join("config.toml"),
        )
        .unwrap();
        drop(RunDir::resume(&base).unwrap());
        assert_eq!(std::fs::read(base.join("config.toml")).unwrap(), b"old");
        assert_eq!(
            std::fs::read(base.join("last.safetensors")).unwrap(),
            b"new"
        );
        assert!(!base.join(RESTORING).exists());
        std::fs::write(tmp.path().join("file"), b"x").unwrap();
        assert!(RunDir::create(&tmp.path().join("file"), false, false).is_err());
    }
}
