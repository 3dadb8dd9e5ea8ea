//! Status without polling: an SSE stream follows one upload from its first
//! bytes to its asset's final stage; a WebSocket sees every event.

mod common;

use std::time::Duration;

use common::{SseReader, TestServer};
use futures::{SinkExt, StreamExt};
use serde_json::Value;

/// Bytes no demuxer recognises.
fn noise(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[tokio::test]
async fn sse_follows_an_upload_to_its_last_stage() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let created = http
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "2000")
        .send()
        .await
        .unwrap();
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let upload_id = location.rsplit('/').next().unwrap().to_owned();

    // Browsers ask for compression; an event stream must not be compressed
    // (a compressor holds events back until its buffer fills).
    let response = http
        .get(server.url(&format!("/api/assets/{upload_id}/events")))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-encoding").is_none());
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut events = SseReader {
        body: Box::pin(response.bytes_stream()),
        buffer: String::new(),
    };
    let (name, snapshot) = events.next().await;
    assert_eq!(name, "snapshot");
    assert_eq!(snapshot["offset"], 0);

    // Bytes that are not media: the asset will fail, with a reason.
    // Processing starts with the first durable bytes (the growing source),
    // so stages interleave with the upload's progress.
    let noise = noise(2000);
    let mut seen: Vec<Value> = Vec::new();
    for (offset, chunk) in [
        (0u64, noise[..1000].to_vec()),
        (1000, noise[1000..].to_vec()),
    ] {
        let patched = http
            .patch(server.url(&location))
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(chunk)
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), 204);
        loop {
            let (name, data) = events.next().await;
            if name != "status" {
                continue;
            }
            seen.push(data.clone());
            if data["type"] == "upload_progress" {
                assert_eq!(data["offset"], offset + 1000);
                assert_eq!(data["length"], 2000);
                break;
            }
        }
    }
    let stage_of = |v: &Value| v["stage"].as_str().map(str::to_owned);
    let mut stages: Vec<String> = seen.iter().filter_map(stage_of).collect();
    let mut failed = seen.iter().find(|v| v["stage"] == "failed").cloned();
    while failed.is_none() || !stages.iter().any(|s| s == "uploaded") {
        let data = events.until("stage").await;
        stages.extend(stage_of(&data));
        if data["stage"] == "failed" {
            failed = Some(data);
        }
    }
    let failed = failed.unwrap();
    assert_eq!(stages[0], "uploading", "{stages:?}");
    assert!(stages.contains(&"probing".to_owned()), "{stages:?}");
    let asset = failed["asset_id"].as_str().unwrap().to_owned();
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("not a media file"),
        "{failed}"
    );
    // The upload finished anyway; its original is kept under the same asset.
    let view: Value = http
        .get(server.url(&format!("/api/assets/{asset}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "failed");
    assert_eq!(view["upload_id"], upload_id.as_str());

    let missing = http
        .get(server.url("/api/assets/nothing/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    server.stop().await;
}

#[tokio::test]
async fn a_websocket_sees_every_event() {
    let server = TestServer::start().await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/events", server.addr))
            .await
            .unwrap();
    let created = reqwest::Client::new()
        .post(server.url("/api/uploads?filename=noise.bin"))
        .body(noise(5000))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let mut stages = Vec::new();
    while stages.last().map(String::as_str) != Some("failed") {
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .expect("an event within a minute")
            .expect("the socket stays open")
            .unwrap();
        let event: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        if event["type"] == "stage" {
            stages.push(event["stage"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(stages, ["uploaded", "probing", "failed"]);
    socket.close(None).await.unwrap();
    // Shutdown ends open event streams; the server stops promptly.
    let (mut lingering, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/events", server.addr))
            .await
            .unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(5), server.stop()).await;
    assert!(stopped.is_ok(), "an open WebSocket must not hold shutdown");
    let _ = lingering
        .send(tokio_tungstenite::tungstenite::Message::Ping(
            Vec::new().into(),
        ))
        .await;
}
