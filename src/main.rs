use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    clari_mcp::init_crypto();
    let cli = clari_mcp::cli::Cli::parse();
    let result = clari_mcp::cli::run(cli).await;
    // Spans still buffered go out before the process ends.
    tokio::task::spawn_blocking(clari_mcp::telemetry::shutdown)
        .await
        .ok();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
