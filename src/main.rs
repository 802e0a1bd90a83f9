// Every line goes through src/cli/console.rs (`outln!`, `errln!`), which
// cannot panic on a closed pipe or a full disk as `println!` does.
#![warn(clippy::print_stdout, clippy::print_stderr)]
//! The `wgtrain` command. Each subcommand lives in its own module under
//! src/cli/; this file only parses arguments and turns errors into a
//! one-line message and a non-zero exit.

mod cli;

use clap::Parser;

/// mimalloc instead of the system allocator. The CPU device allocates each
/// op's output afresh, and glibc's malloc hands blocks of a few hundred KB
/// and up back to the kernel on free (unmapping them, or trimming the heap),
/// so every step page-faulted its activations in again: T5 on the CPU read
/// 8,732, 9,005, 7,680 and 8,099 samples/s with glibc's malloc and 13,360,
/// 12,148, 13,937 and 12,440 with mimalloc (`wgtrain bench --device cpu
/// --workloads T5`, alternating, 2-core Xeon VM). A program using the
/// library gains the same by declaring it as its own global allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = cli::Cli::parse();
    // Mesa's Vulkan loader prints "error: XDG_RUNTIME_DIR is invalid or not
    // set" when it is unset, which reads as wgtrain failing: give it a
    // private directory for this process instead.
    let runtime_dir = private_runtime_dir();
    let result = cli::run(args).and_then(|()| cli::console::check());
    drop(runtime_dir);
    if let Err(e) = result {
        if let Some(i) = e.downcast_ref::<cli::Interrupted>() {
            errln!("{i}");
            std::process::exit(130);
        }
        // A reader that closed the pipe (`wgtrain ... | head`) asked for no more.
        if e.is::<cli::console::StdoutClosed>() {
            return;
        }
        errln!("error: {e:#}");
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
