//! Tandem's HTTP/WebSocket API and class state.
//!
//! [`start`] brings up a whole server: the media plane on one UDP port and the HTTP/WebSocket API.

pub mod class;
pub mod classboard;
pub mod config;
pub mod http;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod netcheck;
pub mod process;
pub mod protocol;
pub mod reports;
pub mod serve;
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
    /// How many connections the open-file limit leaves room for.
    pub max_connections: usize,
    /// Connections open now (HTTP and WebSocket).
    open_connections: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
    /// The tasks that end at shutdown and are waited for: the redirect's accept loop and the
    /// router-events task (which holds the hub until the media plane stops).
    others: Vec<tokio::task::JoinHandle<()>>,
}

/// How long a shutdown waits for connections to say goodbye before closing the records anyway
/// (the whole shutdown stays within 5 s).
const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(3);

impl Server {
    /// Serve until the accept loop ends (at shutdown; see [`Server::shutdown`]) or the media
    /// plane stops; the latter is an error, so the binary exits non-zero and a service manager
    /// restarts it rather than leaving a server without media running.
    pub async fn wait(self) -> anyhow::Result<()> {
        let sfu = self.hub.sfu.clone();
        tokio::select! {
            result = self.task => result.context("server task"),
            why = sfu.stopped() => Err(anyhow::anyhow!("the media plane stopped ({why})")),
        }
    }

    /// Connections open now (HTTP and WebSocket).
    pub fn open_connections(&self) -> usize {
        self.open_connections
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Shut down gracefully: stop accepting, tell every WebSocket client the server is going away
    /// (`server_going_away`, then close code 1001), let HTTP requests in flight finish, then
    /// close the attendance of everyone still in a class and flush the database. Last, every
    /// task of the server ends and its sockets close ([`Server::stop`]).
    pub async fn shutdown(self) -> anyhow::Result<()> {
        tracing::info!("shutting down");
        self.hub.begin_shutdown();
        let deadline = tokio::time::Instant::now() + SHUTDOWN_DRAIN;
        while self.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let left = self.open_connections();
        if left > 0 {
            tracing::warn!(connections = left, "connections still open at shutdown");
        }
        let hub = Arc::clone(&self.hub);
        tokio::task::spawn_blocking(move || hub.finish_shutdown())
            .await
            .context("closing the records")??;
        self.stop().await;
        Ok(())
    }

    /// Stop at once, leaving the records as a crash would (attendance open, no last note that
    /// the server was alive) for tests of what the next start recovers. Connections are told to
    /// close all the same, and every task and socket ends as in [`Server::shutdown`].
    pub async fn abort(self) {
        self.hub.begin_shutdown();
        self.stop().await;
    }

    /// The end of both ways to stop, once shutdown has begun: the accept loops end (their
    /// listeners close), the media loop stops (its UDP socket and ICE-TCP listener close), and
    /// with it the router-events task, the last holder of the hub besides connections.
    async fn stop(self) {
        let Server {
            hub,
            mut task,
            others,
            ..
        } = self;
        // The accept loop ends by itself on the shutdown signal; the abort is a backstop.
        if tokio::time::timeout(SHUTDOWN_DRAIN, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        let why = hub.sfu.stop().await;
        tracing::debug!(%why, "media plane stopped");
        for task in others {
            if tokio::time::timeout(SHUTDOWN_DRAIN, task).await.is_err() {
                tracing::warn!("a server task did not end at shutdown");
            }
        }
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
    let store = store::Store::open_with(&config.data_dir.join("tandem.db"), config.db_write_queue)
        .context("opening the database")?;
    let tokens = token::TokenKey::new(&load_secret(&config)?);
    turn::validate(&config)?;
    let tls = tls::Tls::from_config(&config).context("setting up HTTPS")?;

    let sfu_metrics = Arc::new(SfuMetrics::default());
    let mut router_config = RouterConfig::new(config.media_listen);
    router_config.public_ip = config.public_ip;
    router_config.keyframe_request_interval =
        std::time::Duration::from_millis(config.keyframe_interval_ms);
    router_config.nack_buffer_packets = config.nack_buffer_packets;
    router_config.consent_timeout = std::time::Duration::from_secs(config.consent_timeout_secs);
    router_config.slot_hold = std::time::Duration::from_secs(config.slot_hold_secs);
    router_config
        .validate()
        .context("invalid media-plane settings")?;
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

    let max_connections = serve::raise_open_file_limit();
    tracing::info!(
        max_connections,
        per_ip = config.max_connections_per_ip,
        "open-file limit raised: room for this many connections"
    );
    if config.creation_open_to_others() {
        tracing::warn!(
            listen = %config.listen,
            "LISTENING BEYOND THIS MACHINE WITHOUT --create-key: anyone who reaches this address can start classes. \
             Set --create-key (TANDEM_CREATE_KEY) on a server others can reach."
        );
    }
    let limits = serve::ServeLimits::new(&config, max_connections);
    let open_connections = Arc::clone(&limits.open);

    let hub = Arc::new(hub::Hub::new(config, store, tokens, sfu));
    hub.close_attendance_after_crash()
        .context("closing attendance left open by the last run")?;
    let mut others = vec![hub.spawn_router_events(events)];
    hub.spawn_poll_timer();
    hub.spawn_housekeeping();
    let metrics = metrics::Metrics::new(&sfu_metrics).with_database(hub.store.writer().clone());
    let state = http::AppState::new(hub.clone(), Arc::new(metrics));
    let app = http::routes(state);
    let mut redirect_addr = None;
    let tls_fingerprint = tls.as_ref().map(tls::Tls::fingerprint);
    if let Some(tls) = &tls {
        tls.reload_on_sighup(hub.shutdown_signal())
            .context("listening for SIGHUP")?;
        if let Some(addr) = hub.config.http_redirect_listen {
            let redirect = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            redirect_addr = Some(redirect.local_addr()?);
            others.push(tokio::spawn(serve::accept(
                redirect,
                tls::redirect_app(tls::https_base(http_addr)),
                limits.clone(),
                hub.shutdown_signal(),
                None,
            )));
        }
    }
    let task = tokio::spawn(serve::accept(
        listener,
        app,
        limits,
        hub.shutdown_signal(),
        tls,
    ));
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
        max_connections,
        open_connections,
        task,
        others,
    })
}
