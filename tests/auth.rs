//! auth.mode = "token": tokens made with the CLI open /api/ and /files/;
//! no token, a wrong one or a revoked one gets 401; playback, health and
//! discovery stay open.

mod common;

use common::{TestServer, error_of};
use streamforge::config::AuthMode;

fn cli(data: &std::path::Path, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_streamforge"))
        .args(["token", "--data-dir"])
        .arg(data)
        .args(args)
        .env_remove("STREAMFORGE_DATA_DIR")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

#[tokio::test]
async fn tokens_from_the_cli_guard_the_api_and_uploads() {
    let data = tempfile::tempdir().unwrap();
    let (ok, token) = cli(data.path(), &["create", "--name", "ci"]);
    assert!(ok);
    let token = token.trim().to_owned();
    assert!(token.starts_with("sf_"), "{token}");

    let server = TestServer::start_in(data, |c| c.auth.mode = AuthMode::Token).await;
    let http = reqwest::Client::new();

    let anonymous = http.get(server.url("/api/assets")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Bearer realm=\"streamforge\""
    );
    assert_eq!(error_of(anonymous).await.0, "unauthorized");
    let wrong = http
        .get(server.url("/api/assets"))
        .bearer_auth("sf_not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let allowed = http
        .get(server.url("/api/assets"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let by_query = http
        .get(server.url(&format!("/api/assets?access_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), 200);

    let tus_without = http
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(tus_without.status(), 401);
    let tus_with = http
        .post(server.url("/files/"))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(tus_with.status(), 201);

    // Open to all: health, metrics, playback, tus discovery.
    for path in ["/healthz", "/metrics"] {
        assert_eq!(
            http.get(server.url(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
    assert_eq!(
        http.get(server.url("/vod/a/master.m3u8"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let discovery = http
        .request(reqwest::Method::OPTIONS, server.url("/files/"))
        .send()
        .await
        .unwrap();
    assert_eq!(discovery.status(), 204);

    // Revoked: refused from the next request on.
    let data = server.data.path().to_owned();
    let (_, listed) = cli(&data, &["list"]);
    let id = listed.split('\t').next().unwrap().to_owned();
    assert!(listed.contains("\tci\tactive"), "{listed}");
    assert!(cli(&data, &["revoke", &id]).0);
    let revoked = http
        .get(server.url("/api/assets"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 401);
    assert!(!cli(&data, &["revoke", &id]).0, "revoking twice fails");
    server.stop().await;
}
