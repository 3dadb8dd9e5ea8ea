//! Helpers shared by the integration tests: a server on 127.0.0.1:0 with a
//! throw-away data directory.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use streamforge::config::Config;
use streamforge::server::{self, Running};

pub struct TestServer {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub data: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let data = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            data_dir: data.path().to_owned(),
            ..Config::default()
        };
        config.http.listen = "127.0.0.1:0".parse().unwrap();
        config.http.shutdown_grace = Duration::from_secs(2);
        adjust(&mut config);
        let running = server::start(config).await.expect("server starts");
        TestServer {
            addr: running.http_addr(),
            running: Some(running),
            data,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The `{"error": {"code", "message"}}` body of an error response.
pub async fn error_of(response: reqwest::Response) -> (String, String) {
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    let code = body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned();
    let message = body["error"]["message"]
        .as_str()
        .expect("error.message")
        .to_owned();
    (code, message)
}
