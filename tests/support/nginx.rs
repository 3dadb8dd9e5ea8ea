//! nginx (Debian's) as an HTTP cache in front of a test server: its
//! `proxy_cache` set up with `docs/examples/nginx-cache.conf`, the
//! settings docs/SCALING.md documents, in a temporary directory. Each
//! request is logged with its cache status, for the hit ratio. Dropping
//! it stops nginx and removes the directory.
//!
//! Shared by the test crates with `#[path]`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NginxCache {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

/// One request nginx answered.
#[derive(Clone, Debug)]
pub struct Logged {
    /// `$upstream_cache_status`: HIT, MISS, EXPIRED, UPDATING, … or `-`
    /// (the response was not looked up in the cache).
    pub cache: String,
    pub status: u16,
    pub uri: String,
}

impl NginxCache {
    /// Starts nginx on a free port of 127.0.0.1, caching `origin`
    /// (`http://127.0.0.1:PORT`); panics with the reason if it cannot
    /// (`scripts/setup --test` installs nginx).
    pub fn start(origin: &str) -> Self {
        let origin = origin
            .trim_end_matches('/')
            .strip_prefix("http://")
            .expect("an http:// origin");
        let snippet = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/nginx-cache.conf");
        // nginx takes a port number, not port 0: one the kernel just
        // handed out, tried again if another process took it meanwhile.
        let mut last_error = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("streamforge-nginx")
                .tempdir()
                .expect("a temporary directory");
            let port = free_port();
            let conf = config(dir.path(), origin, port, &snippet);
            std::fs::write(dir.path().join("nginx.conf"), conf).expect("nginx.conf");
            let mut child = Command::new(binary())
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(dir.path().join("nginx.conf"))
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("nginx is installed (scripts/setup --test)");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut stderr) = child.stderr.take() {
                        use std::io::Read;
                        let _ = stderr.read_to_string(&mut err);
                    }
                    last_error = err;
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self { dir, child, port };
                }
                assert!(Instant::now() < deadline, "nginx did not start listening");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("nginx did not start: {last_error}");
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request logged so far.
    pub fn log(&self) -> Vec<Logged> {
        let text = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let mut fields = line.splitn(3, ' ');
                Some(Logged {
                    cache: fields.next()?.to_owned(),
                    status: fields.next()?.parse().ok()?,
                    uri: fields.next()?.to_owned(),
                })
            })
            .collect()
    }
}

impl Drop for NginxCache {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, origin: &str, port: u16, snippet: &Path) -> String {
    let d = dir.display();
    // As root (CI), the workers would run as `nobody` and could not write
    // the cache in this directory.
    let user = if is_root() { "user root;" } else { "" };
    format!(
        "{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {d}/client;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    log_format cache '$upstream_cache_status $status $request_uri';
    access_log {d}/access.log cache;
    proxy_cache_path {d}/cache levels=1:2 keys_zone=streamforge:10m max_size=1g inactive=10m use_temp_path=off;
    upstream streamforge {{ server {origin}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ include {snippet}; }}
    }}
}}
",
        snippet = snippet.display()
    )
}

/// Debian's nginx lives in /usr/sbin, which a user's PATH may lack.
fn binary() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("nginx")
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
