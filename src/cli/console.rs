//! Standard output and error without panics. `println!` and `eprintln!`
//! panic when their stream cannot be written: a closed pipe (`wgtrain
//! train ... | head -1`) or a full disk (`> /dev/full`) would end a command
//! with a backtrace, and a training run with its model unsaved. Every line
//! the commands print goes through [`outln!`](crate::outln) or
//! [`errln!`](crate::errln) instead.
//!
//! The first failed write to stdout is kept and nothing more is written
//! there. [`out`] returns it, so a command whose output is the point stops
//! at once (`?`); work that must finish whatever happens to stdout prints
//! through [`out_lenient`] and goes on (training saves its run; `bench`,
//! `check` and `tune` reach their verdict). `main` then ends quietly (exit
//! 0) when the reader closed
//! the pipe, as `head` expects, and with one error line and exit 1 on any
//! other failure ([`check`]). Stderr is best effort: there is nowhere left
//! to report its failure.

use std::fmt;
use std::io::{ErrorKind, Write};
use std::sync::Mutex;

/// Stdout's reader closed the pipe: not an error for the user, who asked
/// for no more (`main` exits 0 without a message).
#[derive(Debug)]
pub struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// The first failed write to stdout, if any.
static FAILED: Mutex<Option<(ErrorKind, String)>> = Mutex::new(None);

fn failure() -> Option<anyhow::Error> {
    let failed = FAILED.lock().unwrap_or_else(|p| p.into_inner());
    failed.as_ref().map(|(kind, message)| match kind {
        ErrorKind::BrokenPipe => anyhow::Error::new(StdoutClosed),
        _ => anyhow::anyhow!("writing to standard output: {message}"),
    })
}

/// Writes `args` to stdout and flushes it (a line reaches a pipe when it is
/// printed). Fails, and writes nothing, once any write has failed.
pub fn out(args: fmt::Arguments) -> anyhow::Result<()> {
    if let Some(e) = failure() {
        return Err(e);
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) => {
            *FAILED.lock().unwrap_or_else(|p| p.into_inner()) = Some((e.kind(), e.to_string()));
            Err(failure().expect("just recorded"))
        }
    }
}

/// [`out`] for output that is a by-product of work that must go on (a
/// training run's epoch lines): a failure is kept for [`check`].
pub fn out_lenient(args: fmt::Arguments) {
    let _ = out(args);
}

/// Writes `args` to stderr, ignoring failure.
pub fn err(args: fmt::Arguments) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// After a command that succeeded: the failure of a write to stdout it made
/// leniently, if any ([`StdoutClosed`] for a closed pipe).
pub fn check() -> anyhow::Result<()> {
    failure().map_or(Ok(()), Err)
}

/// `println!` through [`out`]: evaluates to `anyhow::Result<()>`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::console::out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` through [`err`]: never panics, never fails.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::console::err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through [`out`]: evaluates to `anyhow::Result<()>`.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::console::out(format_args!($($arg)*))
    };
}

/// `eprint!` through [`err`]: never panics, never fails.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::cli::console::err(format_args!($($arg)*))
    };
}

/// `println!` through [`out_lenient`], for output beside work that must
/// finish whatever happens to stdout (a benchmark's or a check's verdict,
/// the tuner's cache).
#[macro_export]
macro_rules! outln_lenient {
    ($($arg:tt)*) => {
        $crate::cli::console::out_lenient(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through [`out_lenient`].
#[macro_export]
macro_rules! out_lenient {
    ($($arg:tt)*) => {
        $crate::cli::console::out_lenient(format_args!($($arg)*))
    };
}
