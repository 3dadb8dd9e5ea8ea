//! Live playback in real players: dash.js and Shaka Player (LL-DASH) and
//! hls.js (LL-HLS) in Debian's headless Chromium, driven by
//! `tests/peers/live_players.mjs`, watch one RTMP publish whose frames
//! carry the publisher's wall clock. Each must play without a stall longer
//! than a second, report its live latency, and keep playing when the
//! publisher drops and comes back. The latencies are printed (glass to
//! glass: the burned-in clock read back from the presented frame) and
//! recorded in docs/PERFORMANCE.md; they are not asserted.
//!
//! `LIVE_PLAYERS=hlsjs` (a comma-separated subset of [`PLAYERS`]) runs
//! fewer players at once, to measure one on a machine it has to itself.
//!
//! Behind a cache: nginx's `proxy_cache`, set up as docs/SCALING.md says,
//! in front of the server; [`CACHED_VIEWERS`] simulated LL-HLS viewers and
//! hls.js play through it while another hls.js plays from the server.
//!
//! Through an edge: two nodes on one PostgreSQL; dash.js and hls.js play
//! from the node that takes the publish and from the other one, which
//! relays it.

mod common;
#[path = "support/nginx.rs"]
mod nginx;
#[path = "support/postgres.rs"]
mod postgres;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::TestServer;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PLAYERS: [&str; 3] = ["dashjs", "shaka-dash", "hlsjs"];

/// The players of this run: [`PLAYERS`], or those of them `LIVE_PLAYERS`
/// names.
fn chosen_players() -> Vec<&'static str> {
    let chosen = std::env::var("LIVE_PLAYERS").unwrap_or_default();
    let chosen: Vec<&str> = chosen.split(',').map(str::trim).collect();
    let players: Vec<&str> = PLAYERS
        .into_iter()
        .filter(|p| chosen == [""] || chosen.contains(p))
        .collect();
    assert!(
        !players.is_empty(),
        "LIVE_PLAYERS names none of {PLAYERS:?}"
    );
    players
}
/// The first publish, long enough for the players to start and watch
/// STEADY seconds; it is cut short then.
const FIRST_SECONDS: u32 = 120;
/// The publisher is away this long, then publishes again.
const AWAY: Duration = Duration::from_secs(3);
const SECOND_SECONDS: u32 = 20;
/// How long the players watch once all of them play: STEADY + 2 s, the
/// publisher away, and 16 s after it is back.
const WATCH_SECONDS: u32 = 22 + 3 + 16;
/// How soon after the publisher's return each player must play again.
const RECOVER: Duration = Duration::from_secs(8);
/// Playback each player must show without a stall, from its start.
const STEADY: f64 = 20.0;

/// One test at a time plays in Chromium: two browsers, their players and
/// a publisher at once would starve each other on two cores.
static CHROMIUM: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Chromium, to this test alone while the guard lives.
async fn chromium() -> tokio::sync::MutexGuard<'static, ()> {
    assert!(
        Path::new("/usr/bin/chromium").is_file() || std::env::var_os("CHROMIUM").is_some(),
        "chromium is missing: run scripts/setup --test"
    );
    CHROMIUM.lock().await
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// ffmpeg publishing 25 fps (FLV to an `rtmp://` URL, MPEG-TS to an
/// `srt://` one) with its wall clock burned into each frame:
/// milliseconds since it started plus its start time, as 24 bars of 10 px
/// (white = 1, least significant bit first) from x = 8 on rows 0-15.
fn publish(url: &str, seconds: u32, start: i64) -> Child {
    let start = start % (1 << 24);
    let bars = format!(
        "color=black:size=240x16:rate=25,format=gray,\
         geq=lum='255*mod(floor(({start}+floor(T*1000))/pow(2\\,floor(X/10))),2)'[bars];\
         [0:v][bars]overlay=8:0,format=yuv420p[v]"
    );
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=256x144:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-filter_complex", &bars, "-map", "[v]", "-map", "1:a"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "25", "-b:v", "300k", "-c:a", "aac", "-b:a", "64k"])
        .args([
            "-f",
            if url.starts_with("srt://") {
                "mpegts"
            } else {
                "flv"
            },
            url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg is installed (scripts/setup)")
}

/// Publishes `seconds` of the clock to `stream` and waits until it plays;
/// returns ffmpeg and how early its burned-in times are (ms): ffmpeg's
/// clock starts when it has connected and starts publishing, not when it
/// was spawned.
async fn publish_clock(server: &TestServer, stream: &str, seconds: u32) -> (Child, i64) {
    let url = format!("{}/live/{stream}", server.rtmp_url());
    publish_clock_to(server, &url, stream, seconds).await
}

/// [`publish_clock`] to `url`.
async fn publish_clock_to(
    server: &TestServer,
    url: &str,
    stream: &str,
    seconds: u32,
) -> (Child, i64) {
    let spawned = wall_ms();
    let ffmpeg = publish(url, seconds, spawned);
    let master = server.url(&format!("/live/{stream}/master.m3u8"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while reqwest::get(&master).await.unwrap().status() != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream never started"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status: Value = reqwest::get(server.url(&format!("/api/live/{stream}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let startup = status["started_at_ms"].as_i64().expect("started_at_ms") - spawned;
    (ffmpeg, startup)
}

/// One sample of a player: wall clock (ms), currentTime (s), the player's
/// latency (s) and the glass-to-glass latency (ms) of the frame shown.
#[derive(Clone, Copy)]
struct Sample {
    wall: i64,
    time: f64,
    latency: Option<f64>,
    glass: Option<f64>,
}

fn samples(findings: &Value) -> Vec<Sample> {
    findings["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .map(|s| Sample {
            wall: s[0].as_i64().unwrap_or(0),
            time: s[1].as_f64().unwrap_or(0.0),
            latency: s[2].as_f64(),
            glass: s[3].as_f64(),
        })
        .collect()
}

/// The longest time (s) currentTime stood still within `samples`.
fn longest_stall(samples: &[Sample]) -> f64 {
    let mut longest = 0i64;
    let mut since = samples.first().map_or(0, |s| s.wall);
    for pair in samples.windows(2) {
        if pair[1].time > pair[0].time {
            since = pair[1].wall;
        }
        longest = longest.max(pair[1].wall - since);
    }
    longest as f64 / 1000.0
}

/// `tests/peers/live_players.mjs` playing in Chromium.
struct Players {
    child: Child,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    seconds: u32,
}

impl Players {
    /// Starts `players` (see the script) on `stream` for `seconds` once
    /// all of them play; returns when they do.
    async fn start(base: &str, stream: &str, seconds: u32, players: &str) -> Players {
        let mut child = Command::new("node")
            .arg("tests/peers/live_players.mjs")
            .args([base, stream, &seconds.to_string(), players])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node is installed (scripts/setup --test)");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
            .await
            .expect("the players start within a minute")
            .unwrap()
            .unwrap_or_default();
        if !ready.contains("ready") {
            let out = child.wait_with_output().await.unwrap();
            panic!(
                "the players did not start: {ready}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Players {
            child,
            stdout,
            seconds,
        }
    }

    /// What each player did (see the script), also written to `record`
    /// in the test's temporary directory for a look at a failure.
    async fn findings(mut self, record: &str) -> Value {
        // Read while waiting: the findings are larger than a pipe holds.
        let wait = Duration::from_secs(u64::from(self.seconds) + 60);
        let (rest, output) = tokio::time::timeout(wait, async {
            tokio::join!(self.stdout.next_line(), self.child.wait_with_output())
        })
        .await
        .expect("the players finish");
        let (rest, output) = (rest.unwrap().unwrap_or_default(), output.unwrap());
        assert!(
            output.status.success(),
            "{rest}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let record = Path::new(env!("CARGO_TARGET_TMPDIR")).join(record);
        std::fs::write(&record, &rest).unwrap();
        eprintln!("samples in {}", record.display());
        serde_json::from_str(&rest).expect("one JSON line")
    }
}

/// `player` played (in `findings`) with no stall over a second; its median
/// glass-to-glass latency (ms, less the publisher's `startup`).
/// Seconds in `samples` during which playback stood still for 0.2 s or
/// more at a time.
fn stalled_total(samples: &[Sample]) -> f64 {
    let mut total = 0i64;
    let mut since = samples.first().map_or(0, |s| s.wall);
    let mut last = since;
    for pair in samples.windows(2) {
        if pair[1].time > pair[0].time {
            if last - since >= 200 {
                total += last - since;
            }
            since = pair[1].wall;
        }
        last = pair[1].wall;
    }
    if last - since >= 200 {
        total += last - since;
    }
    total as f64 / 1000.0
}

fn played(findings: &Value, player: &str, startup: i64) -> f64 {
    played_with_stalls(findings, player, startup).0
}

/// As [`played`], with the seconds the player stood still after it started.
fn played_with_stalls(findings: &Value, player: &str, startup: i64) -> (f64, f64) {
    let all = samples(&findings[player]);
    let errors = &findings[player]["errors"];
    let started = all
        .iter()
        .position(|s| s.time > 0.0)
        .unwrap_or_else(|| panic!("{player} never played: {errors}"));
    let stall = longest_stall(&all[started..]);
    let glass = median(
        all[started..]
            .iter()
            .filter_map(|s| s.glass)
            .map(|g| g - startup as f64)
            .collect(),
    )
    .unwrap_or_else(|| panic!("{player} showed no readable frame"));
    eprintln!("{player}: longest stall {stall:.2} s, median glass-to-glass {glass:.0} ms");
    assert!(
        stall <= 1.0,
        "{player} stalled {stall:.2} s; errors: {errors}"
    );
    (glass, stalled_total(&all[started..]))
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_js_shaka_and_hls_js_play_live_at_low_latency_through_a_publisher_restart() {
    let _chromium = chromium().await;
    let server = TestServer::start_with(|c| {
        c.live.open_publish = true;
        c.live.reconnect_grace = Duration::from_secs(10);
    })
    .await;
    let url = format!("{}/live/clock", server.rtmp_url());
    let (mut first, startup) = publish_clock(&server, "clock", FIRST_SECONDS).await;
    let players = Players::start(
        &server.url(""),
        "clock",
        WATCH_SECONDS,
        &chosen_players().join(","),
    )
    .await;
    // Once every player plays: STEADY seconds of it, then the publisher
    // drops (killed, as a crashed encoder or a lost uplink) and comes
    // back AWAY later.
    tokio::time::sleep(Duration::from_secs_f64(STEADY + 2.0)).await;
    first.kill().await.unwrap();
    let gone = wall_ms();
    tokio::time::sleep(AWAY).await;
    let back = wall_ms();
    let second = publish(&url, SECOND_SECONDS, wall_ms());
    let findings = players.findings("live-players.json").await;
    drop(second);
    eprintln!("the publisher left at {gone} and came back at {back}");

    for player in chosen_players() {
        let all = samples(&findings[player]);
        let errors = &findings[player]["errors"];
        let started = all
            .iter()
            .position(|s| s.time > 0.0)
            .unwrap_or_else(|| panic!("{player} never played: {errors}"));
        let start = all[started].wall;
        // The first STEADY seconds of playback, all before the publisher left.
        let steady: Vec<Sample> = all[started..]
            .iter()
            .take_while(|s| s.wall <= start + (STEADY * 1000.0) as i64)
            .copied()
            .collect();
        assert!(
            steady.last().is_some_and(|s| s.wall < gone),
            "{player} started too late to watch {STEADY} s before the publisher left"
        );
        let stall = longest_stall(&steady);
        let latency = median(steady.iter().filter_map(|s| s.latency).collect());
        let glass = median(
            steady
                .iter()
                .filter_map(|s| s.glass)
                .map(|g| g - startup as f64)
                .collect(),
        );
        eprintln!(
            "{player} (publisher startup {startup} ms): playing {:.1} s after the stream started; longest stall {stall:.2} s; \
             median live latency reported {latency:?} s; median glass-to-glass {glass:?} ms",
            (start - all[0].wall) as f64 / 1000.0
        );
        assert!(
            stall <= 1.0,
            "{player} stalled {stall:.2} s; errors: {errors}"
        );
        assert!(
            latency.is_some_and(|l| l > 0.0),
            "{player} reports no live latency"
        );
        assert!(glass.is_some(), "{player} showed no readable frame");
        // Through the restart: playing again within RECOVER of the
        // publisher's return and on from then. Shaka has been seen (once
        // in eight runs, on a loaded machine) catching up to the new
        // period in jumps with stalls of up to 4 s; the bound is the
        // player keeping going, the stall is printed.
        let after: Vec<Sample> = all
            .iter()
            .filter(|s| s.wall >= back + RECOVER.as_millis() as i64)
            .copied()
            .collect();
        let stall = longest_stall(&after);
        let watched = after.last().map_or(0, |s| s.wall) - after.first().map_or(0, |s| s.wall);
        let advanced = after.last().map_or(0.0, |s| s.time) - after.first().map_or(0.0, |s| s.time);
        eprintln!(
            "{player} after the restart: advanced {advanced:.1} s in {:.1} s, longest stall {stall:.2} s",
            watched as f64 / 1000.0
        );
        assert!(
            advanced >= watched as f64 / 2000.0 && stall <= 5.0,
            "{player} did not play on after the publisher came back: advanced {advanced:.1} s, \
             longest stall {stall:.2} s; errors: {errors}"
        );
    }
    server.stop().await;
}

/// Simulated LL-HLS viewers behind the cache.
const CACHED_VIEWERS: usize = 300;
/// How long they and the players watch.
const CACHED_SECONDS: u32 = 20;

/// What one simulated viewer saw.
#[derive(Debug, Default)]
struct Viewed {
    parts: u64,
    /// Parts that came after a gap: (msn, part) not the successor of the
    /// part before.
    skipped: u64,
    errors: Vec<String>,
}

/// An LL-HLS viewer as players behave at the live edge: one blocking
/// playlist reload for the part after the last one it has, then every new
/// part in order, for `seconds`.
async fn ll_hls_viewer(client: reqwest::Client, base: String, seconds: u32) -> Viewed {
    let mut viewed = Viewed::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(seconds));
    let playlist = format!("{base}/live/cached/v1/media.m3u8");
    let mut last: Option<(u64, u32)> = None;
    // The last part's segment is complete: the next part is the first of
    // the next segment (a reload for another part of this one would be
    // answered at once, with nothing new).
    let mut segment_done = false;
    while tokio::time::Instant::now() < deadline {
        let url = match last {
            None => playlist.clone(),
            Some((msn, _)) if segment_done => {
                format!("{playlist}?_HLS_msn={}&_HLS_part=0", msn + 1)
            }
            Some((msn, part)) => format!("{playlist}?_HLS_msn={msn}&_HLS_part={}", part + 1),
        };
        let text = match client.get(&url).send().await {
            Ok(r) if r.status() == 200 => r.text().await.unwrap_or_default(),
            Ok(r) => {
                viewed.errors.push(format!("{url}: {}", r.status()));
                continue;
            }
            Err(e) => {
                viewed.errors.push(format!("{url}: {e}"));
                continue;
            }
        };
        let parts = common::listed_parts(&text);
        let new: Vec<(u64, u32)> = match last {
            // Starting: the newest part, as a player starts at the edge.
            None => parts.last().copied().into_iter().collect(),
            Some(last) => parts.into_iter().filter(|p| *p > last).collect(),
        };
        for (msn, part) in new {
            if let Some((m, p)) = last
                && (msn, part) != (m, p + 1)
                && (msn, part) != (m + 1, 0)
            {
                viewed.skipped += 1;
            }
            let url = format!("{base}/live/cached/v1/{msn}.{part}.m4s");
            match client.get(&url).send().await {
                Ok(r) if r.status() == 200 => match r.bytes().await {
                    Ok(body) if !body.is_empty() => viewed.parts += 1,
                    Ok(_) => viewed.errors.push(format!("{url}: empty")),
                    Err(e) => viewed.errors.push(format!("{url}: {e}")),
                },
                Ok(r) => viewed.errors.push(format!("{url}: {}", r.status())),
                Err(e) => viewed.errors.push(format!("{url}: {e}")),
            }
            last = Some((msn, part));
        }
        segment_done = last.is_some_and(|(msn, _)| {
            let uri = format!("{msn}.m4s");
            text.lines().any(|l| l == uri)
        });
    }
    viewed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_hls_through_an_nginx_cache() {
    let _chromium = chromium().await;
    let server = TestServer::start_with(|c| c.live.open_publish = true).await;
    let cache = nginx::NginxCache::start(&server.url(""));
    let (publisher, startup) = publish_clock(&server, "cached", CACHED_SECONDS + 60).await;
    // The newest playlist: kept by the cache (s-maxage), not by players.
    let latest = cache.url("/live/cached/v1/media.m3u8");
    let statuses = futures::future::join_all((0..2).map(|i| {
        let latest = latest.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100 * i)).await;
            let response = reqwest::get(&latest).await.unwrap();
            let cached = response.headers()["x-cache-status"]
                .to_str()
                .unwrap()
                .to_owned();
            (
                response.headers()["cache-control"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
                cached,
            )
        }
    }))
    .await;
    assert_eq!(statuses[0].0, "public, max-age=0, s-maxage=1");
    assert_eq!(statuses[1].1, "HIT", "{statuses:?}");
    // hls.js from the server and hls.js through the cache, side by side.
    let direct = "hlsjs".to_owned();
    let cached = format!("hlsjs@{}", cache.url(""));
    let players = Players::start(
        &server.url(""),
        "cached",
        CACHED_SECONDS,
        &format!("{direct},{cached}"),
    )
    .await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CACHED_VIEWERS)
        .build()
        .unwrap();
    let viewers: Vec<_> = (0..CACHED_VIEWERS)
        .map(|_| tokio::spawn(ll_hls_viewer(client.clone(), cache.url(""), CACHED_SECONDS)))
        .collect();
    let mut viewed = Vec::new();
    for viewer in viewers {
        viewed.push(viewer.await.unwrap());
    }
    let findings = players.findings("live-players-cached.json").await;
    drop(publisher);

    // The viewers: every part in order, none skipped.
    let parts: u64 = viewed.iter().map(|v| v.parts).sum();
    let skipped: u64 = viewed.iter().map(|v| v.skipped).sum();
    let errors: Vec<&String> = viewed.iter().flat_map(|v| &v.errors).collect();
    let fewest = viewed.iter().map(|v| v.parts).min().unwrap_or(0);
    eprintln!(
        "{CACHED_VIEWERS} viewers through nginx: {parts} parts, fewest {fewest} for one viewer, {skipped} skipped, {} errors",
        errors.len()
    );
    assert_eq!(skipped, 0, "parts skipped");
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(10)]);
    // 20 s at three parts a second, less the start.
    assert!(
        fewest >= u64::from(CACHED_SECONDS) * 2,
        "a viewer fell behind: {fewest} parts"
    );

    // The origin answered each part, segment and playlist version about
    // once: the cache served the rest.
    let log: Vec<nginx::Logged> = cache
        .log()
        .into_iter()
        .filter(|l| l.uri.starts_with("/live/cached/"))
        .collect();
    let hits = log.iter().filter(|l| l.cache == "HIT").count();
    let ratio = hits as f64 / log.len().max(1) as f64;
    let mut origin_answers: std::collections::HashMap<&str, usize> = Default::default();
    for l in log.iter().filter(|l| l.cache != "HIT") {
        *origin_answers.entry(&l.uri).or_default() += 1;
    }
    let part_answers: Vec<usize> = origin_answers
        .iter()
        .filter(|(uri, _)| uri.ends_with(".m4s"))
        .map(|(_, n)| *n)
        .collect();
    let most = part_answers.iter().max().copied().unwrap_or(0);
    let statuses: std::collections::BTreeMap<&str, usize> =
        log.iter().fold(Default::default(), |mut m, l| {
            *m.entry(l.cache.as_str()).or_default() += 1;
            m
        });
    eprintln!(
        "nginx: {} requests, hit ratio {:.1} % ({statuses:?}); the origin answered {} media URLs, each at most {most} times",
        log.len(),
        ratio * 100.0,
        part_answers.len(),
    );
    let failed: Vec<&nginx::Logged> = log.iter().filter(|l| l.status >= 500).collect();
    assert!(failed.is_empty(), "{:?}", &failed[..failed.len().min(10)]);
    assert!(ratio >= 0.95, "hit ratio {ratio:.3}: {statuses:?}");
    assert!(most <= 2, "a part reached the origin {most} times");

    // hls.js through the cache: no stall, latency within 0.5 s of hls.js
    // from the server.
    let direct_glass = played(&findings, &direct, startup);
    let cached_glass = played(&findings, &cached, startup);
    assert!(
        cached_glass <= direct_glass + 500.0,
        "through the cache {cached_glass:.0} ms behind the server's {direct_glass:.0} ms"
    );
    server.stop().await;
}

/// Seconds the players watch through the edge.
const EDGE_SECONDS: u32 = 15;

/// dash.js (LL-DASH: segments fetched as they grow) and hls.js (LL-HLS:
/// blocking reloads and preload-hinted parts) from the node that took the
/// publish and from another node relaying it: through the edge, no stall
/// and a latency within 0.5 s of the owner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_js_and_hls_js_through_an_edge_play_as_close_to_live_as_from_the_owner() {
    let _chromium = chromium().await;
    let cluster = postgres::Postgres::start();
    let database = cluster.database("streamforge");
    let owner = TestServer::start_with(common::live_node(&database, "owner")).await;
    let edge = TestServer::start_with(common::live_node(&database, "edge")).await;
    let (publisher, startup) = publish_clock(&owner, "relayed", EDGE_SECONDS + 60).await;
    let at_edge = |player: &str| format!("{player}@{}", edge.url(""));
    let players = [
        "dashjs".to_owned(),
        at_edge("dashjs"),
        "hlsjs".to_owned(),
        at_edge("hlsjs"),
    ];
    let findings = Players::start(&owner.url(""), "relayed", EDGE_SECONDS, &players.join(","))
        .await
        .findings("live-players-edge.json")
        .await;
    drop(publisher);
    // A stall (at most 1 s, checked by `played`) adds its length to the
    // latency, and a player with a slow catch-up (dash.js closes a gap at
    // ~20-40 ms per second) carries it to the end of the watch: the edge's
    // own cost is what remains once that is taken off.
    for pair in players.chunks(2) {
        let (direct, _) = played_with_stalls(&findings, &pair[0], startup);
        let (relayed, stalled) = played_with_stalls(&findings, &pair[1], startup);
        assert!(
            relayed - stalled * 1000.0 <= direct + 500.0,
            "{}: through the edge {relayed:.0} ms ({stalled:.2} s of it stalled), from the owner {direct:.0} ms",
            pair[0]
        );
    }
    edge.stop().await;
    owner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_plays_an_srt_publish_at_low_latency() {
    let _chromium = chromium().await;
    let server = TestServer::start_with(|c| c.live.open_publish = true).await;
    // libsrt's default 120 ms latency.
    let url = format!(
        "{}?streamid=publish:live/srtclock&latency=120000",
        server.srt_url()
    );
    let (mut publisher, startup) = publish_clock_to(&server, &url, "srtclock", 60).await;
    let players = Players::start(&server.url(""), "srtclock", 16, "hlsjs").await;
    let findings = players.findings("srt-players.json").await;
    let glass = played(&findings, "hlsjs", startup);
    eprintln!("hls.js over SRT -> LL-HLS: median glass-to-glass {glass:.0} ms");
    let _ = publisher.kill().await;
    server.stop().await;
}

/// Chromium publishing over WHIP (tests/peers/whip_publish.mjs: its wall
/// clock burned into a canvas, H.264 and Opus), hls.js playing it: the
/// glass-to-glass latency of a browser studio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_plays_a_whip_publish_from_chromium_at_low_latency() {
    let _chromium = chromium().await;
    let server = TestServer::start_with(|c| c.live.open_publish = true).await;
    let mut publisher = Command::new("node")
        .arg("tests/peers/whip_publish.mjs")
        .args([&server.url(""), "whipclock", "-", "60", "h264"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (scripts/setup --test)");
    let mut lines = BufReader::new(publisher.stdout.take().expect("stdout")).lines();
    let answer = lines.next_line().await.unwrap().expect("the WHIP answer");
    assert!(answer.contains("\"status\":201"), "{answer}");
    common::wait_until("the WHIP publish is playable", async || {
        common::stream_status(&server, "whipclock").await["playable"] == true
    })
    .await;
    let players = Players::start(&server.url(""), "whipclock", 16, "hlsjs").await;
    let findings = players.findings("whip-players.json").await;
    // The page burns its own clock in: no publisher start-up to take off.
    let glass = played(&findings, "hlsjs", 0);
    eprintln!("Chromium over WHIP -> LL-HLS in hls.js: median glass-to-glass {glass:.0} ms");
    let _ = publisher.kill().await;
    server.stop().await;
}
