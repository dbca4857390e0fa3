//! `refresh`: parses the command line, runs the command, maps the outcome to an exit code
//! (0 success, 2 usage, 3 refused, 4 the refresh failed, 5 cannot reach AWS).

use anyhow::Context as _;
use clap::Parser;
use refresh_cli::cli::{one_line_usage_error, Cli};
use refresh_cli::error::{CliError, EXIT_USAGE};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            return match err.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = err.print();
                    ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(EXIT_USAGE))
                }
                _ => {
                    eprintln!("{}", one_line_usage_error(&err));
                    ExitCode::from(EXIT_USAGE)
                }
            };
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = err
                .downcast_ref::<CliError>()
                .map(CliError::exit_code)
                .unwrap_or(1);
            eprintln!("error: {err:#}");
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(runtime.block_on(refresh_cli::app::run(cli))?)
}
