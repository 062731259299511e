//! TURN for the strictest networks: time-limited credentials for the TURN servers we name.
//!
//! Tandem does not relay media itself; a school network that allows neither UDP nor TCP to the
//! media port reaches it through a TURN server (Debian's `coturn`) on port 443. Clients get
//! credentials minted per join with coturn's `use-auth-secret` scheme (the "TURN REST API" draft,
//! draft-uberti-behave-turn-rest): the username is `<expiry unix time>:<classroom id>`, the
//! password is base64(HMAC-SHA1(secret, username)). The TURN server checks both with the same
//! shared secret and refuses them after the expiry, so a leaked credential dies on its own and the
//! secret never leaves the server.
//!
//! Browsers get them in `welcome` as `ice_servers` (an `RTCIceServer` list); WHIP/WHEP clients get
//! them as `Link: <turn:…>; rel="ice-server"` headers (RFC 9725 §4.6).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::Config;

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TurnConfigError {
    #[error("--turn-url {0:?}: not a turn:, turns: or stun: URL")]
    BadUrl(String),
    #[error("--turn-url {0:?} needs --turn-secret (the TURN server's static-auth-secret)")]
    NoSecret(String),
}

/// Check the TURN settings once, at start, so a typo fails loudly rather than in a classroom.
pub fn validate(config: &Config) -> Result<(), TurnConfigError> {
    for url in &config.turn_urls {
        let scheme = url.split(':').next().unwrap_or_default();
        let rest = url.split_once(':').map_or("", |(_, r)| r);
        if !matches!(scheme, "turn" | "turns" | "stun" | "stuns")
            || rest.is_empty()
            || url.contains(['<', '>', '"', ',', ' '])
        {
            return Err(TurnConfigError::BadUrl(url.clone()));
        }
        if scheme.starts_with("turn") && config.turn_secret.is_none() {
            return Err(TurnConfigError::NoSecret(url.clone()));
        }
    }
    Ok(())
}

/// The ICE servers for one join of `classroom`, with credentials valid for `ttl` from `now`.
pub fn ice_servers(config: &Config, now: SystemTime, classroom: &str) -> Vec<IceServer> {
    let (stun, turn): (Vec<&String>, Vec<&String>) =
        config.turn_urls.iter().partition(|u| u.starts_with("stun"));
    let mut servers = Vec::new();
    if !stun.is_empty() {
        servers.push(IceServer {
            urls: stun.into_iter().cloned().collect(),
            username: None,
            credential: None,
        });
    }
    if let (false, Some(secret)) = (turn.is_empty(), &config.turn_secret) {
        let ttl = Duration::from_secs(config.turn_credential_ttl_secs);
        let (username, credential) = rest_credential(secret.as_bytes(), now + ttl, classroom);
        servers.push(IceServer {
            urls: turn.into_iter().cloned().collect(),
            username: Some(username),
            credential: Some(credential),
        });
    }
    servers
}

/// coturn `use-auth-secret`: username `<expiry>:<user>`, password base64(HMAC-SHA1(secret, username)).
pub fn rest_credential(secret: &[u8], expires: SystemTime, user: &str) -> (String, String) {
    let expiry = expires
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let username = format!("{expiry}:{user}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = ring::hmac::sign(&key, username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    (username, credential)
}

/// The `Link` header values of RFC 9725 §4.6 for these servers, one per URL.
pub fn link_headers(servers: &[IceServer]) -> Vec<String> {
    let mut links = Vec::new();
    for server in servers {
        for url in &server.urls {
            let mut link = format!("<{url}>; rel=\"ice-server\"");
            if let (Some(username), Some(credential)) = (&server.username, &server.credential) {
                link.push_str(&format!(
                    "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                    quoted(username),
                    quoted(credential)
                ));
            }
            links.push(link);
        }
    }
    links
}

/// A quoted-string body (RFC 9110 §5.6.4): backslash and quote escaped.
fn quoted(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(args: &[&str]) -> Config {
        Config::parse_from(std::iter::once("tandem").chain(args.iter().copied()))
    }

    #[test]
    fn credentials_follow_coturns_rest_scheme() {
        // The TURN REST API draft's own scheme, checked against a value computed independently:
        // printf '1700000000:room1' | openssl dgst -sha1 -hmac 'north' -binary | base64
        let expires = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (username, credential) = rest_credential(b"north", expires, "room1");
        assert_eq!(username, "1700000000:room1");
        assert_eq!(credential, "7nKd1NHxwPRuWRlp0XROmbLZZ+k=");
    }

    #[test]
    fn each_join_gets_expiring_credentials_never_the_secret() {
        let c = config(&[
            "--turn-url",
            "turn:turn.example.org:3478?transport=udp",
            "--turn-url",
            "turns:turn.example.org:443?transport=tcp",
            "--turn-secret",
            "s3cret",
            "--turn-credential-ttl-secs",
            "600",
        ]);
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let servers = ice_servers(&c, now, "r_abc");
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].urls.len(), 2);
        assert_eq!(servers[0].username.as_deref(), Some("1600:r_abc"));
        assert_ne!(servers[0].credential.as_deref(), Some("s3cret"));
        let links = link_headers(&servers);
        assert_eq!(links.len(), 2);
        assert!(links[1].starts_with(
            "<turns:turn.example.org:443?transport=tcp>; rel=\"ice-server\"; username=\"1600:r_abc\"; credential=\""
        ));
        assert!(links[1].ends_with("\"; credential-type=\"password\""));
    }

    #[test]
    fn no_turn_urls_no_servers_and_bad_settings_are_refused() {
        assert!(ice_servers(&config(&[]), SystemTime::now(), "r").is_empty());
        assert_eq!(validate(&config(&[])), Ok(()));
        assert!(matches!(
            validate(&config(&["--turn-url", "turn:t.example:3478"])),
            Err(TurnConfigError::NoSecret(_))
        ));
        assert!(matches!(
            validate(&config(&[
                "--turn-url",
                "http://t.example",
                "--turn-secret",
                "x"
            ])),
            Err(TurnConfigError::BadUrl(_))
        ));
        assert_eq!(
            validate(&config(&["--turn-url", "stun:stun.example:3478"])),
            Ok(())
        );
    }
}
