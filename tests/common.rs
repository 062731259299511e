//! Shared set-up for the end-to-end tests: a real server on ephemeral loopback ports.

#![allow(dead_code)]

use tandem_signaling::{Config, Server};

pub struct TestServer {
    pub server: Server,
    pub base: String,
    _data: tempfile::TempDir,
}

pub async fn start() -> TestServer {
    let data = tempfile::tempdir().expect("temp dir");
    let server = tandem_signaling::start(Config::for_tests(data.path().to_path_buf()))
        .await
        .expect("server starts");
    TestServer {
        base: format!("http://{}", server.http_addr),
        server,
        _data: data,
    }
}

impl TestServer {
    /// Stop the server the way `tandem` stops on SIGTERM: every task of it ends and its ports
    /// close. The data folder goes with `self`.
    pub async fn shutdown(self) {
        self.server.shutdown().await.expect("the server shuts down");
    }
}

/// A new class and the links and tokens `POST /api/classes` hands out.
pub struct NewClass {
    pub class_id: String,
    pub teacher_url: String,
    pub invite_url: String,
    pub pupil_url: String,
    pub teacher_token: String,
    pub invite_token: String,
}

pub async fn create_class(base: &str, title: &str) -> NewClass {
    let body: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/classes"))
        .json(&serde_json::json!({"title": title, "teacher_name": "Ms Li"}))
        .send()
        .await
        .expect("create class")
        .json()
        .await
        .expect("json");
    let s = |k: &str| body[k].as_str().unwrap_or_else(|| panic!("{k}")).to_owned();
    NewClass {
        class_id: s("class_id"),
        teacher_url: s("teacher_url"),
        invite_url: s("invite_url"),
        pupil_url: s("pupil_url"),
        teacher_token: s("teacher_token"),
        invite_token: s("invite_token"),
    }
}

/// The value of the metric `name` (without labels) on the server's `/metrics`.
pub async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics is text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

/// Poll `ready` every 100 ms until it holds or `within` has passed, and say which. Tests call
/// this before their assertions instead of sleeping a fixed time, so a busy machine only makes
/// them slower, never wrong; the assertions that follow still decide pass or fail.
pub async fn wait_until(within: std::time::Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if ready() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Wait (up to `within`) for a stretch in which the `clock` stream advances by `by` packets while
/// `quiet` does not move. The clock is media that keeps flowing, so the stretch is measured in
/// media time: on a busy machine it takes longer, it does not get shorter.
pub async fn quiet_stretch(
    within: std::time::Duration,
    by: u64,
    clock: impl Fn() -> u64,
    quiet: impl Fn() -> u64,
) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        let (start, still) = (clock(), quiet());
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if !wait_until(left, || clock() >= start + by).await {
            return false;
        }
        if quiet() == still {
            return true;
        }
    }
    false
}

/// The real `tandem` binary on `data`, on loopback ports, with `args` added, and its HTTP base
/// URL once it prints `TANDEM_READY` (within `within`). Killed when the `Child` is dropped.
pub async fn spawn_binary(
    data: &std::path::Path,
    args: &[&str],
    within: std::time::Duration,
) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["--listen", "127.0.0.1:0", "--media-listen", "127.0.0.1:0"])
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("tandem starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let base = tokio::time::timeout(within, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(base) = tandem_loadtest::server::parse_ready(&line) {
                return base;
            }
        }
        panic!("tandem exited before it was ready");
    })
    .await
    .expect("ready in time");
    (child, base)
}
