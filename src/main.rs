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
        "TANDEM_READY http={}://{} media={}",
        server.scheme, server.http_addr, server.media_addr
    );
    if let Some(fingerprint) = &server.tls_fingerprint {
        // What a teacher compares with the browser's certificate viewer (self-signed on a LAN).
        println!("TANDEM_TLS sha256={fingerprint}");
    }
    tracing::info!(http = %server.http_addr, media = %server.media_addr, scheme = server.scheme, redirect = ?server.redirect_addr, "tandem is serving");
    // SIGTERM (systemd, docker, kubernetes) and Ctrl-C both shut down gracefully.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let sfu = server.hub.sfu.clone();
    let media_stopped = tokio::select! {
        _ = terminate.recv() => { tracing::info!("SIGTERM"); None }
        _ = tokio::signal::ctrl_c() => { tracing::info!("interrupted"); None }
        why = sfu.stopped() => Some(why),
    };
    server.shutdown().await?;
    if let Some(why) = media_stopped {
        // A server without media must not look alive: exit non-zero so the service manager
        // restarts it.
        anyhow::bail!("the media plane stopped ({why})");
    }
    tracing::info!("stopped");
    Ok(())
}
