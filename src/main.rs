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
    tokio::select! {
        result = server.wait() => result,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}
