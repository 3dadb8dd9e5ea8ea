//! The OpenAPI description (`/api/openapi.json`) against the server that
//! serves it: every operation it describes is routed, and schemathesis
//! (PyPI), a property-based tester that knows nothing of our code, sends
//! generated requests to every operation and checks each answer against
//! the description: no 5xx, statuses, content types and bodies as
//! described.

mod common;

use std::time::Duration;

use common::TestServer;
use serde_json::Value;

const METHODS: [&str; 6] = ["get", "post", "put", "patch", "delete", "head"];

async fn spec(server: &TestServer) -> Value {
    let response = reqwest::get(server.url("/api/openapi.json")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_description_covers_every_route_and_every_error() {
    let server = TestServer::start().await;
    let spec = spec(&server).await;
    assert_eq!(spec["openapi"], "3.1.0");
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["signed"]["in"], "query");
    let paths = spec["paths"].as_object().unwrap();
    // The API's families, each described.
    for path in [
        "/files/",
        "/files/{id}",
        "/api/uploads",
        "/api/imports",
        "/api/assets/{id}",
        "/api/assets/{id}/original",
        "/api/live/{stream}",
        "/api/webhooks/{id}/deliveries",
        "/vod/{asset}/{path}",
        "/live/{stream}/{rendition}/{file}",
        "/healthz",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "{path} is not described");
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for method in METHODS.iter().chain(&["options"]) {
            let Some(operation) = item.get(*method) else {
                continue;
            };
            operations += 1;
            let responses = operation["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}");
            // Every JSON error answer is described with the one envelope.
            for (status, response) in responses {
                if (status.starts_with('4') || status.starts_with('5'))
                    && let Some(content) = response.get("content")
                {
                    assert_eq!(
                        content["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorEnvelope",
                        "{method} {path} {status}"
                    );
                }
            }
            // The route exists: not the router's 404 nor a 405.
            let url = server.url(&fill(path));
            let request = client.request(method.to_uppercase().parse().unwrap(), &url);
            let Ok(response) = request.send().await else {
                continue; // a stream that stays open (SSE): routed
            };
            let status = response.status().as_u16();
            assert_ne!(status, 405, "{method} {path} is described but not routed");
            if status == 404 && *method != "head" {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let message = body["error"]["message"].as_str().unwrap_or("");
                assert!(
                    !message.starts_with("no route for"),
                    "{method} {path} is described but not routed"
                );
            }
        }
    }
    assert!(operations >= 35, "{operations} operations");
    server.stop().await;
}

/// A path template with each parameter replaced by a value.
fn fill(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        out.push('x');
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_description() {
    // The rate limit would answer most generated requests with 429 (a
    // described answer, but one that tests nothing behind it).
    let server = TestServer::start_with(|c| c.limits.api_per_second = 0).await;
    // schemathesis keeps a cache in its working directory: not the repository.
    let scratch = tempfile::tempdir().unwrap();
    let peers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
    let output = tokio::process::Command::new("st")
        .current_dir(scratch.path())
        .args(["run", &server.url("/api/openapi.json")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "10",
            "--max-time",
            "60",
            "--request-timeout",
            "5",
            "--workers",
            "2",
            "--seed",
            "1",
            "--no-color",
            "--generation-database",
            "none",
            "--suppress-health-check",
            "all",
            // Streams that stay open (SSE, WebSocket, blocking playlist
            // reloads) and imports (any host name on the internet) are
            // left to their own tests.
            "--exclude-path-regex",
            "^/api/(assets/\\{id\\}/)?events$|^/live/|^/api/imports$",
        ])
        // tus bodies (application/offset+octet-stream) as raw bytes.
        .env("PYTHONPATH", &peers)
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .output()
        .await
        .expect("schemathesis (st) is installed (scripts/setup --test)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis failed:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    server.stop().await;
}
