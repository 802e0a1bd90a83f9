//! The `wgtrain` command. Each subcommand lives in its own module under
//! src/cli/; this file only parses arguments and turns errors into a
//! one-line message and a non-zero exit.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    // Mesa's Vulkan loader prints "error: XDG_RUNTIME_DIR is invalid or not
    // set" when it is unset, which reads as wgtrain failing: give it a
    // private directory for this process instead.
    let runtime_dir = private_runtime_dir();
    let result = cli::run(args);
    drop(runtime_dir);
    if let Err(e) = result {
        if let Some(i) = e.downcast_ref::<cli::Interrupted>() {
            eprintln!("{i}");
            std::process::exit(130);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Sets `XDG_RUNTIME_DIR` to a fresh private directory when it is unset or
/// not a directory (Linux); the directory is removed with the value.
fn private_runtime_dir() -> Option<tempfile::TempDir> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let usable =
        std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
    if usable {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("wgtrain-run-")
        .tempdir()
        .ok()?;
    // Before any thread starts: nothing else reads the environment yet.
    std::env::set_var("XDG_RUNTIME_DIR", dir.path());
    Some(dir)
}
