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
    // A browser app on another origin can read the refusal (CORS headers
    // on the 401, not a CORS failure), and its preflight is answered.
    let from_browser = http
        .get(server.url("/api/assets"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(from_browser.status(), 401);
    assert_eq!(from_browser.headers()["access-control-allow-origin"], "*");
    let preflight = http
        .request(reqwest::Method::OPTIONS, server.url("/api/assets"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
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

/// `auth.playback = "signed"`: the API hands out signed URLs, players that
/// follow them (ffprobe through HLS and DASH) are let through because every
/// URI inside the playlists carries the signature, and anything unsigned,
/// tampered with or expired is refused with 403 and a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_playback_urls_for_assets_and_live_streams() {
    let server = TestServer::start_with(|c| {
        c.auth.playback = streamforge::config::PlaybackMode::Signed;
        c.live.open_publish = true;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("c.mp4");
    let made = tokio::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args(["-c:a", "aac"])
        .arg(&clip)
        .status()
        .await
        .unwrap();
    assert!(made.success());
    let http = reqwest::Client::new();
    let asset = common::upload(&server, "c.mp4", std::fs::read(&clip).unwrap()).await;
    let view = common::wait_for_asset(&server.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");
    let hls = view["hls_url"].as_str().unwrap();
    assert!(hls.contains("?exp=") && hls.contains("&sig="), "{hls}");
    // Players follow the signed playlists and MPD to every segment.
    for url in [hls, view["dash_url"].as_str().unwrap()] {
        let probed = common::ffprobe(&server.url(url)).await;
        assert_eq!(probed["streams"].as_array().unwrap().len(), 2, "{url}");
    }
    let poster = http
        .get(server.url(view["poster_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(poster.status(), 200);
    let storyboard = http
        .get(server.url(view["storyboard_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(storyboard.contains("storyboard.webp?exp="), "{storyboard}");
    // A browser's request (gzip accepted) gets the signed playlist
    // compressed, not the cached unsigned copy's gzip.
    let gzipped = http
        .get(server.url(hls))
        .header(reqwest::header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.status(), 200);
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let master = String::from_utf8(common::gunzip(&gzipped.bytes().await.unwrap())).unwrap();
    assert!(master.contains(".m3u8?exp="), "{master}");

    // Unsigned, tampered, for another asset, expired: refused with a reason.
    let bare = hls.split('?').next().unwrap();
    let unsigned = http.get(server.url(bare)).send().await.unwrap();
    assert_eq!(unsigned.status(), 403);
    assert_eq!(error_of(unsigned).await.0, "signature_required");
    let tampered = hls.replace("sig=", "sig=00");
    let response = http.get(server.url(&tampered)).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(error_of(response).await.0, "signature_invalid");
    let short: serde_json::Value = http
        .post(server.url("/api/playback/sign"))
        .json(&serde_json::json!({ "asset": asset, "ttl_secs": 1 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let segment_with_short = format!(
        "/vod/{asset}/360p-v1/init.mp4?{}",
        short["query"].as_str().unwrap()
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let response = http
        .get(server.url(&segment_with_short))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(error_of(response).await.0, "signature_expired");

    // A live stream: the same rules under /live/{stream}/.
    let mut encoder = tokio::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
        ])
        .args([
            "-f", "lavfi", "-i", "sine", "-t", "20", "-c:v", "libx264", "-preset", "veryfast",
        ])
        .args(["-g", "50", "-c:a", "aac", "-f", "flv"])
        .arg(format!("{}/live/signed", server.rtmp_url()))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status = async || -> serde_json::Value {
        http.get(server.url("/api/live/signed"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    common::wait_until("the signed stream to be playable", async || {
        status().await["playable"] == true
    })
    .await;
    let live = status().await;
    let live_hls = live["hls"].as_str().unwrap();
    assert!(live_hls.contains("&sig="));
    let media = http
        .get(server.url(&live_hls.replace("master.m3u8", "v1/media.m3u8")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        media.contains("PRELOAD-HINT:TYPE=PART,URI=\"") && media.contains(".m4s?exp="),
        "{media}"
    );
    let probed = common::ffprobe(&server.url(live_hls)).await;
    assert_eq!(probed["streams"].as_array().unwrap().len(), 2);
    let response = http
        .get(server.url("/live/signed/master.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let _ = encoder.kill().await;
    server.stop().await;
}
