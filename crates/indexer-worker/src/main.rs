use clap::Parser;
use indexer_worker::config::{Cli, Secrets};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // JSON logs to stdout (the instance's console / CloudWatch agent picks them up).
    refresh_core::telemetry::init_json_logs();
    let cli = Cli::parse();
    let result = async {
        let secrets = Secrets::load().await?;
        indexer_worker::run(cli, secrets).await
    }
    .await;
    match result {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "worker failed");
            std::process::ExitCode::FAILURE
        }
    }
}
