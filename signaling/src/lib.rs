//! Tandem's HTTP/WebSocket API and class state.
//!
//! [`start`] brings up a whole server: the media plane on one UDP port and the HTTP/WebSocket API.

pub mod class;
pub mod classboard;
pub mod config;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod netcheck;
pub mod process;
pub mod protocol;
pub mod store;
pub mod tls;
pub mod token;
pub mod turn;
pub mod web;
pub mod whip;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use rand::RngCore;
use tandem_sfu::RouterConfig;
use tandem_sfu::metrics::SfuMetrics;

pub use config::Config;

/// A running server.
pub struct Server {
    pub http_addr: SocketAddr,
    pub media_addr: SocketAddr,
    /// `https` with TLS on, else `http`.
    pub scheme: &'static str,
    /// SHA-256 of the HTTPS certificate (`AB:CD:…`), with TLS on.
    pub tls_fingerprint: Option<String>,
    /// The plain-HTTP address that redirects to HTTPS, if any.
    pub redirect_addr: Option<SocketAddr>,
    pub hub: Arc<hub::Hub>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Serve until the task ends (it does not, unless the listener fails).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task")
    }

    /// Stop serving HTTP (tests that simulate a crash).
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Read the token secret from the data folder, creating it on the first start.
fn load_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    let path = config.data_dir.join("secret.key");
    if let Ok(secret) = std::fs::read(&path)
        && secret.len() >= 32
    {
        return Ok(secret);
    }
    let mut secret = vec![0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    std::fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(secret)
}

pub async fn start(config: Config) -> anyhow::Result<Server> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let store =
        store::Store::open(&config.data_dir.join("tandem.db")).context("opening the database")?;
    let tokens = token::TokenKey::new(&load_secret(&config)?);
    turn::validate(&config)?;
    let tls = tls::Tls::from_config(&config).context("setting up HTTPS")?;

    let sfu_metrics = Arc::new(SfuMetrics::default());
    let mut router_config = RouterConfig::new(config.media_listen);
    router_config.public_ip = config.public_ip;
    router_config.keyframe_request_interval =
        std::time::Duration::from_millis(config.keyframe_interval_ms);
    router_config.nack_buffer_packets = config.nack_buffer_packets;
    router_config.ice_tcp = config.ice_tcp;
    router_config.media_udp = config.media_udp;
    router_config.tcp = tandem_sfu::tcp::TcpLimits {
        max_connections: config.ice_tcp_max_connections,
        max_queued_bytes: config.ice_tcp_max_queued_bytes,
        idle_timeout: std::time::Duration::from_secs(config.ice_tcp_idle_secs),
    };
    let (sfu, events) = tandem_sfu::driver::start(router_config, sfu_metrics.clone())
        .await
        .with_context(|| format!("binding media port {}", config.media_listen))?;
    let media_addr = sfu.media_addr();

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let http_addr = listener.local_addr()?;

    let hub = Arc::new(hub::Hub::new(config, store, tokens, sfu));
    hub.spawn_router_events(events);
    hub.spawn_poll_timer();
    let state = http::AppState {
        hub: hub.clone(),
        metrics: Arc::new(metrics::Metrics::new(&sfu_metrics)),
        sessions: Arc::default(),
    };
    let app = http::routes(state);
    let mut redirect_addr = None;
    let tls_fingerprint = tls.as_ref().map(tls::Tls::fingerprint);
    let task = match tls {
        Some(tls) => {
            tls.reload_on_sighup().context("listening for SIGHUP")?;
            if let Some(addr) = hub.config.http_redirect_listen {
                let redirect = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                redirect_addr = Some(redirect.local_addr()?);
                tokio::spawn(tls::serve_redirect(redirect, tls::https_base(http_addr)));
            }
            tokio::spawn(tls::serve(listener, app, tls))
        }
        None => tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(%err, "HTTP server stopped");
            }
        }),
    };
    Ok(Server {
        http_addr,
        media_addr,
        scheme: if tls_fingerprint.is_some() {
            "https"
        } else {
            "http"
        },
        tls_fingerprint,
        redirect_addr,
        hub,
        task,
    })
}
