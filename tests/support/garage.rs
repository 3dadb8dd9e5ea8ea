//! A throwaway Garage (an S3-compatible object store) for one test: a
//! single-node cluster in a temporary directory with one bucket and one
//! key, started with `garage server` and configured with its own CLI.
//! Garage binds fixed ports, so free loopback ports are picked first.
//! Dropping it kills the server and removes the directory.
//!
//! `scripts/setup --test` installs `garage` into `~/.cargo/bin`. Shared by
//! the test crates with `#[path]`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BUCKET: &str = "streamforge";
/// The key imported into Garage (its id and secret formats).
pub const KEY_ID: &str = "GK5f0c7e1d2a3b4c5d6e7f8091";
pub const SECRET: &str = "4c6f6e672073656372657420666f72207468652073746f726167652074657374";

pub struct Garage {
    dir: tempfile::TempDir,
    server: Child,
    /// `http://127.0.0.1:PORT`, the S3 endpoint.
    pub endpoint: String,
}

impl Garage {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("streamforge-garage")
            .tempdir()
            .expect("a temporary directory");
        let (rpc, s3) = (free_port(), free_port());
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{meta}\"\n\
                 data_dir = \"{data}\"\n\
                 db_engine = \"sqlite\"\n\
                 replication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"{secret}\"\n\
                 [s3_api]\n\
                 s3_region = \"garage\"\n\
                 api_bind_addr = \"127.0.0.1:{s3}\"\n",
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
                secret = &SECRET[..64],
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let server = Command::new(binary())
            .arg("-c")
            .arg(&config)
            .arg("server")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("garage runs (scripts/setup --test installs it)");
        let mut garage = Garage {
            dir,
            server,
            endpoint: format!("http://127.0.0.1:{s3}"),
        };
        garage.configure(&config);
        garage
    }

    /// Gives the node a role, then makes the bucket and the key.
    fn configure(&mut self, config: &std::path::Path) {
        let cli = |args: &[&str]| -> String {
            let out = Command::new(binary())
                .arg("-c")
                .arg(config)
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "garage {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let started = Instant::now();
        let node = loop {
            let status = Command::new(binary())
                .arg("-c")
                .arg(config)
                .arg("status")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&status.stdout).into_owned();
            if let Some(line) = text.lines().find(|l| l.contains("NO ROLE ASSIGNED")) {
                break line.split_whitespace().next().unwrap().to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "garage did not come up: {text}{}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        cli(&["layout", "apply", "--version", "1"]);
        cli(&["bucket", "create", BUCKET]);
        cli(&[
            "key",
            "import",
            "--yes",
            "-n",
            "streamforge",
            KEY_ID,
            SECRET,
        ]);
        cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            BUCKET,
            "--key",
            "streamforge",
        ]);
    }

    /// The `storage` URL of the bucket, credentials included.
    pub fn storage_url(&self, prefix: &str) -> String {
        format!(
            "s3://{BUCKET}/{prefix}?endpoint={}&region=garage&access_key_id={KEY_ID}&secret_access_key={SECRET}",
            self.endpoint
        )
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn binary() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let installed = home.join(".cargo/bin/garage");
    if installed.exists() {
        installed
    } else {
        PathBuf::from("garage")
    }
}

/// A loopback port free now (Garage cannot be given port 0).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
