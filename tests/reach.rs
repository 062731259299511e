//! Reaching classrooms on school networks: media over ICE-TCP when UDP is blocked, TURN servers
//! handed to every client with credentials of their own, and a server bound to all addresses
//! that announces its public one.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tandem_loadtest::client::{
    Classroom, ClientOptions, PublishSpec, decode_opus, dominant_frequency,
};
use tandem_sfu::MediaKind;
use tandem_signaling::Config;
use tandem_signaling::protocol::ServerMessage;

const TONE: PublishSpec = PublishSpec {
    tone_hz: Some(440.0),
    video: None,
};

async fn start(
    configure: impl FnOnce(&mut Config),
) -> (tandem_signaling::Server, String, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(data.path().to_path_buf());
    configure(&mut config);
    let server = tandem_signaling::start(config)
        .await
        .expect("server starts");
    let base = format!("http://{}", server.http_addr);
    (server, base, data)
}

/// The teacher publishes a 440 Hz tone; a remote classroom (with `options`) must hear it.
async fn classroom_hears_the_teacher(base: &str, options: ClientOptions) -> Classroom {
    let class = common::create_class(base, "Grade 4 Music").await;
    let mut teacher = Classroom::join_with(base, &class.teacher_url, "Ms Li", options.clone())
        .await
        .expect("the teacher joins");
    teacher.publish(TONE).await.expect("the teacher publishes");
    let room = Classroom::join_with(base, &class.invite_url, "Hotan No. 3", options)
        .await
        .expect("the classroom joins");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let heard = room
            .received_from(&teacher.classroom_id, MediaKind::Audio)
            .into_iter()
            .filter(|t| t.opus.len() > 50)
            .find_map(|t| dominant_frequency(&decode_opus(t.opus).ok()?, 200.0, 1200.0));
        if let Some(hz) = heard {
            assert!((hz - 440.0).abs() <= 10.0, "the classroom hears {hz} Hz");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the classroom heard nothing within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(teacher);
    room
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classroom_whose_network_blocks_udp_hears_the_teacher_over_ice_tcp() {
    let (_server, base, _data) = start(|c| c.media_udp = false).await;
    let before = common::metric(&base, "tandem_ice_tcp_connections_total").await;
    let tcp_only = ClientOptions {
        tcp: true,
        ..ClientOptions::default()
    };
    classroom_hears_the_teacher(&base, tcp_only).await;
    // The teacher's publish leg and the classroom's subscribe leg, at least, came over TCP.
    let accepted = common::metric(&base, "tandem_ice_tcp_connections_total").await - before;
    assert!(accepted >= 2.0, "{accepted} ICE-TCP connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_bound_to_every_address_announces_its_public_ip() {
    // A NAT'd server binds 0.0.0.0 and announces its public address; here loopback stands in.
    let (server, base, _data) = start(|c| {
        c.media_listen = "0.0.0.0:0".parse().unwrap();
        c.public_ip = Some("127.0.0.1".parse().unwrap());
    })
    .await;
    assert!(server.media_addr.ip().is_unspecified());
    classroom_hears_the_teacher(&base, ClientOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_gets_the_turn_servers_with_credentials_of_its_own() {
    let (_server, base, _data) = start(|c| {
        c.turn_urls = vec![
            "turn:turn.school.example:3478?transport=udp".into(),
            "turns:turn.school.example:443?transport=tcp".into(),
        ];
        c.turn_secret = Some("north-wind".into());
        c.turn_credential_ttl_secs = 3600;
    })
    .await;
    let class = common::create_class(&base, "Grade 4 Music").await;

    // A browser-protocol client: `ice_servers` in its welcome.
    let room = Classroom::join(&base, &class.invite_url, "Kashgar No. 1")
        .await
        .unwrap();
    let welcome = room
        .wait_for(Duration::from_secs(5), |m| {
            matches!(m, ServerMessage::Welcome { .. })
        })
        .await
        .unwrap();
    let ServerMessage::Welcome {
        ice_servers, you, ..
    } = welcome
    else {
        unreachable!()
    };
    assert_eq!(ice_servers.len(), 1);
    assert_eq!(ice_servers[0].urls.len(), 2);
    let username = ice_servers[0].username.clone().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (now + 3590..=now + 3610).contains(&expiry),
        "valid for the TTL"
    );
    assert_eq!(user, you.classroom_id.as_str(), "minted for this classroom");
    let credential = ice_servers[0].credential.clone().unwrap();
    assert!(!credential.contains("north-wind"), "never the secret");

    // A WHIP encoder: RFC 9725 `Link` headers on the 201.
    let token = tandem_loadtest::client::token_from_link(&class.teacher_url).unwrap();
    let offer = whip_offer().await;
    let response = reqwest::Client::new()
        .post(format!("{base}/whip/{}", class.class_id))
        .bearer_auth(token)
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let links: Vec<String> = response
        .headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(links.len(), 2, "{links:?}");
    for (link, url) in links.iter().zip([
        "turn:turn.school.example:3478?transport=udp",
        "turns:turn.school.example:443?transport=tcp",
    ]) {
        assert!(
            link.starts_with(&format!("<{url}>; rel=\"ice-server\"; username=\"")),
            "{link}"
        );
        assert!(
            link.contains("; credential=\"") && link.ends_with("; credential-type=\"password\""),
            "{link}"
        );
        assert!(!link.contains("north-wind"));
    }
}

/// A WHIP offer as an encoder sends it: one Opus microphone, bundled, ICE and DTLS parameters
/// (the connection itself is not made here).
async fn whip_offer() -> String {
    let fingerprint = (0..32)
        .map(|i| format!("{:02X}", i * 7 % 256))
        .collect::<Vec<_>>()
        .join(":");
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic: WMS enc",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:wh1p",
        "a=ice-pwd:whipencoderpassword0123",
        &format!("a=fingerprint:sha-256 {fingerprint}"),
        "a=setup:actpass",
        "a=mid:0",
        "a=sendonly",
        "a=msid:enc mic",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "",
    ]
    .join("\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_is_served_kept_and_reused_across_restarts() {
    let data = tempfile::tempdir().unwrap();
    let served = |addr: std::net::SocketAddr| async move {
        let client = reqwest::Client::builder()
            // The point of a self-signed certificate: nobody vouches for it, the fingerprint does.
            .danger_accept_invalid_certs(true)
            .tls_info(true)
            .build()
            .unwrap();
        let response = client
            .post(format!("https://{addr}/api/classes"))
            .json(&serde_json::json!({"title": "LAN lesson", "teacher_name": "Ms Li"}))
            .send()
            .await
            .expect("HTTPS answers");
        let der = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|i| i.peer_certificate().map(<[u8]>::to_vec))
            .expect("a certificate");
        let body: serde_json::Value = response.json().await.unwrap();
        (der, body["invite_url"].as_str().unwrap().to_owned())
    };
    let mut config = Config::for_tests(data.path().to_path_buf());
    config.tls_self_signed = true;
    let first = tandem_signaling::start(config.clone()).await.unwrap();
    assert_eq!(first.scheme, "https");
    let fingerprint = first
        .tls_fingerprint
        .clone()
        .expect("a fingerprint to print");
    assert_eq!(
        fingerprint.len(),
        32 * 3 - 1,
        "SHA-256 as AB:CD:…: {fingerprint}"
    );
    let (der, invite) = served(first.http_addr).await;
    assert!(invite.starts_with("https://"), "links are https: {invite}");
    first.shutdown().await.expect("the first server stops");

    let second = tandem_signaling::start(config).await.unwrap();
    assert_eq!(
        second.tls_fingerprint.as_deref(),
        Some(fingerprint.as_str())
    );
    assert_eq!(
        served(second.http_addr).await.0,
        der,
        "the same certificate after a restart"
    );
}
