//! What each middleware layer costs a request: the router of a real
//! server (embedded defaults, a temporary data directory) is built with
//! the routes alone, then with one more of `http::Layer::ALL` at a time,
//! innermost first, and each build answers the same request in-process
//! (`tower::ServiceExt::oneshot`, body collected; no socket, so the layers
//! are not drowned in the kernel's share). The difference between two
//! consecutive builds is what the added layer costs.
//!
//!   cargo bench --bench middleware_layers
//!
//! Two requests for the 4.4 KiB VOD media playlist of
//! `benches/http_vs_nginx.sh` (served from the 0.5 s playlist cache):
//! a player's (no `Origin`, no `Accept-Encoding`, as wrk and h2load send),
//! and a browser's on another origin that accepts gzip (CORS and
//! compression do their work). After criterion's report, a table lists
//! the median time per request of every build and each layer's share.

use std::time::{Duration, Instant};

use axum::Router;
use criterion::{BenchmarkId, Criterion};
use http::{Request, header};
use http_body_util::BodyExt;
use streamforge::config::Config;
use streamforge::http::{Layer, router_with_layers};
use streamforge::server;
use tower::ServiceExt;

// The binary's allocator (src/main.rs), so that the layers' allocations
// cost what they cost in the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PLAYLIST: &str = "/vod/bench/v1/media.m3u8";

/// Rounds of the interleaved measurement, and requests per build per round.
const ROUNDS: usize = 40;
const PER_ROUND: u32 = 1_000;

fn main() {
    // One thread: a request's path through the layers is one task, and the
    // work-stealing hand-offs of a multi-threaded runtime only add noise.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let data = tempfile::tempdir().expect("temporary data directory");
    write_playlist(data.path());
    let running = runtime.block_on(async {
        let mut config = Config {
            data_dir: data.path().to_owned(),
            ..Config::default()
        };
        config.http.listen = "127.0.0.1:0".parse().expect("address");
        config.live.rtmp_listen = "127.0.0.1:0".parse().expect("address");
        config.live.rtsp_listen = "127.0.0.1:0".parse().expect("address");
        config.live.rtsp_udp_ports = [0, 0];
        config.live.srt_listen = "127.0.0.1:0".parse().expect("address");
        config.live.webrtc_listen = "127.0.0.1:0".parse().expect("address");
        let running = server::start(config.clone()).await.expect("server starts");
        (running, config)
    });
    let (running, config) = running;
    let state = running.app_state();
    let builds: Vec<(String, Router)> = (0..=Layer::ALL.len())
        .map(|n| {
            let name = match n {
                0 => "routes only".to_owned(),
                n => format!("+ {}", Layer::ALL[n - 1].name()),
            };
            (name, router_with_layers(state.clone(), &config.http, n))
        })
        .collect();

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    for (kind, browser) in [("player", false), ("browser", true)] {
        let mut group = criterion.benchmark_group(format!("middleware/{kind}"));
        for (n, (_, app)) in builds.iter().enumerate() {
            group.bench_with_input(BenchmarkId::from_parameter(n), app, |b, app| {
                b.to_async(&runtime).iter(|| request(app, browser));
            });
        }
        group.finish();
    }
    criterion.final_summary();
    // The table compares builds measured in turns, round after round, so
    // that a drift of the machine (another process, the clock) during the
    // run moves every build alike instead of the ones measured last.
    if !std::env::args().any(|a| a == "--list" || a == "--test") {
        for (kind, browser) in [("player", false), ("browser", true)] {
            let medians = runtime.block_on(interleaved(&builds, browser));
            print_table(kind, &builds, &medians);
        }
    }
    runtime.block_on(running.shutdown());
}

/// One request through `app`, its body read to the end.
async fn request(app: &Router, browser: bool) {
    let mut builder = Request::get(PLAYLIST);
    if browser {
        builder = builder
            .header(header::ORIGIN, "https://player.example")
            .header(header::ACCEPT_ENCODING, "gzip");
    }
    let request = builder.body(axum::body::Body::empty()).expect("request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    assert!(response.status().is_success(), "{}", response.status());
    let body = response.into_body().collect().await.expect("body");
    std::hint::black_box(body.to_bytes());
}

/// The median time per request (ns) of every build, over [`ROUNDS`] rounds
/// in which each build answers [`PER_ROUND`] requests in turn.
async fn interleaved(builds: &[(String, Router)], browser: bool) -> Vec<f64> {
    let mut samples = vec![Vec::with_capacity(ROUNDS); builds.len()];
    for _ in 0..ROUNDS {
        for ((_, app), samples) in builds.iter().zip(&mut samples) {
            let started = Instant::now();
            for _ in 0..PER_ROUND {
                request(app, browser).await;
            }
            samples.push(started.elapsed().as_nanos() as f64 / f64::from(PER_ROUND));
        }
    }
    samples.iter().map(|s| median(s)).collect()
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn print_table(kind: &str, builds: &[(String, Router)], medians: &[f64]) {
    let total = medians.last().copied().unwrap_or(f64::NAN);
    let bare = medians.first().copied().unwrap_or(f64::NAN);
    println!(
        "\n{kind} request: median µs per request of each build ({ROUNDS} rounds of {PER_ROUND}), and what the added layer costs"
    );
    println!(
        "  {:<28} {:>10} {:>10} {:>8}",
        "build", "µs", "layer µs", "share"
    );
    for (n, ((name, _), ns)) in builds.iter().zip(medians).enumerate() {
        let added = n.checked_sub(1).map(|p| ns - medians[p]);
        println!(
            "  {:<28} {:>10.2} {:>10} {:>8}",
            name,
            ns / 1000.0,
            added.map_or_else(String::new, |a| format!("{:.2}", a / 1000.0)),
            added.map_or_else(String::new, |a| format!("{:.0} %", a / total * 100.0)),
        );
    }
    println!(
        "  every layer together: {:.2} µs of {:.2} µs ({:.0} %)",
        (total - bare) / 1000.0,
        total / 1000.0,
        (total - bare) / total * 100.0
    );
}

/// The playlist `benches/http_vs_nginx.sh` serves: 150 two-second segments.
fn write_playlist(data: &std::path::Path) {
    let dir = data.join("media/assets/bench/media/v1");
    std::fs::create_dir_all(&dir).expect("media directory");
    let mut playlist = String::from(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"init.mp4\"\n",
    );
    for i in 1..=150 {
        playlist.push_str(&format!("#EXTINF:2.000,\nseg-{i:05}.m4s\n"));
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    std::fs::write(dir.join("media.m3u8"), playlist).expect("playlist");
}
