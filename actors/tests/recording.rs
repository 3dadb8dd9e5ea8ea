//! A live recording whose store falls behind: the publisher never waits
//! for it, the live stream keeps every sample, and what the recording had
//! to leave out is counted.

use std::process::Command;
use std::time::Duration;

use object_store::throttle::ThrottleConfig;
use streamforge_actors::assets::AssetStatus;
use streamforge_actors::db::Database;
use streamforge_actors::events::EventBus;
use streamforge_actors::live::record::Recording;
use streamforge_actors::live::{IngestProtocol, Live, LiveOptions};
use streamforge_actors::process::Processes;
use streamforge_actors::storage::Storage;
use streamforge_actors::supervision::Supervision;
use streamforge_protocols::hls::PlaylistQuery;
use streamforge_protocols::live::Reply;
use streamforge_protocols::media::{Sample, Track};
use streamforge_protocols::mp4::{FragmentedReader, ReaderEvent};

/// `seconds` of 30 fps video with B-frames and AAC audio, as the tracks
/// and samples an ingest would hand the stream.
fn publish_of(seconds: u32) -> (Vec<Track>, Vec<Sample>) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"])
        .args(["-c:a", "aac", "-f", "mp4"])
        .args(["-movflags", "empty_moov+default_base_moof+frag_keyframe"])
        .arg("pipe:1")
        .output()
        .expect("ffmpeg is installed (scripts/setup --test)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = FragmentedReader::new();
    reader.feed(&out.stdout);
    let (mut tracks, mut samples) = (Vec::new(), Vec::new());
    while let Some(event) = reader.poll().unwrap() {
        match event {
            ReaderEvent::Tracks(t) => tracks = t,
            ReaderEvent::Sample(s) => samples.push(s),
        }
    }
    // An encoder interleaves its tracks by time.
    samples.sort_by_key(|s: &Sample| {
        let timescale = tracks.iter().find(|t| t.id == s.track).unwrap().timescale;
        s.dts * 1_000_000 / i64::from(timescale)
    });
    (tracks, samples)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_falls_behind_loses_recording_samples_not_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&format!(
        "sqlite://{}",
        dir.path().join("db.sqlite").display()
    ))
    .await
    .unwrap();
    // Every write to the store takes 300 ms.
    let storage = Storage::local(&dir.path().join("media"))
        .unwrap()
        .throttled(ThrottleConfig {
            wait_put_per_call: Duration::from_millis(300),
            ..ThrottleConfig::default()
        });
    let tree = Supervision::start(Processes::new()).await.unwrap();
    let live = Live::new(
        db.clone(),
        tree.clone(),
        LiveOptions {
            open_publish: true,
            record: true,
            reconnect_grace: Duration::ZERO,
            ..LiveOptions::default()
        },
        Some(Recording::new(db.clone(), storage, EventBus::default())),
    );
    let (tracks, samples) = publish_of(12);
    let sent = samples.len() as u64;

    // The encoder sends 12 s of media as fast as it can: far more than the
    // recorder's queue, and its store cannot keep up.
    let publisher = live
        .start_publish("cam", IngestProtocol::Rtmp, "127.0.0.1:5000".to_owned())
        .await
        .unwrap();
    publisher.take_tracks(tracks).unwrap();
    for sample in samples {
        publisher.take_sample(sample).unwrap();
    }

    // Viewers have everything: every sample packaged, none dropped, every
    // segment listed.
    let summary = live.summary("cam").await.unwrap().unwrap();
    assert_eq!(summary.samples, sent, "{summary:?}");
    assert_eq!(summary.dropped_samples, 0, "{summary:?}");
    let stream = live.stream("cam").unwrap();
    let Some(Reply::Ready(playlist)) =
        stream.with_packager(|p| p.media_playlist("v1", &PlaylistQuery::default()))
    else {
        panic!("no video playlist");
    };
    assert!(
        playlist.matches("#EXTINF:").count() >= 5,
        "the segments of the first 10 s at least:\n{playlist}"
    );
    // The recording lost samples, and says how many.
    let lost = summary.recording_lost_samples.expect("recording is on");
    assert!(lost > 0 && lost < sent, "{summary:?}");
    assert_eq!(live.recording_samples_lost(), lost);

    // The publish ends; the recording finishes with what it kept.
    drop(publisher);
    let mut ready = None;
    for _ in 0..300 {
        let (assets, _) = db.assets(None, None, 10, 0).await.unwrap();
        if let Some(asset) = assets.iter().find(|a| a.status != AssetStatus::Recording) {
            ready = Some(asset.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let asset = ready.expect("the recording ends within 30 s");
    assert_eq!(asset.status, AssetStatus::Ready, "{asset:?}");
    assert!(
        dir.path()
            .join(format!("media/assets/{}/media/master.m3u8", asset.id))
            .is_file()
    );
    tree.shutdown(Duration::from_secs(5)).await;
}
