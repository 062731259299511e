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

pub struct NewClass {
    pub class_id: String,
    pub teacher_url: String,
    pub invite_url: String,
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
    NewClass {
        class_id: body["class_id"].as_str().expect("class_id").to_owned(),
        teacher_url: body["teacher_url"]
            .as_str()
            .expect("teacher_url")
            .to_owned(),
        invite_url: body["invite_url"].as_str().expect("invite_url").to_owned(),
    }
}
