//! Per-address rate limits on the API and upload creation.

mod common;

use common::{TestServer, error_of};
use futures::StreamExt;

#[tokio::test]
async fn api_requests_over_the_rate_get_429_with_retry_after() {
    let server = TestServer::start_with(|c| {
        c.limits.api_per_second = 1;
        c.limits.api_burst = 3;
    })
    .await;
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let ok = http.get(server.url("/api/assets")).send().await.unwrap();
        assert_eq!(ok.status(), 200);
    }
    let limited = http.get(server.url("/api/assets")).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(error_of(limited).await.0, "too_many_requests");

    // Upload creation shares the address's budget; health and playback do not.
    let create = http
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(create.status(), 429);
    for _ in 0..10 {
        assert_eq!(
            http.get(server.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            http.get(server.url("/vod/a/x.m4s"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }

    // The budget refills at the sustained rate.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        http.get(server.url("/api/assets"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    server.stop().await;
}

/// `limits.uploads_per_client`: a client sending that many upload bodies at
/// once gets 429 for one more, and may go on when one ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_per_client_are_limited() {
    let server = TestServer::start_with(|c| {
        c.limits.uploads_per_client = 2;
        c.uploads.process_while_uploading = false;
    })
    .await;
    let http = reqwest::Client::new();
    let mut locations = Vec::new();
    for _ in 0..3 {
        let created = http
            .post(server.url("/files/"))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "300000")
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        locations.push(server.url(created.headers()["location"].to_str().unwrap()));
    }
    // Two bodies that trickle: 10 KB every 100 ms.
    let slow = |location: String| {
        let http = http.clone();
        tokio::spawn(async move {
            let chunks = (0..30).map(|_| bytes::Bytes::from(vec![7u8; 10_000]));
            let body = futures::stream::iter(chunks).then(|chunk| async move {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                Ok::<_, std::io::Error>(chunk)
            });
            http.patch(location)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", "0")
                .header("content-type", "application/offset+octet-stream")
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let first = slow(locations[0].clone());
    let second = slow(locations[1].clone());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let third = http
        .patch(&locations[2])
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(vec![1u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key("retry-after"));
    assert_eq!(error_of(third).await.0, "too_many_uploads");
    assert_eq!(first.await.unwrap(), 204);
    assert_eq!(second.await.unwrap(), 204);
    let third = http
        .patch(&locations[2])
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(vec![1u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 204, "a slot is free again");
    server.stop().await;
}

/// `limits.streams_per_client`: one address may publish that many live
/// streams at once; one more publish is refused (`NetStream.Publish.Denied`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_per_client_are_limited() {
    let server = TestServer::start_with(|c| {
        c.limits.streams_per_client = 1;
        c.live.open_publish = true;
    })
    .await;
    let push = |name: &str, seconds: &str| {
        tokio::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-re",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=160x120:rate=25",
            ])
            .args([
                "-t",
                seconds,
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "50",
                "-f",
                "flv",
            ])
            .arg(format!("{}/live/{name}", server.rtmp_url()))
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let mut first = push("one", "30");
    common::wait_until("the first stream to be live", async || {
        let status: serde_json::Value = reqwest::get(server.url("/api/live/one"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default();
        status["live"] == true
    })
    .await;
    let second = push("two", "2").wait().await.unwrap();
    assert!(
        !second.success(),
        "a second stream from the same address is refused"
    );
    let _ = first.kill().await;
    server.stop().await;
}
