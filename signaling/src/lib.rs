//! Tandem's HTTP/WebSocket API and class state.
//!
//! [`start`] brings up a whole server: the media plane on one UDP port and the HTTP/WebSocket API.

pub mod class;
pub mod classboard;
pub mod config;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod process;
pub mod protocol;
pub mod store;
pub mod token;
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
    pub hub: Arc<hub::Hub>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Serve until the HTTP task ends (it does not, unless the listener fails) or the media plane
    /// stops; the latter is an error, so the binary exits non-zero and a service manager restarts
    /// it rather than leaving a server without media running.
    pub async fn wait(self) -> anyhow::Result<()> {
        let sfu = self.hub.sfu.clone();
        tokio::select! {
            result = self.task => result.context("server task"),
            why = sfu.stopped() => Err(anyhow::anyhow!("the media plane stopped ({why})")),
        }
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

    let sfu_metrics = Arc::new(SfuMetrics::default());
    let mut router_config = RouterConfig::new(config.media_listen);
    router_config.public_ip = config.public_ip;
    router_config.keyframe_request_interval =
        std::time::Duration::from_millis(config.keyframe_interval_ms);
    router_config.nack_buffer_packets = config.nack_buffer_packets;
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
    let task = tokio::spawn(async move {
        // TCP_NODELAY: a board op or a vote is one small frame; Nagle would hold it back for
        // the peer's delayed ACK (tens of ms).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(%err, "HTTP server stopped");
        }
    });
    Ok(Server {
        http_addr,
        media_addr,
        hub,
        task,
    })
}
