//! Media in an S3-compatible bucket (a real Garage server the test
//! starts): an upload that arrives in pieces is processed while it
//! arrives and after, ffprobe and ffmpeg reading the stored original from
//! the bucket by range; the original, the segments and the playlists are
//! served from the bucket.

mod common;
#[path = "support/garage.rs"]
mod garage;

use std::time::Duration;

use common::TestServer;

#[tokio::test]
async fn an_upload_into_a_bucket_is_processed_from_it_and_plays() {
    let garage = garage::Garage::start();
    let storage = garage.storage_url("media");
    let server = TestServer::start_with(|c| c.storage = storage.clone()).await;
    let info: serde_json::Value = reqwest::get(server.url("/api/server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        info["storage"]
            .as_str()
            .unwrap()
            .starts_with("s3://streamforge/media"),
        "{info}"
    );
    let clip = common::clip(
        "-f lavfi -i testsrc2=size=160x120:rate=30 -f lavfi -i sine=frequency=440 -t 3 \
         -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -movflags +faststart",
    )
    .await;

    // tus, in two PATCHes a moment apart: processing starts on the first.
    let http = reqwest::Client::new();
    let created = http
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", clip.len().to_string())
        .header("upload-metadata", "filename czMubXA0")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let half = clip.len() / 2;
    for (offset, piece) in [(0, &clip[..half]), (half, &clip[half..])] {
        let patched = http
            .patch(server.url(&location))
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(piece.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), 204);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let head = http
        .head(server.url(&location))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    let asset = head.headers()["x-asset-id"].to_str().unwrap().to_owned();
    let view = common::wait_for_asset(&server.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");

    let original = http
        .get(server.url(&format!("/api/assets/{asset}/original")))
        .send()
        .await
        .unwrap();
    assert_eq!(original.status(), 200);
    assert!(
        original.bytes().await.unwrap() == clip,
        "the original differs"
    );
    let probed = common::ffprobe(&server.url(&format!("/vod/{asset}/master.m3u8"))).await;
    let kinds: Vec<&str> = probed["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["codec_type"].as_str())
        .collect();
    assert!(
        kinds.contains(&"video") && kinds.contains(&"audio"),
        "{probed}"
    );
    let mpd = common::ffprobe(&server.url(&format!("/vod/{asset}/manifest.mpd"))).await;
    assert!(!mpd["streams"].as_array().unwrap().is_empty(), "{mpd}");

    // A server restarted on the bucket reprocesses nothing and still serves.
    let data = server.stop_keeping_data().await;
    let server = TestServer::start_in(data, |c| c.storage = storage.clone()).await;
    let probed = common::ffprobe(&server.url(&format!("/vod/{asset}/master.m3u8"))).await;
    assert!(!probed["streams"].as_array().unwrap().is_empty());
    server.stop().await;
}

/// Also with processing only once uploads are complete: ffmpeg still reads
/// the original from the bucket through the source server.
#[tokio::test]
async fn an_image_in_a_bucket_gets_its_renditions() {
    let garage = garage::Garage::start();
    let storage = garage.storage_url("images");
    let server = TestServer::start_with(|c| {
        c.storage = storage.clone();
        c.uploads.process_while_uploading = false;
    })
    .await;
    let image =
        common::clip("-f lavfi -i testsrc2=size=320x240 -frames:v 1 -f image2 -c:v png").await;
    let asset = common::upload(&server, "frame.png", image).await;
    let view = common::wait_for_asset(&server.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");
    let poster = view["poster_url"].as_str().expect("a poster");
    let fetched = reqwest::get(server.url(poster)).await.unwrap();
    assert_eq!(fetched.status(), 200, "{poster}");
    assert!(!fetched.bytes().await.unwrap().is_empty());
    server.stop().await;
}

/// A tus upload arriving into the bucket keeps its bytes there: a PATCH
/// whose checksum fails leaves nothing behind it, a restart of the server
/// mid-upload resumes from the pieces in the bucket (its tail read back),
/// the original is byte-identical, and no piece outlives the upload.
#[tokio::test]
async fn an_upload_in_progress_lives_in_the_bucket() {
    let garage = garage::Garage::start();
    let storage = garage.storage_url("pieces");
    let server = TestServer::start_with(|c| c.storage = storage.clone()).await;
    // 13 MiB that no two pieces share: a misplaced byte shows.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let payload: Vec<u8> = (0..13 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let http = reqwest::Client::new();
    let location = common::tus_create(&server, payload.len()).await;
    let patch = |server: &TestServer, range: std::ops::Range<usize>, checksum: Option<&str>| {
        let mut request = http
            .patch(server.url(&location))
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", range.start.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(payload[range].to_vec());
        if let Some(checksum) = checksum {
            request = request.header("upload-checksum", checksum);
        }
        request.send()
    };
    let mib = 1 << 20;
    assert_eq!(
        patch(&server, 0..3 * mib, None).await.unwrap().status(),
        204
    );
    // 6 MiB under a wrong checksum: written to the bucket as it came, then
    // dropped; the offset does not move.
    let wrong = patch(
        &server,
        3 * mib..9 * mib,
        Some("sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status(), 460);
    let offset = |server: &TestServer| {
        let head = http
            .head(server.url(&location))
            .header("tus-resumable", "1.0.0")
            .send();
        async move {
            let head = head.await.unwrap();
            head.headers()["upload-offset"].to_str().unwrap().to_owned()
        }
    };
    assert_eq!(offset(&server).await, (3 * mib).to_string());
    assert_eq!(
        patch(&server, 3 * mib..10 * mib, None)
            .await
            .unwrap()
            .status(),
        204
    );

    let data = server.stop_keeping_data().await;
    let server = TestServer::start_in(data, |c| c.storage = storage.clone()).await;
    assert_eq!(offset(&server).await, (10 * mib).to_string());
    let done = patch(&server, 10 * mib..payload.len(), None).await.unwrap();
    assert_eq!(done.status(), 204);
    let head = http
        .head(server.url(&location))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    let asset = head.headers()["x-asset-id"].to_str().unwrap().to_owned();
    let original = common::original_of(&server, &asset).await;
    assert!(original == payload, "the original differs");
    let bucket = streamforge_actors::storage::Storage::from_url(&storage).unwrap();
    let prefix = streamforge_actors::storage::ObjectKey::new("uploads").unwrap();
    let left = bucket.delete_prefix(&prefix).await.unwrap();
    assert_eq!(left, 0, "pieces outlived their upload");
    server.stop().await;
}
