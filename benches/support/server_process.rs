//! The server under test for the benches, as a process of its own started
//! from the release build (`STREAMFORGE_BIN` names another binary;
//! `SF_SERVER_ENV=NAME=VALUE,…` adds to its environment), with its peak
//! resident memory sampled every 0.1 s.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where the segment given to [`ServerProcess::start`] is served.
pub const SEGMENT_PATH: &str = "/vod/bench/v1/seg-00001.m4s";

/// The server under test, in a process of its own; killed on drop.
pub struct ServerProcess {
    child: std::process::Child,
    /// Plain HTTP (HTTP/1.1, h2c).
    pub http: SocketAddr,
    /// HTTPS and HTTP/3, with `--tls`.
    pub https: SocketAddr,
    /// The self-signed certificate, with `--tls self-signed`.
    pub certificate: std::path::PathBuf,
    peak: Arc<AtomicU64>,
    _data: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts `streamforge serve` with `args` (beyond the listen addresses
    /// and data directory), serving `segment` at [`SEGMENT_PATH`].
    pub fn start(args: &[&str], segment: &[u8]) -> ServerProcess {
        let data = tempfile::tempdir().expect("temporary directory");
        let media = data.path().join("media/assets/bench/media/v1");
        std::fs::create_dir_all(&media).expect("media directory");
        std::fs::write(media.join("seg-00001.m4s"), segment).expect("segment written");
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port()
        };
        let (http_port, tls_port) = (free_port(), free_port());
        let binary = std::env::var("STREAMFORGE_BIN").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/streamforge").into()
        });
        let mut command = std::process::Command::new(&binary);
        // The server reads `STREAMFORGE_*` as its configuration.
        command.env_remove("STREAMFORGE_BIN");
        command
            .args(["serve", "--log-filter", "warn"])
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{http_port}")])
            .args(["--tls-listen", &format!("127.0.0.1:{tls_port}")])
            .args(["--rtmp-listen", "127.0.0.1:0"])
            .args(["--srt-listen", "127.0.0.1:0"])
            .args(["--webrtc-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data.path());
        for pair in std::env::var("SF_SERVER_ENV")
            .unwrap_or_default()
            .split(',')
        {
            if let Some((name, value)) = pair.split_once('=') {
                command.env(name, value);
            }
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{binary}: {e} (cargo build --release --bin streamforge)"));
        let http: SocketAddr = format!("127.0.0.1:{http_port}").parse().expect("address");
        let https: SocketAddr = format!("127.0.0.1:{tls_port}").parse().expect("address");
        // Ready when /healthz answers (every listener is bound by then,
        // and a self-signed certificate written).
        let started = Instant::now();
        while !healthy(http) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let peak = Arc::new(AtomicU64::new(0));
        let (pid, sampled) = (child.id(), peak.clone());
        std::thread::spawn(move || {
            while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                let kib = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    .unwrap_or(0);
                sampled.fetch_max(kib, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        ServerProcess {
            child,
            http,
            https,
            certificate: data.path().join("tls/self-signed-cert.pem"),
            peak,
            _data: data,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn peak_rss_mib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed) / 1024
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `GET /healthz` on `addr` answers 200.
fn healthy(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}
