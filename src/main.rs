//! The `accesskeyd` command: parses the command line and hands over to `cli`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = accesskeyd::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("accesskeyd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(accesskeyd::cli::run(cli))
}
