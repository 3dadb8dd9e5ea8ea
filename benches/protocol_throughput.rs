//! HTTP/3 throughput against our own HTTP/1.1 and HTTP/2 (both over TLS):
//! same server, same cached 512 KiB segment, same number of requests in
//! flight. Prints requests/s and MB/s per protocol and the ratios.
//!
//!   cargo bench --bench protocol_throughput [-- SECONDS IN_FLIGHT]
//!
//! HTTP/1.1 uses one connection per request in flight; HTTP/2 and HTTP/3
//! multiplex every request over one connection, as browsers do.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{H3Client, TestServer, h3_request};
use streamforge::config::TlsMode;
use streamforge_actors::storage::{ObjectKey, Storage};

const SEGMENT_BYTES: usize = 512 * 1024;
const PATH: &str = "/vod/bench/v1/seg-00001.m4s";

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

    fn print(&self, name: &str, elapsed: Duration) -> f64 {
        let seconds = elapsed.as_secs_f64();
        let rps = self.requests.load(Ordering::Relaxed) as f64 / seconds;
        let mbs = self.bytes.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0) / seconds;
        println!("{name:<8} {rps:>10.0} req/s {mbs:>10.1} MB/s");
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
    let server = TestServer::start_with(|c| {
        c.tls.mode = TlsMode::SelfSigned;
        c.tls.listen = "127.0.0.1:0".parse().unwrap();
        c.log.filter = "warn".into();
    })
    .await;
    let storage = Storage::local(&server.data.path().join("media")).unwrap();
    let segment: Vec<u8> = (0..SEGMENT_BYTES).map(|i| (i % 251) as u8).collect();
    storage
        .put(
            &ObjectKey::new("assets/bench/media/v1/seg-00001.m4s").unwrap(),
            Bytes::from(segment),
        )
        .await
        .unwrap();
    let running = server.running.as_ref().unwrap();
    let https = running.https_addr().unwrap();
    let certificate = running.certificate().unwrap().to_owned();
    let pem = std::fs::read(&certificate).unwrap();
    let client = |http1: bool| {
        let builder = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .resolve("localhost", https);
        if http1 {
            builder.http1_only()
        } else {
            builder.http2_prior_knowledge()
        }
        .build()
        .unwrap()
    };
    let url = format!("https://localhost:{}{PATH}", https.port());
    println!(
        "{} s per protocol, {in_flight} requests in flight, {SEGMENT_BYTES} byte segment",
        duration.as_secs()
    );

    let mut results = Vec::new();
    for (name, http1) in [("h1/tls", true), ("h2/tls", false)] {
        let client = client(http1);
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
        results.push(tally.print(name, started.elapsed()));
    }

    let h3 = H3Client::connect(https, &certificate).await;
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
    let h3_rps = tally.print("h3", started.elapsed());
    h3.close().await;
    println!(
        "h3/h1 {:.2}  h3/h2 {:.2}",
        h3_rps / results[0],
        h3_rps / results[1]
    );
    server.stop().await;
}
