//! Several nodes on one PostgreSQL database (each its own ports and data
//! directory): the node registry lists them with their state, an SSE
//! client on one node sees the events another node produced, a node id
//! another live node holds is refused, and with a shared bucket an upload
//! taken by an API node is processed by a worker node.

mod common;
#[path = "support/garage.rs"]
mod garage;
#[path = "support/postgres.rs"]
mod postgres;

use std::time::Duration;

use common::{SseReader, TestServer};
use futures::StreamExt;
use serde_json::Value;
use streamforge_actors::cluster::Role;
use streamforge_actors::db::Database;
use streamforge_actors::storage::{ObjectKey, Storage};
use streamforge_protocols::package::Checkpoint;

async fn nodes_of(server: &TestServer) -> Value {
    reqwest::get(server.url("/api/nodes"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// ffmpeg decodes `url` to the end without a word on standard error;
/// the presentation time of every frame, in order.
async fn decoded_frames(url: &str) -> Vec<i64> {
    decoded_streams(url)
        .await
        .into_iter()
        .map(|(_, pts)| pts)
        .collect()
}

/// [`decoded_frames`] with each frame's output stream.
async fn decoded_streams(url: &str) -> Vec<(u32, i64)> {
    let decoded = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i", url, "-f", "framemd5", "-"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&decoded.stderr);
    assert!(
        decoded.status.success() && stderr.trim().is_empty(),
        "{url}: {stderr}"
    );
    String::from_utf8_lossy(&decoded.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let mut fields = l.split(',').map(str::trim);
            let stream = fields.next().unwrap().parse().unwrap();
            let _dts = fields.next();
            (stream, fields.next().unwrap().parse().unwrap())
        })
        .collect()
}

fn node<'a>(nodes: &'a Value, id: &str) -> &'a Value {
    nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("node {id} in {nodes}"))
}

/// One PostgreSQL database and one Garage bucket, shared by the nodes of
/// a test; each node gets its own data directory and ports.
struct Shared {
    _postgres: postgres::Postgres,
    _garage: garage::Garage,
    database: String,
    storage: String,
}

impl Shared {
    fn start() -> Self {
        let postgres = postgres::Postgres::start();
        let database = postgres.database("streamforge");
        let garage = garage::Garage::start();
        let storage = garage.storage_url("media");
        Shared {
            _postgres: postgres,
            _garage: garage,
            database,
            storage,
        }
    }

    /// The configuration of node `id` with `roles`, on the shared state.
    fn node(
        &self,
        id: &'static str,
        roles: &[Role],
    ) -> impl FnOnce(&mut streamforge::config::Config) + use<> {
        let (database, storage, roles) =
            (self.database.clone(), self.storage.clone(), roles.to_vec());
        move |c| {
            c.database = database;
            c.storage = storage;
            c.node.id = id.to_owned();
            c.node.roles = roles;
        }
    }
}

#[tokio::test]
async fn nodes_on_one_database_share_their_registry_and_events() {
    let cluster = postgres::Postgres::start();
    let database = cluster.database("streamforge");
    let on = |id: &'static str| {
        let database = database.clone();
        move |c: &mut streamforge::config::Config| {
            c.database = database;
            c.node.id = id.to_owned();
        }
    };
    let a = TestServer::start_with(on("node-a")).await;
    let b = TestServer::start_with(on("node-b")).await;

    let nodes = nodes_of(&a).await;
    assert_eq!(nodes["node"], "node-a");
    for (id, server) in [("node-a", &a), ("node-b", &b)] {
        let n = node(&nodes, id);
        assert_eq!(n["state"], "up", "{n}");
        assert_eq!(n["advertise"], server.url(""), "{n}");
        assert!(n["load"]["uploads"].is_i64(), "{n}");
    }

    // The upload goes to B; an SSE client for it and a WebSocket for
    // every event are on A.
    let clip = common::clip(
        "-f lavfi -i testsrc2=size=160x120:rate=30 -t 1 -c:v libx264 -preset ultrafast -pix_fmt yuv420p",
    )
    .await;
    let http = reqwest::Client::new();
    let location = common::tus_create(&b, clip.len()).await;
    let upload = location.rsplit('/').next().unwrap().to_owned();
    let response = http
        .get(a.url(&format!("/api/assets/{upload}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut sse = SseReader {
        body: Box::pin(response.bytes_stream()),
        buffer: String::new(),
    };
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/events", a.addr))
        .await
        .unwrap();
    let patched = http
        .patch(b.url(&location))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(clip.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 204);
    let asset = loop {
        let stage = sse.until("stage").await;
        assert_ne!(stage["stage"], "failed", "{stage}");
        if stage["stage"] == "ready" {
            assert_eq!(stage["upload_id"], upload.as_str());
            break stage["asset_id"].as_str().unwrap().to_owned();
        }
    };
    let mut seen = Vec::new();
    while !seen.contains(&"ready".to_owned()) {
        let message = tokio::time::timeout(std::time::Duration::from_secs(30), socket.next())
            .await
            .expect("B's events reach A's WebSocket")
            .expect("the socket stays open")
            .unwrap();
        let event: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        if event["type"] == "upload_progress" {
            assert_eq!(event["upload_id"], upload.as_str());
            seen.push("upload_progress".to_owned());
        } else if event["type"] == "stage" && event["asset_id"] == asset.as_str() {
            seen.push(event["stage"].as_str().unwrap().to_owned());
        }
    }
    assert!(seen.contains(&"upload_progress".to_owned()), "{seen:?}");
    socket.close(None).await.unwrap();
    // A knows the asset too: the state is shared.
    let view: Value = reqwest::get(a.url(&format!("/api/assets/{asset}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "ready", "{view}");

    // A third server may not take a live node's id.
    let taken = streamforge::server::start({
        let mut config = streamforge::config::Config {
            data_dir: tempfile::tempdir().unwrap().keep(),
            ..streamforge::config::Config::default()
        };
        config.http.listen = "127.0.0.1:0".parse().unwrap();
        config.live.rtmp_listen = "127.0.0.1:0".parse().unwrap();
        config.live.rtsp_listen = "127.0.0.1:0".parse().unwrap();
        config.live.rtsp_udp_ports = [0, 0];
        config.live.srt_listen = "127.0.0.1:0".parse().unwrap();
        config.live.webrtc_listen = "127.0.0.1:0".parse().unwrap();
        on("node-b")(&mut config);
        config
    })
    .await;
    match taken {
        Ok(_) => panic!("a second node-b started"),
        Err(err) => assert!(err.to_string().contains("in use"), "{err}"),
    }

    // B stops cleanly: A sees it stopped.
    b.stop().await;
    let nodes = nodes_of(&a).await;
    assert_eq!(node(&nodes, "node-b")["state"], "stopped");
    a.stop().await;
}

#[tokio::test]
async fn a_single_node_lists_itself_under_a_kept_id() {
    let server = TestServer::start().await;
    let nodes = nodes_of(&server).await;
    let id = nodes["node"].as_str().unwrap().to_owned();
    assert!(id.starts_with("node-"), "{nodes}");
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(node(&nodes, &id)["state"], "up");
    // A restart keeps the id.
    let data = server.stop_keeping_data().await;
    let server = TestServer::start_in(data, |_| {}).await;
    assert_eq!(nodes_of(&server).await["node"], id.as_str());
    server.stop().await;
}

#[tokio::test]
async fn an_api_node_queues_and_a_worker_node_processes_from_the_bucket() {
    let shared = Shared::start();
    let on = |id, roles| shared.node(id, roles);
    let api = TestServer::start_with(on("api", &[Role::Api])).await;
    assert!(
        api.running.as_ref().unwrap().rtmp_addr().is_none(),
        "no ingest role, no RTMP"
    );
    let clip = common::clip(
        "-f lavfi -i testsrc2=size=160x120:rate=30 -f lavfi -i sine -t 2 -c:v libx264 \
         -preset ultrafast -pix_fmt yuv420p -c:a aac -movflags +faststart",
    )
    .await;
    let asset = common::upload(&api, "queued.mp4", clip.clone()).await;
    // No worker yet: the job waits in the queue.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let view: Value = reqwest::get(api.url(&format!("/api/assets/{asset}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "uploaded", "{view}");

    let worker = TestServer::start_with(on("worker", &[Role::Worker])).await;
    let refused = reqwest::get(worker.url("/api/assets")).await.unwrap();
    assert_eq!(refused.status(), 503);
    let (code, _) = common::error_of(refused).await;
    assert_eq!(code, "not_served");
    let view = common::wait_for_asset(&api.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");
    let probed = common::ffprobe(&api.url(&format!("/vod/{asset}/master.m3u8"))).await;
    assert_eq!(probed["streams"].as_array().unwrap().len(), 2, "{probed}");
    let original = reqwest::get(api.url(&format!("/api/assets/{asset}/original")))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(original == clip, "the original differs");
    let nodes = nodes_of(&api).await;
    assert_eq!(
        node(&nodes, "worker")["roles"],
        serde_json::json!(["worker"])
    );
    assert_eq!(node(&nodes, "api")["roles"], serde_json::json!(["api"]));
    // A node that never touched the asset serves it to real players.
    let viewer = TestServer::start_with(on("viewer", &[Role::Api])).await;
    let probed = common::ffprobe(&viewer.url(&format!("/vod/{asset}/master.m3u8"))).await;
    assert_eq!(probed["streams"].as_array().unwrap().len(), 2, "{probed}");
    common::vod_players(&viewer.url(""), &asset, 1).await;
    viewer.stop().await;
    worker.stop().await;
    api.stop().await;
}

/// kill -9 of the worker node in the middle of a transcode: its lease runs
/// out, another worker claims the job and goes on after the segments the
/// first one stored (not from zero), and a rung finished before the kill
/// is not made again; the asset becomes ready and every frame decodes
/// once; the killed node shows `lost`.
#[tokio::test]
async fn a_killed_workers_job_is_claimed_by_another_worker() {
    let shared = Shared::start();
    let (database, storage) = (&shared.database, &shared.storage);
    let api = TestServer::start_with(shared.node("api", &[Role::Api])).await;
    // Long enough that the first worker is still encoding when killed.
    let clip = common::clip(
        "-f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine -t 20 -c:v libx264 \
         -preset ultrafast -pix_fmt yuv420p -c:a aac -movflags +faststart",
    )
    .await;
    let asset = common::upload(&api, "failover.mp4", clip).await;

    let data = tempfile::tempdir().unwrap();
    let (mut first, _) = common::spawn_server(
        data.path(),
        &[
            ("STREAMFORGE_DATABASE", database.as_str()),
            ("STREAMFORGE_STORAGE", storage.as_str()),
            ("STREAMFORGE_NODE_ID", "worker-1"),
            ("STREAMFORGE_NODE_ROLES", "[\"worker\"]"),
        ],
    )
    .await;
    // Killed once the 360p rung has stored segments and its checkpoint.
    let bucket = Storage::from_url(storage).unwrap();
    let media =
        |path: &str| ObjectKey::new(format!("assets/{asset}/media/360p-v1/{path}")).unwrap();
    common::wait_until("worker-1 stores 360p segments", async || {
        bucket.head(&media("checkpoint")).await.unwrap().is_some()
    })
    .await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let killed = std::time::SystemTime::now();
    let base = api.url("");

    let second = TestServer::start_with(shared.node("worker-2", &[Role::Worker])).await;
    let view = common::wait_for_asset(&base, &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");
    let probed = common::ffprobe(&api.url(&format!("/vod/{asset}/master.m3u8"))).await;
    let duration: f64 = probed["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((duration - 20.0).abs() < 0.5, "{probed}");
    // worker-2 went on after worker-1's segments instead of making them
    // again, and the seam does not show: every frame decodes.
    let first_segment = bucket.head(&media("seg-00001.m4s")).await.unwrap().unwrap();
    let playlist = reqwest::get(api.url(&format!("/vod/{asset}/360p-v1/media.m3u8")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let last = playlist.lines().rfind(|l| l.ends_with(".m4s")).unwrap();
    let last_segment = bucket.head(&media(last)).await.unwrap().unwrap();
    assert!(
        first_segment.last_modified <= killed,
        "segment 1 was made again"
    );
    assert!(last_segment.last_modified > killed);
    assert!(bucket.head(&media("checkpoint")).await.unwrap().is_none());
    let frames = decoded_frames(&api.url(&format!("/vod/{asset}/360p-v1/media.m3u8"))).await;
    assert_eq!(
        frames.len(),
        600,
        "20 s at 30 fps, no frame twice or missing"
    );
    // The audio rung too: made before the kill (or resumed after its
    // stored segments), not made again; its frames follow each other.
    let audio =
        |path: &str| ObjectKey::new(format!("assets/{asset}/media/audio-a1/{path}")).unwrap();
    let first_audio = bucket.head(&audio("seg-00001.m4s")).await.unwrap().unwrap();
    assert!(
        first_audio.last_modified <= killed,
        "audio segment 1 was made again"
    );
    let pts = decoded_frames(&api.url(&format!("/vod/{asset}/audio-a1/media.m3u8"))).await;
    let steps: std::collections::BTreeSet<i64> = pts.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(steps.len(), 1, "audio steps {steps:?}");
    assert!(
        (936..=940).contains(&pts.len()),
        "{} AAC frames in 20 s",
        pts.len()
    );
    let nodes = nodes_of(&api).await;
    assert_eq!(node(&nodes, "worker-1")["state"], "lost", "{nodes}");
    second.stop().await;
    api.stop().await;
}

/// A tus upload whose PATCHes alternate between two nodes: the node that
/// does not hold the upload forwards them to the one that does, offsets
/// agree on both, a wrong offset gets its 409 through the forward, and the
/// original is byte-identical; with the holder stopped the other node takes
/// the upload over from its pieces in the bucket; worker C, the only
/// worker, makes it ready.
#[tokio::test]
async fn patches_alternating_between_nodes_make_one_upload() {
    let shared = Shared::start();
    let on = |id| shared.node(id, &[Role::Api]);
    let a = TestServer::start_with(on("node-a")).await;
    let b = TestServer::start_with(on("node-b")).await;
    // The only worker: it makes the asset ready.
    let c = TestServer::start_with(shared.node("node-c", &[Role::Worker])).await;
    let clip = common::clip(
        "-f lavfi -i testsrc2=size=160x120:rate=30 -f lavfi -i sine -t 2 -c:v libx264 \
         -preset ultrafast -pix_fmt yuv420p -c:a aac -movflags +faststart",
    )
    .await;
    let http = reqwest::Client::new();
    let location = common::tus_create(&a, clip.len()).await;
    let patch = |server: &TestServer, offset: usize, bytes: &[u8]| {
        http.patch(server.url(&location))
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(bytes.to_vec())
            .send()
    };
    let head = |server: &TestServer| {
        http.head(server.url(&location))
            .header("tus-resumable", "1.0.0")
            .send()
    };
    let piece = clip.len() / 4 + 1;
    let pieces: Vec<(usize, &[u8])> = clip
        .chunks(piece)
        .enumerate()
        .map(|(i, c)| (i * piece, c))
        .collect();
    // B, A, B: the first piece is forwarded.
    for (i, (offset, bytes)) in pieces[..3].iter().enumerate() {
        let server = if i % 2 == 0 { &b } else { &a };
        let answer = patch(server, *offset, bytes).await.unwrap();
        assert_eq!(answer.status(), 204, "piece {i}");
        let end = (offset + bytes.len()).to_string();
        assert_eq!(answer.headers()["upload-offset"], end.as_str());
        for server in [&a, &b] {
            let seen = head(server).await.unwrap();
            assert_eq!(seen.headers()["upload-offset"], end.as_str());
        }
    }
    // A wrong offset through B: A's 409 comes back, nothing is written.
    let (offset, bytes) = pieces[3];
    let wrong = patch(&b, offset - 1, bytes).await.unwrap();
    assert_eq!(wrong.status(), 409);
    // The holder stops: its bytes are in the bucket, so B takes the upload
    // over (reading A's tail back) and the last piece completes it.
    let data_a = a.stop_keeping_data().await;
    let done = patch(&b, offset, bytes).await.unwrap();
    assert_eq!(done.status(), 204);
    // A, back, agrees: the piece again is at a stale offset.
    let a = TestServer::start_in(data_a, on("node-a")).await;
    let again = patch(&a, offset, bytes).await.unwrap();
    assert_eq!(again.status(), 409);
    let seen = head(&a).await.unwrap();
    assert_eq!(
        seen.headers()["upload-offset"],
        clip.len().to_string().as_str()
    );
    let asset = head(&b).await.unwrap().headers()["x-asset-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let original = common::original_of(&b, &asset).await;
    assert!(original == clip, "the original differs");
    let view = common::wait_for_asset(&b.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");
    c.stop().await;
    b.stop().await;
    a.stop().await;
}

/// Processing while the upload arrives, on another node: an `api`-only
/// node takes a slow tus upload, a `worker`-only node reads it as it
/// arrives (its pieces in the bucket) and the preview plays before the
/// upload is complete.
#[tokio::test]
async fn a_worker_elsewhere_processes_an_upload_while_it_arrives() {
    let shared = Shared::start();
    let on = |id, roles| shared.node(id, roles);
    let api = TestServer::start_with(on("api", &[Role::Api])).await;
    let worker = TestServer::start_with(on("worker", &[Role::Worker])).await;
    let clip = common::clip(
        "-f lavfi -i testsrc2=size=160x120:rate=30 -f lavfi -i sine -t 8 -c:v libx264 \
         -preset ultrafast -pix_fmt yuv420p -c:a aac -movflags +faststart",
    )
    .await;
    let http = reqwest::Client::new();
    let created = http
        .post(api.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", clip.len().to_string())
        .send()
        .await
        .unwrap();
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    // 8 KiB every 100 ms, in one PATCH.
    let body = common::trickle(&clip, 8 * 1024, std::time::Duration::from_millis(100));
    let patch = tokio::spawn(
        http.patch(api.url(&location))
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", "0")
            .header("content-type", "application/offset+octet-stream")
            .body(body)
            .send(),
    );
    let mut previewed_at = None;
    for _ in 0..600 {
        let head = http
            .head(api.url(&location))
            .header("tus-resumable", "1.0.0")
            .send()
            .await
            .unwrap();
        let offset: usize = head.headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        if let Some(asset) = head.headers().get("x-asset-id") {
            let asset = asset.to_str().unwrap();
            let master = http
                .get(api.url(&format!("/vod/{asset}/master.m3u8")))
                .send()
                .await
                .unwrap();
            if master.status() == 200 && offset < clip.len() {
                previewed_at = Some((asset.to_owned(), offset));
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (asset, offset) = previewed_at.expect("a preview before the upload was complete");
    eprintln!("preview with {offset} of {} bytes", clip.len());
    assert_eq!(patch.await.unwrap().unwrap().status(), 204);
    let view = common::wait_for_asset(&api.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");
    let probed = common::ffprobe(&api.url(&format!("/vod/{asset}/master.m3u8"))).await;
    let duration: f64 = probed["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((duration - 8.0).abs() < 0.2, "{probed}");
    worker.stop().await;
    api.stop().await;
}

/// A rolling restart of both nodes while an upload arrives and its asset
/// is transcoded: each node stops (cleanly) and comes back in turn; the
/// upload goes on through the other node, which takes it over from its
/// pieces in the bucket; the job goes back to the queue, the other node
/// claims it and goes on after the stored segments. Nothing is lost: the
/// original is byte-identical and every frame decodes once; no segment
/// stored before the restarts was made again.
#[tokio::test]
async fn a_rolling_restart_loses_no_upload_byte_and_no_segment() {
    let shared = Shared::start();
    let on = |id| shared.node(id, &[Role::Api, Role::Worker]);
    let a = TestServer::start_with(on("node-a")).await;
    let b = TestServer::start_with(on("node-b")).await;
    let clip = common::clip(
        "-f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine -t 20 -c:v libx264 \
         -preset ultrafast -pix_fmt yuv420p -c:a aac -movflags +faststart",
    )
    .await;
    let http = reqwest::Client::new();
    let location = common::tus_create(&a, clip.len()).await;
    let patch = |server: &TestServer, range: std::ops::Range<usize>| {
        http.patch(server.url(&location))
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", range.start.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(clip[range].to_vec())
            .send()
    };
    let (first, second) = (clip.len() * 6 / 10, clip.len() * 8 / 10);
    assert_eq!(patch(&a, 0..first).await.unwrap().status(), 204);
    let head = http
        .head(a.url(&location))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    let asset = head.headers()["x-asset-id"].to_str().unwrap().to_owned();

    // Transcoding from the upload as it arrives; the 360p rung has stored
    // segments when each node goes.
    let bucket = Storage::from_url(&shared.storage).unwrap();
    let media =
        |path: &str| ObjectKey::new(format!("assets/{asset}/media/360p-v1/{path}")).unwrap();
    let stored = async || match bucket.read_all(&media("checkpoint")).await {
        Ok(text) => Checkpoint::parse(&String::from_utf8_lossy(&text))
            .unwrap()
            .segments(),
        Err(_) => 0,
    };
    // Made before `mark` (Last-Modified has whole seconds: anything made
    // again after the pause shows a later second).
    let marked = async |after: usize| {
        let mut count = 0;
        common::wait_until("more 360p segments stored", async || {
            count = stored().await;
            count > after
        })
        .await;
        let mark = std::time::SystemTime::now();
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        (count, mark)
    };
    let mut made_before = vec![marked(0).await];

    // A goes: B takes the upload over, claims the job A gave back and
    // goes on after A's segments.
    let db = Database::open(&shared.database).await.unwrap();
    let runs_on = async |node: &str| {
        common::wait_until(&format!("the job runs on {node}"), async || {
            db.job_owner(&asset).await.unwrap().as_deref() == Some(node)
        })
        .await
    };
    runs_on("node-a").await;
    let data_a = a.stop_keeping_data().await;
    assert_eq!(patch(&b, first..second).await.unwrap().status(), 204);
    runs_on("node-b").await;
    made_before.push(marked(stored().await).await);
    let a = TestServer::start_in(data_a, on("node-a")).await;
    // B goes: A takes the upload over and completes it, and the job back.
    let data_b = b.stop_keeping_data().await;
    runs_on("node-a").await;
    assert_eq!(patch(&a, second..clip.len()).await.unwrap().status(), 204);
    let b = TestServer::start_in(data_b, on("node-b")).await;

    let view = common::wait_for_asset(&b.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");
    let original = common::original_of(&b, &asset).await;
    assert!(original == clip, "the original differs");
    for (count, mark) in made_before {
        for number in 1..=count {
            let segment = bucket
                .head(&media(&format!("seg-{number:05}.m4s")))
                .await
                .unwrap()
                .unwrap();
            assert!(
                segment.last_modified <= mark,
                "360p segment {number} of the {count} stored before a restart was made again"
            );
        }
    }
    let frames = decoded_frames(&a.url(&format!("/vod/{asset}/360p-v1/media.m3u8"))).await;
    assert_eq!(
        frames.len(),
        600,
        "20 s at 30 fps, no frame twice or missing"
    );
    let probed = common::ffprobe(&a.url(&format!("/vod/{asset}/master.m3u8"))).await;
    assert_eq!(probed["streams"].as_array().unwrap().len(), 2, "{probed}");
    a.stop().await;
    b.stop().await;
}

/// Segment-parallel encoding: the 360p and 240p rungs of a 36 s upload are
/// cut into four spans (about 12 s each, a multiple of the two workers)
/// that two workers encode (one span at a time each, both rungs' chunks and
/// the storyboard's tiles of it from one decode); each rung plays as one:
/// one header, every frame once, timestamps evenly spaced across the seams;
/// the storyboard laid out from the spans' tiles matches one made by ffmpeg
/// from the whole clip. Both workers take their share because queued work
/// wakes them (`NOTIFY`), long before they would look on their own.
#[tokio::test]
async fn a_long_rung_is_encoded_in_chunks_by_two_workers() {
    let shared = Shared::start();
    let chunked = |id: &'static str, roles: &'static [Role]| {
        let node = shared.node(id, roles);
        move |c: &mut streamforge::config::Config| {
            node(c);
            c.transcode.chunk_seconds = 12;
            c.transcode.chunk_slots = 1;
            // Workers look for work on their own only every 7.5 s: a
            // worker takes a job or a span at once only when woken.
            c.transcode.claim_every = Duration::from_millis(7500);
            // Processing starts with the whole upload stored: a source
            // still arriving is not cut (woken at once, a worker would
            // otherwise often start on the upload's first bytes).
            c.uploads.process_while_uploading = false;
            c.transcode.ladder = [(240, 300), (360, 800)]
                .map(
                    |(height, video_kbps)| streamforge_actors::transcode::LadderRung {
                        height,
                        video_kbps,
                        audio_kbps: 64,
                    },
                )
                .to_vec();
        }
    };
    let api = TestServer::start_with(chunked("api", &[Role::Api])).await;
    let clip = common::clip(
        "-f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine -t 36 -c:v libx264 \
         -preset ultrafast -pix_fmt yuv420p -c:a aac -movflags +faststart",
    )
    .await;
    // A ladder is cut into chunks only while more than one worker is up.
    let first = TestServer::start_with(chunked("worker-1", &[Role::Worker])).await;
    let second = TestServer::start_with(chunked("worker-2", &[Role::Worker])).await;
    // Every chunk is announced on every node as it is done (the rungs
    // waiting for them join at once): watched here on the api node, which
    // made none.
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/events", api.addr))
        .await
        .unwrap();
    let asset = common::upload(&api, "long.mp4", clip.clone()).await;
    let db = Database::open(&shared.database).await.unwrap();
    let chunks = async || db.chunk_tasks_of(&asset, "360p").await.unwrap();
    let view = common::wait_for_asset(&api.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");
    let mut announced = std::collections::BTreeSet::new();
    while announced.len() < 13 {
        let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(5), socket.next()).await
        else {
            break;
        };
        let event: Value = serde_json::from_str(message.unwrap().to_text().unwrap()).unwrap();
        if event["type"] == "chunk_done" && event["asset_id"] == asset.as_str() {
            let of = |key: &str| event[key].as_str().unwrap().to_owned();
            announced.insert((of("rung"), event["chunk"].as_i64().unwrap(), of("node")));
        }
    }
    // Four spans of 240p, 360p and the storyboard's tiles, and the audio.
    assert_eq!(announced.len(), 13, "{announced:?}");
    let by_nodes: std::collections::BTreeSet<_> = announced.iter().map(|a| &a.2).collect();
    assert_eq!(by_nodes.len(), 2, "{announced:?}");

    let done = chunks().await;
    assert_eq!(done.len(), 4, "{done:?}");
    assert!(done.iter().all(|c| c.state == "joined"), "{done:?}");
    let workers: std::collections::BTreeSet<_> =
        done.iter().filter_map(|c| c.done_by.as_deref()).collect();
    assert_eq!(workers.len(), 2, "both workers encoded chunks: {done:?}");
    // Each span's 240p chunk was encoded with its 360p chunk.
    let smaller = db.chunk_tasks_of(&asset, "240p").await.unwrap();
    let by = |c: &[streamforge_actors::transcode::chunks::ChunkState]| {
        c.iter().map(|c| c.done_by.clone()).collect::<Vec<_>>()
    };
    assert_eq!(by(&smaller), by(&done), "{smaller:?}");
    // And the storyboard's tiles of each span (the first span's worker
    // recorded the poster).
    let thumbnails = db.chunk_tasks_of(&asset, "thumbnails").await.unwrap();
    assert_eq!(by(&thumbnails), by(&done), "{thumbnails:?}");
    // The audio, whole, is a task of its own that a worker took once the
    // spans were claimed; it plays the whole 36 s without a gap.
    let audio = db.chunk_tasks_of(&asset, "audio").await.unwrap();
    assert_eq!(audio.len(), 1, "{audio:?}");
    assert_eq!(audio[0].state, "joined", "{audio:?}");
    assert!(audio[0].done_by.is_some(), "{audio:?}");
    let sound = decoded_frames(&api.url(&format!("/vod/{asset}/audio-a1/media.m3u8"))).await;
    let steps: std::collections::BTreeSet<i64> = sound.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(steps.len(), 1, "the audio jumps: steps {steps:?}");
    let heard = (sound.len() - 1) as i64 * steps.first().copied().unwrap_or(0);
    assert!(
        (35_900..=36_200).contains(&(heard * 1000 / 48_000)),
        "{} audio frames, {heard} ticks",
        sound.len()
    );
    let poster = view["poster_url"].as_str().expect("a poster");
    assert_eq!(reqwest::get(api.url(poster)).await.unwrap().status(), 200);
    let vtt = reqwest::get(api.url(&format!("/vod/{asset}/storyboard.vtt")))
        .await
        .unwrap();
    assert_eq!(vtt.status(), 200);
    assert_eq!(vtt.text().await.unwrap().matches("#xywh=").count(), 18);
    let sprite = reqwest::get(api.url(&format!("/vod/{asset}/storyboard.webp")))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    // 18 tiles of 160x90 (the picture on screen every 2 s), ten to a row:
    // against one decode of the whole clip, a tile out of place would cost
    // far more than WebP's loss (21 dB against 40 when measured).
    let tiles = "fps=fps=1/2:round=up,scale=160:90,tile=10x2";
    let psnr = common::psnr_against(&sprite, &clip, tiles).await;
    assert!(
        psnr > 30.0,
        "storyboard PSNR {psnr} dB against ffmpeg's own"
    );

    let playlist_url = api.url(&format!("/vod/{asset}/360p-v1/media.m3u8"));
    let playlist = reqwest::get(&playlist_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(playlist.matches("#EXT-X-MAP").count(), 1, "{playlist}");
    assert_eq!(playlist.matches(".m4s").count(), 9, "{playlist}");
    let pts = decoded_frames(&playlist_url).await;
    assert_eq!(pts.len(), 1080, "36 s at 30 fps, no frame twice or missing");
    let steps: std::collections::BTreeSet<i64> = pts.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(steps.len(), 1, "timestamps jump at a seam: steps {steps:?}");
    let smaller_url = api.url(&format!("/vod/{asset}/240p-v1/media.m3u8"));
    let smaller = reqwest::get(&smaller_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(smaller.matches(".m4s").count(), 9, "{smaller}");
    assert_eq!(
        decoded_frames(&smaller_url).await,
        pts,
        "the rungs' frames line up"
    );
    common::vod_players(&api.url(""), &asset, 1).await;
    second.stop().await;
    first.stop().await;
    api.stop().await;
}

/// The chunk queue on SQLite and on PostgreSQL: a span is claimed with
/// every rung's chunk of it (the storyboard's tiles too); queuing the same
/// chunks again leaves running ones alone; the cut of chunks still queued,
/// running or done is what a job run again keeps, and joined chunks make
/// none.
#[tokio::test]
async fn the_chunk_queue_claims_whole_spans_and_keeps_its_cut() {
    use streamforge_actors::transcode::RungSpec;
    let postgres = postgres::Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("state.db").display());
    for url in [sqlite, postgres.database("chunks")] {
        let db = Database::open(&url).await.unwrap();
        let cut = [(0, Some(16_000)), (16_000, None)];
        let video = RungSpec::Video {
            height: 720,
            kbps: 2500,
        };
        let thumbnails = RungSpec::Thumbnails {
            tile_width: 160,
            tile_height: 90,
            interval_ms: 2000,
            duration_ms: 30_000,
        };
        assert_eq!(db.chunk_cut("a1").await.unwrap(), None, "{url}");
        for spec in [&video, &thumbnails] {
            db.add_chunk_tasks("a1", spec, &cut).await.unwrap();
        }
        assert_eq!(db.chunk_cut("a1").await.unwrap(), Some(cut.to_vec()));
        // The audio, a task of the whole source: no span of the cut, and
        // claimed only after every span, alone.
        let audio = RungSpec::Audio { kbps: 128 };
        db.add_chunk_tasks("a1", &audio, &[(0, None)])
            .await
            .unwrap();
        assert_eq!(db.chunk_cut("a1").await.unwrap(), Some(cut.to_vec()));

        let first = db.claim_chunk_tasks("w1", 1).await.unwrap();
        assert_eq!(first.len(), 1, "{url}");
        assert_eq!((first[0].rung.as_str(), first[0].chunk), ("720p", 0));
        let siblings = db.claim_chunk_siblings("w1", &first[0]).await.unwrap();
        let siblings: Vec<_> = siblings
            .iter()
            .map(|t| (t.rung.as_str(), t.chunk))
            .collect();
        assert_eq!(siblings, [("thumbnails", 0)], "{url}");

        // A rung queuing its chunks again does not take a running one back.
        db.add_chunk_tasks("a1", &video, &cut).await.unwrap();
        let states = db.chunk_tasks_of("a1", "720p").await.unwrap();
        assert_eq!(states[0].state, "running", "{url}: {states:?}");
        assert_eq!(db.chunk_cut("a1").await.unwrap(), Some(cut.to_vec()));

        // Another asset queued later waits for this one's audio: the
        // audio is last within its asset only.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let taller = RungSpec::Video {
            height: 1080,
            kbps: 5000,
        };
        db.add_chunk_tasks("b1", &taller, &cut).await.unwrap();
        let second = db.claim_chunk_tasks("w2", 1).await.unwrap();
        let key = |t: &streamforge_actors::transcode::chunks::ChunkTask| {
            (t.asset.clone(), t.rung.clone(), t.chunk)
        };
        assert_eq!(key(&second[0]), ("a1".into(), "720p".into(), 1), "{url}");
        assert_eq!(
            db.claim_chunk_siblings("w2", &second[0])
                .await
                .unwrap()
                .len(),
            1
        );
        let last = db.claim_chunk_tasks("w2", 1).await.unwrap();
        assert_eq!(last.len(), 1, "{url}");
        assert_eq!(key(&last[0]), ("a1".into(), "audio".into(), 0), "{url}");
        assert_eq!((last[0].start_ms, last[0].end_ms), (0, None));
        let next = db.claim_chunk_tasks("w1", 1).await.unwrap();
        assert_eq!(key(&next[0]), ("b1".into(), "1080p".into(), 0), "{url}");
        assert!(
            db.claim_chunk_siblings("w2", &last[0])
                .await
                .unwrap()
                .is_empty()
        );

        for rung in ["720p", "thumbnails", "audio"] {
            db.joined_chunk_tasks("a1", rung).await.unwrap();
        }
        assert_eq!(db.chunk_cut("a1").await.unwrap(), None, "{url}");
    }
}

/// The newest part a media playlist lists: (msn, part).
fn newest_part(playlist: &str) -> (u64, u32) {
    common::listed_parts(playlist)
        .pop()
        .unwrap_or_else(|| panic!("no parts listed: {playlist}"))
}

/// The requests the origin answered for the edge (its session there).
async fn edge_requests(origin: &TestServer) -> u64 {
    let viewers: Value = reqwest::get(origin.url("/api/live/relayed/viewers"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    viewers["viewers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| {
            v["user_agent"]
                .as_str()
                .is_some_and(|ua| ua.starts_with("streamforge-edge/"))
        })
        .map(|v| v["requests"].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_relays_the_owners_live_stream_once_for_all_its_viewers() {
    let cluster = postgres::Postgres::start();
    let database = cluster.database("streamforge");
    let origin = TestServer::start_with(common::live_node(&database, "origin")).await;
    let edge = TestServer::start_with(common::live_node(&database, "edge")).await;
    let http = reqwest::Client::new();
    let mut publisher = common::push(&format!("{}/live/relayed", origin.rtmp_url()), 40);

    // The edge serves the stream it does not have, from the origin.
    common::wait_until("the edge relays the stream", async || {
        http.get(edge.url("/live/relayed/master.m3u8"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    // Another node cannot take the stream while the origin owns it.
    let second = common::push(&format!("{}/live/relayed", edge.rtmp_url()), 5);
    let refused = tokio::time::timeout(Duration::from_secs(20), second.wait_with_output())
        .await
        .expect("the second publisher is refused")
        .unwrap();
    assert!(!refused.status.success(), "a second owner was accepted");

    // The same numbers and bytes: the next part, asked of both nodes at
    // once with a blocking reload, then fetched from both.
    let text = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let playlist = text(origin.url("/live/relayed/v1/media.m3u8")).await;
    let (msn, part) = newest_part(&playlist);
    // The preload-hinted part: not made yet, so both wait for it.
    let (hinted_msn, hinted_part) = playlist
        .split("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"")
        .nth(1)
        .and_then(|rest| rest.split(".m4s").next())
        .and_then(|name| name.split_once('.'))
        .map(|(m, p)| (m.parse::<u64>().unwrap(), p.parse::<u32>().unwrap()))
        .unwrap_or_else(|| panic!("no preload hint: {playlist}"));
    let blocking =
        format!("/live/relayed/v1/media.m3u8?_HLS_msn={hinted_msn}&_HLS_part={hinted_part}");
    // When each answer came: the relay's cost to the part's availability
    // (printed; docs/PERFORMANCE.md).
    let timed = |url: String| async move {
        let body = text(url).await;
        (body, std::time::Instant::now())
    };
    let ((at_origin, origin_at), (at_edge, edge_at)) =
        tokio::join!(timed(origin.url(&blocking)), timed(edge.url(&blocking)));
    eprintln!(
        "the hinted part reached the edge's viewer {:.1} ms after the origin's",
        edge_at.saturating_duration_since(origin_at).as_secs_f64() * 1000.0
            - origin_at.saturating_duration_since(edge_at).as_secs_f64() * 1000.0
    );
    let sequence = |p: &str| {
        p.lines()
            .find(|l| l.starts_with("#EXT-X-MEDIA-SEQUENCE:"))
            .map(str::to_owned)
    };
    assert_eq!(sequence(&at_origin), sequence(&at_edge), "{at_edge}");
    let (last_msn, last_part) = newest_part(&at_edge);
    assert!((last_msn, last_part) > (msn, part), "{at_edge}");
    for file in [
        format!("{last_msn}.{last_part}.m4s"),
        format!("{msn}.m4s"),
        at_edge
            .split("#EXT-X-MAP:URI=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned(),
    ] {
        let path = format!("/live/relayed/v1/{file}");
        let from = |base: String| {
            let http = http.clone();
            async move {
                let r = http.get(base).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap()
            }
        };
        assert_eq!(
            from(origin.url(&path)).await,
            from(edge.url(&path)).await,
            "{file} differs at the edge"
        );
    }

    // Fifty viewers of the edge wait for the same next part: one blocking
    // reload and one part request reach the origin (and one more blocking
    // reload for the gzip viewers below).
    let before = edge_requests(&origin).await;
    let next = format!(
        "/live/relayed/v1/media.m3u8?_HLS_msn={}&_HLS_part=0",
        last_msn + 1
    );
    let waits = (0..50).map(|_| text(edge.url(&next)));
    let answers = futures::future::join_all(waits).await;
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "one answer for all"
    );
    let first_of_next = format!("/live/relayed/v1/{}.0.m4s", last_msn + 1);
    let parts = futures::future::join_all((0..50).map(|_| {
        let http = http.clone();
        let url = edge.url(&first_of_next);
        async move { http.get(url).send().await.unwrap().bytes().await.unwrap() }
    }))
    .await;
    assert!(!parts[0].is_empty() && parts.windows(2).all(|w| w[0] == w[1]));
    // Browsers' viewers (gzip) and a player (plain) wait for the same next
    // part: one answer, compressed once for all of them.
    let gzip_next = format!(
        "/live/relayed/v1/media.m3u8?_HLS_msn={}&_HLS_part=1",
        last_msn + 1
    );
    let gzipped = futures::future::join_all((0..10).map(|_| {
        let request = http
            .get(edge.url(&gzip_next))
            .header("accept-encoding", "gzip");
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-encoding"], "gzip");
            r.bytes().await.unwrap()
        }
    }));
    let (gzipped, plain) = tokio::join!(gzipped, text(edge.url(&gzip_next)));
    assert!(
        gzipped.windows(2).all(|w| w[0] == w[1]),
        "one compressed copy"
    );
    assert_eq!(
        String::from_utf8(common::gunzip(&gzipped[0])).unwrap(),
        plain,
        "the compressed answer is the plain one"
    );
    // The origin tells its sessions of a request as it answers it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let relayed = edge_requests(&origin).await - before;
    eprintln!("111 edge requests reached the origin as {relayed}");
    assert!(relayed <= 3, "{relayed} requests reached the origin");

    // The segment in progress reaches the edge's low-latency DASH viewers
    // as it grows, from one request to the owner, and whole.
    let growing = format!("/live/relayed/v1/{}.m4s", last_msn + 1);
    let before = edge_requests(&origin).await;
    let read = |url: String| {
        let http = http.clone();
        async move {
            let mut response = http.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let (mut body, mut first, start) = (Vec::new(), None, std::time::Instant::now());
            while let Some(chunk) = response.chunk().await.unwrap() {
                first.get_or_insert_with(|| start.elapsed());
                body.extend_from_slice(&chunk);
            }
            (body, first.unwrap(), start.elapsed())
        }
    };
    let viewers = futures::future::join_all((0..10).map(|_| read(edge.url(&growing)))).await;
    let (whole, _, _) = read(origin.url(&growing)).await;
    for (body, first, last) in &viewers {
        assert_eq!(body, &whole, "the edge's segment differs");
        eprintln!(
            "growing segment at the edge: first bytes after {:.0} ms, last after {:.0} ms",
            first.as_secs_f64() * 1000.0,
            last.as_secs_f64() * 1000.0
        );
        assert!(
            *last > *first + Duration::from_millis(300),
            "{first:?} {last:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let relayed = edge_requests(&origin).await - before;
    assert!(relayed <= 1, "{relayed} requests reached the origin");

    // A DASH viewer of the edge.
    let mpd = http
        .get(edge.url("/live/relayed/manifest.mpd"))
        .send()
        .await
        .unwrap();
    assert_eq!(mpd.status(), 200);
    assert!(mpd.text().await.unwrap().contains("type=\"dynamic\""));

    // The owner goes away mid-stream: the edge's viewers get the end of
    // what it relayed, not an error, whether they reload or block.
    origin.stop().await;
    for path in [
        "/live/relayed/v1/media.m3u8".to_owned(),
        format!(
            "/live/relayed/v1/media.m3u8?_HLS_msn={}&_HLS_part=0",
            last_msn + 3
        ),
    ] {
        let response = http.get(edge.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let ended = response.text().await.unwrap();
        assert!(ended.ends_with("#EXT-X-ENDLIST\n"), "{path}: {ended}");
        assert!(!ended.contains("#EXT-X-PRELOAD-HINT"), "{ended}");
        assert!(ended.contains(&format!("\n{msn}.m4s\n")), "{ended}");
    }
    let master = http
        .get(edge.url("/live/relayed/master.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(master.status(), 200);
    // DASH viewers get a static MPD of the complete segments.
    let ended = http
        .get(edge.url("/live/relayed/manifest.mpd"))
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 200);
    assert_eq!(
        ended.headers()[reqwest::header::CONTENT_TYPE],
        "application/dash+xml"
    );
    let ended = ended.text().await.unwrap();
    let doc = roxmltree::Document::parse(&ended).unwrap();
    assert_eq!(
        doc.root_element().attribute("type"),
        Some("static"),
        "{ended}"
    );
    assert!(
        doc.root_element()
            .attribute("mediaPresentationDuration")
            .is_some(),
        "{ended}"
    );
    assert!(!ended.contains("minimumUpdatePeriod"), "{ended}");
    publisher.kill().await.unwrap();
    edge.stop().await;
}

/// The value of `tag` (`#EXT-X-…:`) in a media playlist; 0 when absent
/// (its default).
fn playlist_number(playlist: &str, tag: &str) -> u64 {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix(tag)?.parse().ok())
        .unwrap_or(0)
}

/// The segment numbers a media playlist lists.
fn listed_segments(playlist: &str) -> Vec<u64> {
    playlist
        .lines()
        .filter_map(|l| l.strip_suffix(".m4s")?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_moves_to_another_node_takes_its_stream_along() {
    let cluster = postgres::Postgres::start();
    let database = cluster.database("streamforge");
    let on = |id: &'static str| {
        let node = common::live_node(&database, id);
        move |c: &mut streamforge::config::Config| {
            node(c);
            c.live.reconnect_grace = Duration::from_secs(5);
        }
    };
    let a = TestServer::start_with(on("a")).await;
    let b = TestServer::start_with(on("b")).await;
    let http = reqwest::Client::new();
    let text = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };

    let mut first = common::push(&format!("{}/live/moved", a.rtmp_url()), 6);
    common::wait_until("node a plays the stream", async || {
        http.get(a.url("/live/moved/master.m3u8"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    // A player of node a's URL throughout, to the stream's end.
    let viewer = tokio::spawn({
        let url = a.url("/live/moved/master.m3u8");
        async move { decoded_streams(&url).await }
    });
    assert!(first.wait().await.unwrap().success());
    // The encoder is gone from a, which waits for it; it comes back at b.
    let on_a = text(a.url("/live/moved/v1/media.m3u8")).await;
    assert!(!on_a.contains("#EXT-X-ENDLIST"), "{on_a}");
    // The newest segment of any rendition (audio may have one more).
    let audio_on_a = text(a.url("/live/moved/a1/media.m3u8")).await;
    let last_on_a = listed_segments(&on_a)
        .into_iter()
        .chain(listed_segments(&audio_on_a))
        .max()
        .unwrap();
    let mut second = common::push(&format!("{}/live/moved", b.rtmp_url()), 6);
    let mut on_b = String::new();
    // Until then, b relays a.
    common::wait_until("node b continues the stream", async || {
        on_b = text(b.url("/live/moved/v1/media.m3u8")).await;
        listed_segments(&on_b).last() > Some(&last_on_a)
    })
    .await;
    // The same presentation after a discontinuity: a's segments stay
    // listed ahead of b's (RFC 8216bis §6.2.2), numbers go on.
    let listed_on_b = listed_segments(&on_b);
    let own = listed_segments(&on_a).last().map(|last| last + 1).unwrap();
    assert_eq!(
        listed_on_b[..listed_segments(&on_a).len()],
        listed_segments(&on_a)[..],
        "a: {on_a}\nb: {on_b}"
    );
    assert!(listed_on_b.contains(&own), "a: {on_a}\nb: {on_b}");
    assert_eq!(
        playlist_number(&on_b, "#EXT-X-DISCONTINUITY-SEQUENCE:"),
        playlist_number(&on_a, "#EXT-X-DISCONTINUITY-SEQUENCE:"),
        "a: {on_a}\nb: {on_b}"
    );
    assert!(
        on_b.contains(&format!(
            "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-{}-",
            last_on_a + 1
        )),
        "a: {on_a}\nb: {on_b}"
    );
    // Node a relays its new owner's playlists, and serves the media it
    // made itself; b relays that media from a.
    let relayed = text(a.url("/live/moved/v1/media.m3u8")).await;
    assert!(listed_segments(&relayed).contains(&own), "{relayed}");
    let first_on_a = format!("/live/moved/v1/{}.m4s", listed_segments(&on_a)[0]);
    let from = |url: String| {
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{}", r.url());
            r.bytes().await.unwrap()
        }
    };
    assert_eq!(
        from(a.url(&first_on_a)).await,
        from(b.url(&first_on_a)).await
    );
    // The encoder cannot go back to a while b owns the stream.
    let back = common::push(&format!("{}/live/moved", a.rtmp_url()), 3);
    let refused = tokio::time::timeout(Duration::from_secs(20), back.wait_with_output())
        .await
        .expect("the publish at a is refused")
        .unwrap();
    assert!(!refused.status.success(), "a took the stream back");
    assert!(second.wait().await.unwrap().success());

    // The player went through the move and to the end (after b's grace):
    // its frames go on in order, more than one publish's worth.
    let frames = tokio::time::timeout(Duration::from_secs(60), viewer)
        .await
        .expect("the player reaches the end")
        .unwrap();
    for stream in [0, 1] {
        let pts: Vec<i64> = frames
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, pts)| *pts)
            .collect();
        assert!(pts.windows(2).all(|w| w[0] < w[1]), "{pts:?}");
        // Across the move no more is missing than the encoder's absence
        // (video at 25 fps, audio at 48 kHz).
        let per_second = if stream == 0 { 25.0 } else { 48_000.0 };
        let widest = pts.windows(2).map(|w| w[1] - w[0]).max().unwrap() as f64 / per_second;
        eprintln!(
            "the player of node a decoded {} frames of stream {stream}, widest gap {widest:.3} s",
            pts.len()
        );
        assert!(widest < 1.0, "stream {stream}: a gap of {widest:.3} s");
    }
    a.stop().await;
    b.stop().await;
}

/// The owner of a live stream is killed (`kill -9`) while its encoder
/// pushes: the encoder, reconnecting to another node, is refused until the
/// dead owner's lease runs out, then takes the stream there within
/// `live.reconnect_grace`; the presentation goes on after a discontinuity,
/// numbered above anything the dead owner can have made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owners_stream_goes_on_where_its_encoder_reconnects() {
    let cluster = postgres::Postgres::start();
    let database = cluster.database("streamforge");
    let data = tempfile::tempdir().unwrap();
    let (mut a, listening) = common::spawn_node(
        data.path(),
        &[
            ("STREAMFORGE_DATABASE", database.as_str()),
            ("STREAMFORGE_NODE_ID", "a"),
            ("STREAMFORGE_LIVE_OPEN_PUBLISH", "true"),
        ],
    )
    .await;
    let a_http = format!("http://{}", listening["http"].as_str().unwrap());
    let a_rtmp = format!(
        "rtmp://{}/live/survivor",
        listening["rtmp"].as_str().unwrap()
    );
    let b = TestServer::start_with(common::live_node(&database, "b")).await;
    let http = reqwest::Client::new();
    let text = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let _first = common::push(&a_rtmp, 60);
    let mut on_a = String::new();
    common::wait_until("node a lists two segments", async || {
        on_a = text(format!("{a_http}/live/survivor/v1/media.m3u8")).await;
        listed_segments(&on_a).len() >= 2
    })
    .await;
    let mpd_a = text(format!("{a_http}/live/survivor/manifest.mpd")).await;
    // A renewal recorded them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.kill().await.unwrap();
    let killed = std::time::Instant::now();

    // The encoder tries node b until it is let in.
    let url = format!("{}/live/survivor", b.rtmp_url());
    let mut tries = 0;
    let _second = loop {
        tries += 1;
        let mut second = common::push(&url, 8);
        match tokio::time::timeout(Duration::from_secs(2), second.wait()).await {
            Ok(_) => {
                assert!(killed.elapsed() < Duration::from_secs(15), "never let in");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(_) => break second,
        }
    };
    let took_over = killed.elapsed();
    eprintln!("the encoder was let in at b {took_over:?} after the kill, at try {tries}");
    assert!(
        took_over < Duration::from_secs(10),
        "{took_over:?}: past the reconnect grace"
    );

    let mut on_b = String::new();
    common::wait_until("node b lists its first segment", async || {
        on_b = text(b.url("/live/survivor/v1/media.m3u8")).await;
        !listed_segments(&on_b).is_empty()
    })
    .await;
    // The dead owner's segments are not listed again (they went with it);
    // numbers go on above anything it can have made after its record, and
    // the discontinuity sequence goes up.
    let last_seen_on_a = *listed_segments(&on_a).last().unwrap();
    let first_on_b = listed_segments(&on_b)[0];
    assert!(first_on_b > last_seen_on_a + 2, "a: {on_a}\nb: {on_b}");
    assert_eq!(
        playlist_number(&on_b, "#EXT-X-DISCONTINUITY-SEQUENCE:"),
        playlist_number(&on_a, "#EXT-X-DISCONTINUITY-SEQUENCE:") + 1,
        "a: {on_a}\nb: {on_b}"
    );
    // One timeline: b's MPD starts where a's did.
    let mpd_b = text(b.url("/live/survivor/manifest.mpd")).await;
    let ast = |mpd: &str| {
        roxmltree::Document::parse(mpd)
            .unwrap()
            .root_element()
            .attribute("availabilityStartTime")
            .map(str::to_owned)
    };
    assert!(ast(&mpd_b).is_some(), "{mpd_b}");
    assert_eq!(ast(&mpd_b), ast(&mpd_a), "a: {mpd_a}\nb: {mpd_b}");
    b.stop().await;
}
