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
