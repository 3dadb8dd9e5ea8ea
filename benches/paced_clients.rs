//! Connection scale at player pace: N HTTP/1.1 clients, each on its own
//! keep-alive connection, fetch one segment every 2 s (a player playing
//! 2-second segments), their first requests spread over the first period.
//! The server is the release build in a process of its own; the clients are
//! hyper's HTTP/1.1 client on one tokio runtime in this process.
//!
//!   cargo build --release --bin streamforge
//!   ulimit -n 20000   # both processes need a descriptor per connection
//!   cargo bench --bench paced_clients [-- CLIENTS SECONDS SEGMENT_BYTES]
//!
//! Defaults: 10,000 clients, 30 s, 128 KiB segments (512 kbit/s, a low
//! rung; 10,000 of them are 640 MB/s on loopback). Prints requests, errors,
//! fetches that took longer than a period (a player would have stalled),
//! fetch time percentiles, the server's CPU use and its memory per
//! connection.

#[path = "support/server_process.rs"]
mod server_process;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use server_process::{SEGMENT_PATH, ServerProcess};

const PERIOD: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    late: AtomicU64,
    connected: AtomicU64,
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let clients = args.first().copied().unwrap_or(10_000);
    let seconds = args.get(1).copied().unwrap_or(30);
    let segment_bytes = args.get(2).copied().unwrap_or(128 * 1024) as usize;
    let segment: Vec<u8> = (0..segment_bytes).map(|i| (i % 251) as u8).collect();
    // Idle timeout well above the period; nothing else changed.
    let server = ServerProcess::start(&[], &segment);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(
        &server,
        clients,
        Duration::from_secs(seconds),
        segment_bytes,
    ));
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU time of `pid`, in clock ticks (100 per second).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |n: usize| {
        fields
            .get(n)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

async fn run(server: &ServerProcess, clients: u64, duration: Duration, segment_bytes: usize) {
    let pid = server.pid();
    let before = rss_kib(pid);
    let tally = Arc::new(Tally::default());
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for n in 0..clients {
        let (tally, latencies, addr) = (tally.clone(), latencies.clone(), server.http);
        // Spread the first requests over the first period, as players
        // joining at different times would be.
        let offset = PERIOD.mul_f64(n as f64 / clients as f64);
        workers.spawn(async move {
            tokio::time::sleep(offset).await;
            if let Err(err) = client(
                addr,
                &tally,
                &latencies,
                started + offset,
                started + duration,
                segment_bytes,
            )
            .await
            {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("client {n}: {err}");
            }
        });
    }
    // Hold: memory and CPU with every connection open and busy.
    tokio::time::sleep(PERIOD * 2).await;
    let held_cpu_start = (cpu_ticks(pid), Instant::now());
    let held = tally.connected.load(Ordering::Relaxed);
    tokio::time::sleep(duration.saturating_sub(PERIOD * 3)).await;
    let cpu = (cpu_ticks(pid) - held_cpu_start.0) as f64
        / 100.0
        / held_cpu_start.1.elapsed().as_secs_f64();
    let during = rss_kib(pid);
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = std::mem::take(&mut *latencies.lock().expect("latencies"));
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d: &Duration| d.as_secs_f64() * 1000.0)
    };
    let requests = tally.requests.load(Ordering::Relaxed);
    println!(
        "{clients} clients, one {segment_bytes}-byte segment every {} s each, {:.0} s",
        PERIOD.as_secs(),
        elapsed
    );
    println!(
        "connections held {held}; requests {requests} ({:.0}/s, {:.1} MB/s); errors {}; fetches longer than a period {}",
        requests as f64 / elapsed,
        tally.bytes.load(Ordering::Relaxed) as f64 / 1e6 / elapsed,
        tally.errors.load(Ordering::Relaxed),
        tally.late.load(Ordering::Relaxed),
    );
    println!(
        "fetch time p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(0.5),
        percentile(0.99),
        percentile(1.0)
    );
    println!(
        "server: CPU {:.0} % of one core while all were connected; RSS {:.1} MiB idle, {:.1} MiB under load ({:.1} KiB per connection), peak {} MiB",
        cpu * 100.0,
        before as f64 / 1024.0,
        during as f64 / 1024.0,
        during.saturating_sub(before) as f64 / held.max(1) as f64,
        server.peak_rss_mib(),
    );
}

/// One player: a keep-alive connection, one GET every period until `until`.
async fn client(
    addr: std::net::SocketAddr,
    tally: &Tally,
    latencies: &std::sync::Mutex<Vec<Duration>>,
    first: Instant,
    until: Instant,
    segment_bytes: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    tally.connected.fetch_add(1, Ordering::Relaxed);
    let mut next = first;
    while next < until {
        tokio::time::sleep_until(next.into()).await;
        let asked = Instant::now();
        let request = http::Request::get(SEGMENT_PATH)
            .header(http::header::HOST, addr.to_string())
            .body(Empty::<bytes::Bytes>::new())?;
        let response = sender.send_request(request).await?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("status {}", response.status()).into());
        }
        let body = response.into_body().collect().await?.to_bytes();
        if body.len() != segment_bytes {
            return Err(format!("{} bytes, not {segment_bytes}", body.len()).into());
        }
        let took = asked.elapsed();
        if took > PERIOD {
            tally.late.fetch_add(1, Ordering::Relaxed);
        }
        tally.requests.fetch_add(1, Ordering::Relaxed);
        tally.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        latencies.lock().expect("latencies").push(took);
        next += PERIOD;
    }
    Ok(())
}
