//! A media plane that dies must not leave a server that looks healthy.

mod common;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_media_loop_fails_health_and_ends_the_server() {
    let server = common::start().await;
    let health = || async {
        let r = reqwest::get(format!("{}/healthz", server.base))
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(health().await, (200, "ok".to_owned()));

    server.server.hub.sfu.panic_for_test();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = health().await;
        if status == 503 {
            assert!(body.contains("media plane"), "says why: {body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz still says {status} {body} after the media loop panicked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // What the binary's main waits on ends with an error (so the process exits non-zero).
    let common::TestServer { server, .. } = server;
    let ended = tokio::time::timeout(Duration::from_secs(5), server.wait())
        .await
        .expect("the server stops waiting once its media plane is gone");
    let err = ended.expect_err("a server without media is an error");
    assert!(
        err.to_string().contains("media plane"),
        "the error names the media plane: {err}"
    );
}
