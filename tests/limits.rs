//! Per-address rate limits on the API and upload creation.

mod common;

use common::{TestServer, error_of};

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
