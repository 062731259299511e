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
            ..Default::default()
        }
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
    use clap::Parser;

    use super::Config;

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
