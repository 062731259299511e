//! `tandem`: the one server binary.

use clap::Parser;
use tandem_signaling::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
                .unwrap_or_else(|_| "info,rtc=warn,rtc_ice=warn,rtc_dtls=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::parse();
    let server = tandem_signaling::start(config).await?;
    // One machine-readable line, so scripts and tests can find the (possibly ephemeral) ports.
    println!(
        "TANDEM_READY http=http://{} media={}",
        server.http_addr, server.media_addr
    );
    tracing::info!(http = %server.http_addr, media = %server.media_addr, "tandem is serving");
    // SIGTERM (systemd, docker, kubernetes) and Ctrl-C both shut down gracefully.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
    }
    server.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}
