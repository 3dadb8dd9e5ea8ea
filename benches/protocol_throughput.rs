//! HTTP/3 throughput against our own HTTP/1.1 and HTTP/2 (both over TLS):
//! one server process (`streamforge serve --tls self-signed`, started here
//! from the release build: the load client shares no process, runtime or
//! cores' scheduling decisions with it beyond the machine's), the same
//! cached 512 KiB segment, the same number of requests in flight. The
//! client is reqwest for HTTP/1.1 and HTTP/2 and quinn + h3 for HTTP/3.
//! Prints requests/s, MB/s and the server's peak RSS per protocol, and the
//! ratios.
//!
//!   cargo build --release --bin streamforge
//!   cargo bench --bench protocol_throughput [-- SECONDS IN_FLIGHT]
//!
//! `STREAMFORGE_BIN` names another server binary; `SF_SERVER_ENV`
//! (`NAME=VALUE,…`) is passed to the server's environment.
//!
//! HTTP/1.1 uses one connection per request in flight; HTTP/2 and HTTP/3
//! multiplex every request over one connection, as browsers do.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/server_process.rs"]
mod server_process;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{H3Client, h3_request};
use server_process::ServerProcess;

const SEGMENT_BYTES: usize = 512 * 1024;
use server_process::SEGMENT_PATH as PATH;

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl Tally {
    fn add(&self, bytes: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn print(&self, name: &str, elapsed: Duration, peak_rss_mib: u64) -> f64 {
        let seconds = elapsed.as_secs_f64();
        let rps = self.requests.load(Ordering::Relaxed) as f64 / seconds;
        let mbs = self.bytes.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0) / seconds;
        println!(
            "{name:<8} {rps:>10.0} req/s {mbs:>10.1} MB/s  server peak RSS {peak_rss_mib} MiB"
        );
        rps
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let seconds: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(5);
    let in_flight: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(32);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(Duration::from_secs(seconds), in_flight));
}

async fn run(duration: Duration, in_flight: usize) {
    let segment: Vec<u8> = (0..SEGMENT_BYTES).map(|i| (i % 251) as u8).collect();
    println!(
        "{} s per protocol, {in_flight} requests in flight, {SEGMENT_BYTES} byte segment",
        duration.as_secs()
    );
    // A fresh server per protocol, so that each peak RSS is its own.
    let start = || ServerProcess::start(&["--tls", "self-signed"], &segment);
    let mut results = Vec::new();
    for (name, http1) in [("h1/tls", true), ("h2/tls", false)] {
        let server = start();
        let pem = std::fs::read(&server.certificate).unwrap();
        let builder = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .resolve("localhost", server.https);
        let client = if http1 {
            builder.http1_only()
        } else {
            builder.http2_prior_knowledge()
        }
        .build()
        .unwrap();
        let url = format!("https://localhost:{}{PATH}", server.https.port());
        let tally = Arc::new(Tally::default());
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..in_flight {
            let (client, tally, url) = (client.clone(), tally.clone(), url.clone());
            workers.push(tokio::spawn(async move {
                while started.elapsed() < duration {
                    let body = client
                        .get(&url)
                        .send()
                        .await
                        .unwrap()
                        .bytes()
                        .await
                        .unwrap();
                    tally.add(body.len());
                }
            }));
        }
        for worker in workers {
            worker.await.unwrap();
        }
        results.push(tally.print(name, started.elapsed(), server.peak_rss_mib()));
    }

    let server = start();
    let h3 = H3Client::connect(server.https, &server.certificate).await;
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..in_flight {
        let (mut send, tally) = (h3.sender(), tally.clone());
        workers.push(tokio::spawn(async move {
            while started.elapsed() < duration {
                let request = http::Request::get(format!("https://localhost{PATH}"))
                    .body(())
                    .unwrap();
                let (_, body) = h3_request(&mut send, request).await;
                tally.add(body.len());
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let h3_rps = tally.print("h3", started.elapsed(), server.peak_rss_mib());
    h3.close().await;
    println!(
        "h3/h1 {:.2}  h3/h2 {:.2}",
        h3_rps / results[0],
        h3_rps / results[1]
    );
    drop(server);
}
