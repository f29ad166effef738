use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    clari_mcp::init_crypto();
    let cli = clari_mcp::cli::Cli::parse();
    match clari_mcp::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
