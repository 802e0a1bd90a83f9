//! The `wgtrain` command. Each subcommand lives in its own module under
//! src/cli/; this file only parses arguments and turns errors into a
//! one-line message and a non-zero exit.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
