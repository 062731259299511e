//! Server settings: every flag has an env fallback (`TANDEM_*`) and a documented default.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "tandem",
    version,
    about = "Tandem: a live classroom server for dual-teacher lessons"
)]
pub struct Config {
    /// HTTP and WebSocket address.
    #[arg(long, env = "TANDEM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The one UDP address all media uses.
    #[arg(long, env = "TANDEM_MEDIA_LISTEN", default_value = "127.0.0.1:8443")]
    pub media_listen: SocketAddr,
    /// Address announced in ICE candidates, for a server behind NAT.
    #[arg(long, env = "TANDEM_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,
    /// Base URL used in teacher and invite links (default: from the request's Host header).
    #[arg(long, env = "TANDEM_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Folder for the SQLite database and the token secret.
    #[arg(long, env = "TANDEM_DATA_DIR", default_value = "./tandem-data")]
    pub data_dir: PathBuf,
    /// How long teacher and invite links stay valid.
    #[arg(long, env = "TANDEM_TOKEN_TTL_HOURS", default_value_t = 12)]
    pub token_ttl_hours: u64,
    /// Longest class title or person/classroom name, in characters.
    #[arg(long, env = "TANDEM_MAX_NAME_LEN", default_value_t = 200)]
    pub max_name_len: usize,
    /// Largest WebSocket message answered with anything but `too_large`.
    #[arg(long, env = "TANDEM_WS_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub ws_max_message_bytes: usize,
    /// Sustained WebSocket messages per second per connection.
    #[arg(long, env = "TANDEM_WS_MAX_MESSAGES_PER_SEC", default_value_t = 50)]
    pub ws_max_messages_per_sec: u32,
    /// Burst of WebSocket messages allowed above the sustained rate.
    #[arg(long, env = "TANDEM_WS_BURST", default_value_t = 100)]
    pub ws_burst: u32,
    /// Messages queued to one slow client before it is disconnected (it may resume).
    #[arg(long, env = "TANDEM_WS_OUTBOX", default_value_t = 1024)]
    pub ws_outbox: usize,
    /// Seconds between server pings.
    #[arg(long, env = "TANDEM_HEARTBEAT_SECS", default_value_t = 10)]
    pub heartbeat_secs: u64,
    /// Seconds of silence after which a client is considered gone.
    #[arg(long, env = "TANDEM_HEARTBEAT_TIMEOUT_SECS", default_value_t = 30)]
    pub heartbeat_timeout_secs: u64,
    /// Seconds a dropped classroom keeps its place for a reconnect.
    #[arg(long, env = "TANDEM_RECONNECT_GRACE_SECS", default_value_t = 30)]
    pub reconnect_grace_secs: u64,
    /// Classrooms (including the master classroom) allowed in one class.
    #[arg(long, env = "TANDEM_MAX_CLASSROOMS_PER_CLASS", default_value_t = 50)]
    pub max_classrooms_per_class: usize,
    /// At most one keyframe request per track in this many milliseconds.
    #[arg(long, env = "TANDEM_KEYFRAME_INTERVAL_MS", default_value_t = 1000)]
    pub keyframe_interval_ms: u64,
    /// Packets kept per outgoing stream to answer NACKs (a power of two; anything else is refused).
    #[arg(long, env = "TANDEM_NACK_BUFFER_PACKETS", default_value_t = 512, value_parser = power_of_two)]
    pub nack_buffer_packets: u16,
    /// Seconds a media leg stays served without a consent check from its peer (RFC 7675: 30).
    #[arg(long, env = "TANDEM_CONSENT_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub consent_timeout_secs: u64,
    /// Seconds a classroom that joined again (a page reload) has to publish its sources again
    /// before its old tracks end for the others; meanwhile their downtracks wait, unrenegotiated.
    #[arg(long, env = "TANDEM_SLOT_HOLD_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub slot_hold_secs: u64,
    /// Pupils (vote-only devices from the pupil voting link) allowed in one class.
    #[arg(long, env = "TANDEM_MAX_PUPILS_PER_CLASS", default_value_t = 500)]
    pub max_pupils_per_class: usize,
    /// Points in one whiteboard stroke, the first included.
    #[arg(
        long,
        env = "TANDEM_BOARD_MAX_POINTS_PER_STROKE",
        default_value_t = 5000
    )]
    pub board_max_points_per_stroke: usize,
    /// Sustained whiteboard ops per second per classroom.
    #[arg(long, env = "TANDEM_BOARD_MAX_OPS_PER_SEC", default_value_t = 60)]
    pub board_max_ops_per_sec: u32,
    /// Whiteboard ops a classroom may send at once above the sustained rate.
    #[arg(long, env = "TANDEM_BOARD_BURST", default_value_t = 120)]
    pub board_burst: u32,
    /// Objects (strokes, shapes, texts) on one whiteboard page.
    #[arg(
        long,
        env = "TANDEM_BOARD_MAX_OBJECTS_PER_PAGE",
        default_value_t = 2000
    )]
    pub board_max_objects_per_page: usize,
    /// Whiteboard pages per class.
    #[arg(long, env = "TANDEM_BOARD_MAX_PAGES", default_value_t = 50)]
    pub board_max_pages: usize,
    /// Polls per class.
    #[arg(long, env = "TANDEM_POLL_MAX_PER_CLASS", default_value_t = 200)]
    pub poll_max_per_class: usize,
    /// Options of a single or multiple choice poll (at least 2).
    #[arg(long, env = "TANDEM_POLL_MAX_OPTIONS", default_value_t = 10, value_parser = at_least_two)]
    pub poll_max_options: usize,
    /// Characters in a poll's question.
    #[arg(long, env = "TANDEM_POLL_MAX_QUESTION_CHARS", default_value_t = 500)]
    pub poll_max_question_chars: usize,
    /// Characters in one poll option.
    #[arg(long, env = "TANDEM_POLL_MAX_OPTION_CHARS", default_value_t = 200)]
    pub poll_max_option_chars: usize,
    /// Longest poll timer, in seconds.
    #[arg(long, env = "TANDEM_POLL_MAX_TIMER_SECS", default_value_t = 3600)]
    pub poll_max_timer_secs: u32,
    /// Longest class title, in characters.
    #[arg(long, env = "TANDEM_MAX_TITLE_LEN", default_value_t = 200)]
    pub max_title_len: usize,
    /// Key a teacher must give to create a class (`X-Tandem-Create-Key` header); unset: anyone
    /// who reaches the server may create classes.
    #[arg(long, env = "TANDEM_CREATE_KEY", hide_env_values = true)]
    pub create_key: Option<String>,
    /// Classes one IP address may create per minute (a burst of as many, refilled evenly); 0 for
    /// no limit (a load test creating many classes).
    #[arg(long, env = "TANDEM_CREATE_PER_MINUTE", default_value_t = 30)]
    pub create_per_minute: u32,
    /// Seconds a WebSocket may stay open without joining a class.
    #[arg(long, env = "TANDEM_WS_JOIN_TIMEOUT_SECS", default_value_t = 10)]
    pub ws_join_timeout_secs: u64,
    /// WebSockets from one IP address that have not joined yet.
    #[arg(long, env = "TANDEM_WS_MAX_UNJOINED_PER_IP", default_value_t = 100)]
    pub ws_max_unjoined_per_ip: usize,
    /// Open TCP connections from one IP address (a school behind one NAT address counts once).
    #[arg(long, env = "TANDEM_MAX_CONNECTIONS_PER_IP", default_value_t = 1000)]
    pub max_connections_per_ip: usize,
    /// Seconds a client has to send a request's headers (also how long an idle keep-alive
    /// connection waits for its next request).
    #[arg(long, env = "TANDEM_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub http_header_timeout_secs: u64,
    /// Seconds an HTTP connection may go without sending or receiving a byte (a request body
    /// trickled in, a response never read).
    #[arg(long, env = "TANDEM_HTTP_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub http_idle_timeout_secs: u64,
    /// Minutes a class may have nobody in it before it ends by itself (fractions allowed).
    #[arg(long, env = "TANDEM_CLASS_IDLE_MINUTES", default_value_t = 120.0)]
    pub class_idle_minutes: f64,
    /// Days an ended class's records (attendance, board, polls) are kept; 0 keeps them for ever
    /// (fractions allowed).
    #[arg(long, env = "TANDEM_RETENTION_DAYS", default_value_t = 365.0)]
    pub retention_days: f64,
    /// Database writes (board ops, votes, records) that may wait for the writer thread; beyond
    /// it a writer waits for room (backpressure). At least 1.
    #[arg(long, env = "TANDEM_DB_WRITE_QUEUE", default_value_t = crate::store::DEFAULT_WRITE_QUEUE, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub db_write_queue: usize,
    /// ICE over TCP (RFC 6544) on the media port number, for networks that block UDP: on | off.
    #[arg(long, env = "TANDEM_ICE_TCP", default_value = "on", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub ice_tcp: bool,
    /// Offer media over UDP: on | off (off: only TCP and TURN, to test a network that blocks UDP).
    #[arg(long, env = "TANDEM_MEDIA_UDP", default_value = "on", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub media_udp: bool,
    /// ICE-TCP connections open at once; more are refused.
    #[arg(long, env = "TANDEM_ICE_TCP_MAX_CONNECTIONS", default_value_t = 1000)]
    pub ice_tcp_max_connections: usize,
    /// Bytes queued to one ICE-TCP connection; packets beyond are dropped.
    #[arg(long, env = "TANDEM_ICE_TCP_MAX_QUEUED_BYTES", default_value_t = 256 * 1024)]
    pub ice_tcp_max_queued_bytes: usize,
    /// Seconds an ICE-TCP connection may stay silent before it is closed.
    #[arg(long, env = "TANDEM_ICE_TCP_IDLE_SECS", default_value_t = 30)]
    pub ice_tcp_idle_secs: u64,
    /// HTTPS: the certificate chain (PEM), reloaded with the key on SIGHUP.
    #[arg(
        long,
        env = "TANDEM_TLS_CERT",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,
    /// HTTPS: the private key (PEM) of `--tls-cert`.
    #[arg(long, env = "TANDEM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// HTTPS with a certificate made for this server's names and addresses, kept in the data
    /// folder (a school LAN without a domain; browsers must be told to trust it).
    #[arg(long, env = "TANDEM_TLS_SELF_SIGNED")]
    pub tls_self_signed: bool,
    /// Extra DNS names or IP addresses for the `--tls-self-signed` certificate (comma separated).
    #[arg(long, env = "TANDEM_TLS_NAMES", value_delimiter = ',')]
    pub tls_names: Vec<String>,
    /// With HTTPS on: a plain-HTTP address that redirects every request to HTTPS.
    #[arg(long, env = "TANDEM_HTTP_REDIRECT_LISTEN")]
    pub http_redirect_listen: Option<SocketAddr>,
    /// TURN servers handed to clients, e.g. `turn:turn.example.org:3478?transport=udp` (repeat the
    /// flag, or comma separated in the env variable).
    #[arg(long = "turn-url", env = "TANDEM_TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Vec<String>,
    /// The TURN server's `static-auth-secret` (coturn `use-auth-secret`): clients get
    /// time-limited credentials made from it, never the secret.
    #[arg(long, env = "TANDEM_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// How long the TURN credentials minted for one join stay valid.
    #[arg(long, env = "TANDEM_TURN_CREDENTIAL_TTL_SECS", default_value_t = 12 * 3600)]
    pub turn_credential_ttl_secs: u64,
}

/// A count of poll options: a choice needs two.
fn at_least_two(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n >= 2 => Ok(n),
        Ok(n) => Err(format!("{n} is too few: a poll needs at least 2 options")),
        Err(err) => Err(format!("not a number: {err}")),
    }
}

/// A `u16` that is a power of two (the retransmission buffer indexes modulo its size).
fn power_of_two(value: &str) -> Result<u16, String> {
    let n: u16 = value
        .parse()
        .map_err(|err| format!("not a number from 1 to 32768: {err}"))?;
    if n.is_power_of_two() {
        Ok(n)
    } else {
        Err(format!(
            "{n} is not a power of two (the retransmission buffer needs one, e.g. 256, 512, 1024)"
        ))
    }
}

impl Config {
    /// Whether the pages and the API are served over HTTPS.
    pub fn https(&self) -> bool {
        self.tls_cert.is_some() || self.tls_self_signed
    }

    /// The whiteboard limits these settings name.
    pub fn board_limits(&self) -> crate::classboard::board::BoardLimits {
        crate::classboard::board::BoardLimits {
            max_points_per_stroke: self.board_max_points_per_stroke,
            max_ops_per_sec_per_client: self.board_max_ops_per_sec,
            burst_ops_per_client: self.board_burst,
            max_objects_per_page: self.board_max_objects_per_page,
            max_pages: self.board_max_pages,
            ..Default::default()
        }
    }

    /// The poll limits these settings name.
    pub fn poll_limits(&self) -> crate::classboard::poll::PollLimits {
        crate::classboard::poll::PollLimits {
            max_polls_per_class: self.poll_max_per_class,
            max_options: self.poll_max_options,
            max_question_chars: self.poll_max_question_chars,
            max_option_chars: self.poll_max_option_chars,
            max_timer_secs: self.poll_max_timer_secs,
            ..Default::default()
        }
    }

    /// Whether anyone beyond this machine could start classes: listening on a non-loopback
    /// address with no `--create-key`. The server warns loudly at start when so.
    pub fn creation_open_to_others(&self) -> bool {
        !self.listen.ip().is_loopback() && self.create_key.is_none()
    }

    /// Settings for tests: ephemeral ports on loopback, data in `data_dir`.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        use clap::Parser;
        let mut config = Config::parse_from(["tandem"]);
        config.listen = "127.0.0.1:0".parse().expect("valid address");
        config.media_listen = "127.0.0.1:0".parse().expect("valid address");
        config.data_dir = data_dir;
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_public_address_without_a_key_is_open_to_others() {
        let parse = |args: &[&str]| Config::parse_from([&["tandem"], args].concat());
        assert!(!parse(&[]).creation_open_to_others(), "loopback default");
        assert!(!parse(&["--listen", "[::1]:8080"]).creation_open_to_others());
        assert!(parse(&["--listen", "0.0.0.0:8080"]).creation_open_to_others());
        assert!(
            !parse(&["--listen", "0.0.0.0:8080", "--create-key", "k"]).creation_open_to_others()
        );
    }

    #[test]
    fn poll_limits_are_settings() {
        let defaults = Config::parse_from(["tandem"]).poll_limits();
        assert_eq!(
            (
                defaults.max_options,
                defaults.max_question_chars,
                defaults.max_option_chars,
                defaults.max_timer_secs
            ),
            (10, 500, 200, 3600)
        );
        let set = Config::parse_from([
            "tandem",
            "--poll-max-options",
            "4",
            "--poll-max-question-chars",
            "80",
            "--poll-max-option-chars",
            "20",
            "--poll-max-timer-secs",
            "120",
        ])
        .poll_limits();
        assert_eq!(
            (
                set.max_options,
                set.max_question_chars,
                set.max_option_chars,
                set.max_timer_secs
            ),
            (4, 80, 20, 120)
        );
        assert!(
            Config::try_parse_from(["tandem", "--poll-max-options", "1"]).is_err(),
            "a poll needs two options"
        );
    }

    #[test]
    fn a_nack_buffer_that_is_not_a_power_of_two_is_refused_at_start() {
        let err = Config::try_parse_from(["tandem", "--nack-buffer-packets", "500"])
            .expect_err("500 is refused");
        assert!(
            err.to_string().contains("500 is not a power of two"),
            "{err}"
        );
        let ok = Config::try_parse_from(["tandem", "--nack-buffer-packets", "1024"]).expect("1024");
        assert_eq!(ok.nack_buffer_packets, 1024);
        let defaults = Config::try_parse_from(["tandem"]).expect("defaults");
        assert_eq!(
            (defaults.nack_buffer_packets, defaults.consent_timeout_secs),
            (512, 30)
        );
    }
}
