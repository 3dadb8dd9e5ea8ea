//! WHIP ingest with Chromium's WebRTC stack as the publisher
//! (tests/peers/whip_publish.mjs): H.264 and Opus that ffprobe reads back
//! from the live HLS, a session ended by its DELETE, keyframes on request,
//! and requests the server refuses with a precise error. Glass-to-glass
//! latency through hls.js is in `live_players.rs`.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{
    TestServer, client, create_stream_key, create_stream_key_answer, error_of, ffprobe,
    stream_status, wait_until,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Chromium publishing `stream` over WHIP (see the script).
struct Publisher {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Publisher {
    fn start(server: &TestServer, stream: &str, key: &str, seconds: u32, codec: &str) -> Self {
        assert!(
            std::path::Path::new("/usr/bin/chromium").is_file()
                || std::env::var_os("CHROMIUM").is_some(),
            "chromium is missing: run scripts/setup --test"
        );
        let mut child = Command::new("node")
            .arg("tests/peers/whip_publish.mjs")
            .args([&server.url(""), stream, key, &seconds.to_string(), codec])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (scripts/setup --test)");
        let stdout = child.stdout.take().expect("stdout");
        Publisher {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The script's next JSON line.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("the publisher says something within 60 s")
            .expect("stdout readable")
            .expect("the publisher printed a line before it ended");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    async fn finish(mut self) {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the publisher ends")
            .expect("its status");
        assert!(status.success(), "whip_publish.mjs failed: {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_publishes_h264_and_opus_that_ffprobe_reads_back() {
    let server = TestServer::start().await;
    let created = create_stream_key_answer(&server, "studio").await;
    // The key's WHIP endpoint, as the web UI shows it.
    assert_eq!(created["whip_url"], "/whip/studio", "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let mut publisher = Publisher::start(&server, "studio", &key, 8, "h264");
    let answer = publisher.next().await;
    assert_eq!(answer["status"], 201, "{answer}");
    let location = answer["location"].as_str().expect("Location").to_owned();
    assert!(location.starts_with("/whip/studio/"), "{location}");
    let sdp = answer["body"].as_str().unwrap();
    assert!(sdp.contains("a=ice-lite"), "an SDP answer: {answer}");
    // Lost packets can be asked for (NACK) and sent again on their own
    // stream (RTX), and a lost keyframe asked for (PLI).
    for wanted in ["rtx/90000", "nack", "nack pli"] {
        assert!(sdp.contains(wanted), "{wanted} in the answer: {sdp}");
    }
    assert!(
        publisher.next().await["connected"].is_u64(),
        "ICE and DTLS connected"
    );
    wait_until("the stream is playable", async || {
        stream_status(&server, "studio").await["playable"] == true
    })
    .await;
    let status = stream_status(&server, "studio").await;
    assert_eq!(status["protocol"], "whip");
    let codecs = status["codecs"].as_array().unwrap();
    assert!(codecs[0].as_str().unwrap().starts_with("avc1."), "{status}");
    assert_eq!(codecs[1], "opus", "{status}");

    // Another publisher of the stream while it is live: refused, and the
    // first goes on.
    let mut second = Publisher::start(&server, "studio", &key, 1, "h264");
    let refused = second.next().await;
    assert_eq!(refused["status"], 409, "{refused}");
    second.finish().await;

    let probe = ffprobe(&server.url("/live/studio/master.m3u8")).await;
    let streams = probe["streams"].as_array().unwrap();
    let video = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(320), Some(240))
    );
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").unwrap();
    assert_eq!(audio["codec_name"], "opus");
    assert_eq!(audio["sample_rate"], "48000");

    trickle(&server, &location).await;
    let metrics = common::get_text(&server, "/metrics").await;
    assert!(
        metrics.contains("webrtc_datagrams_dropped_total 0"),
        "no datagram dropped on loopback, and the counter is there"
    );

    let done = publisher.next().await;
    assert_eq!(done["deleted"], 200, "{done}");
    // Chromium encodes a keyframe only when asked (its first, and after a
    // loss): the server asked every segment duration (2 s) over 8 s.
    let keyframes = done["stats"]["keyFramesEncoded"].as_u64().unwrap_or(0);
    assert!(keyframes >= 3, "{done}");
    publisher.finish().await;
    wait_until("the publish ends", async || {
        stream_status(&server, "studio").await["live"] == false
    })
    .await;
    let status = stream_status(&server, "studio").await;
    assert_eq!(status["last_error"], Value::Null, "{status}");
    // The session is gone with its DELETE.
    wait_until("the session is gone", async || {
        let again = client().delete(server.url(&location)).send().await.unwrap();
        again.status() == 404
    })
    .await;
    server.stop().await;
}

/// Trickle ICE on a live session (RFC 8840 fragments): a candidate is
/// taken, another ICE session's tag or new credentials are refused.
async fn trickle(server: &TestServer, location: &str) {
    let id = location.rsplit('/').next().unwrap();
    let tag = format!("\"{id}\"");
    let patch = |if_match: String, fragment: &'static str| {
        client()
            .patch(server.url(location))
            .header("Content-Type", "application/trickle-ice-sdpfrag")
            .header("If-Match", if_match)
            .body(fragment)
            .send()
    };
    let candidate = "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n";
    assert_eq!(patch(tag.clone(), candidate).await.unwrap().status(), 204);
    let stale = patch("\"another\"".to_owned(), candidate).await.unwrap();
    assert_eq!(stale.status(), 412);
    let restart = patch(
        tag,
        "a=ice-ufrag:fresh\r\na=ice-pwd:0123456789012345678901\r\n",
    )
    .await
    .unwrap();
    assert_eq!(restart.status(), 422);
    assert_eq!(error_of(restart).await.0, "ice_restart_unsupported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_the_server_cannot_take_are_refused_with_the_reason() {
    let server = TestServer::start().await;
    let key = create_stream_key(&server, "cam").await;
    let http = client();
    let post = |auth: Option<String>, content_type: &'static str, body: &'static str| {
        let mut request = http
            .post(server.url("/whip/cam"))
            .header("Content-Type", content_type)
            .body(body);
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        request.send()
    };
    // No key, a wrong one.
    for auth in [None, Some("Bearer sk_wrong".to_owned())] {
        let response = post(auth, "application/sdp", "v=0\r\n").await.unwrap();
        assert_eq!(response.status(), 401);
        assert!(response.headers().contains_key("www-authenticate"));
        assert_eq!(error_of(response).await.0, "unauthorized");
    }
    let bearer = Some(format!("Bearer {key}"));
    let response = post(bearer.clone(), "text/plain", "v=0\r\n").await.unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(error_of(response).await.0, "unsupported_media_type");
    let response = post(bearer, "application/sdp", "not an sdp").await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(error_of(response).await.0, "bad_offer");
    // Sessions that do not exist.
    let response = http
        .delete(server.url("/whip/cam/0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = http
        .patch(server.url("/whip/cam/0123456789abcdef"))
        .header("Content-Type", "application/trickle-ice-sdpfrag")
        .body("a=ice-ufrag:x\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // Chromium offering VP8 video alone: nothing the packager takes. (VP8
    // beside Opus publishes the audio alone.)
    let mut vp8 = Publisher::start(&server, "cam", &key, 1, "vp8");
    let refused = vp8.next().await;
    assert_eq!(refused["status"], 400, "{refused}");
    let body: Value = serde_json::from_str(refused["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media", "{body}");
    vp8.finish().await;
    // Nothing was published, and the server still takes a good one.
    assert_ne!(stream_status(&server, "cam").await["live"], true);
    let mut good = Publisher::start(&server, "cam", &key, 1, "h264");
    assert_eq!(good.next().await["status"], 201);
    assert!(good.next().await["connected"].is_u64());
    assert_eq!(good.next().await["deleted"], 200);
    good.finish().await;
    server.stop().await;
}
