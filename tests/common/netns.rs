//! A network namespace of a test's own (its own 127.0.0.1), with
//! nftables dropping UDP at random: the lossy link of the SRT and WHIP loss
//! tests (the kernel here has no `tc netem`; a random drop is the same loss
//! model). Needs root, iproute2 and nftables.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

/// A network namespace, deleted on drop.
pub struct Namespace(String);

impl Namespace {
    pub fn new(tag: &str) -> Namespace {
        let name = format!("sf-{tag}-{}", std::process::id());
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &name])
            .status();
        let run = |args: &[&str]| {
            let status = std::process::Command::new("ip")
                .args(args)
                .status()
                .expect("iproute2 is installed (scripts/setup --test)");
            assert!(status.success(), "ip {args:?} (the test needs root)");
        };
        run(&["netns", "add", &name]);
        let ns = Namespace(name);
        run(&["netns", "exec", &ns.0, "ip", "link", "set", "lo", "up"]);
        // An interface besides loopback (a veth pair with an address):
        // Chromium gathers no ICE candidate without one, and its offer
        // never completes.
        let exec = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns.0, "ip"];
            all.extend_from_slice(args);
            run(&all);
        };
        exec(&["link", "add", "sf0", "type", "veth", "peer", "name", "sf1"]);
        exec(&["addr", "add", "10.254.0.1/24", "dev", "sf0"]);
        exec(&["link", "set", "sf0", "up"]);
        exec(&["link", "set", "sf1", "up"]);
        ns
    }

    /// `program args…` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.0, program]);
        command
    }

    /// Drops `percent` % of UDP datagrams at random (loopback traffic
    /// passes the input hook once per direction).
    pub async fn lose_udp(&self, percent: u32) {
        let rules = format!(
            "table inet loss {{\n chain input {{\n  type filter hook input priority 0;\n  \
             meta l4proto udp numgen random mod 100 < {percent} counter drop\n }}\n}}\n"
        );
        let mut nft = self
            .command("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("nftables is installed (scripts/setup --test)");
        use tokio::io::AsyncWriteExt;
        let mut stdin = nft.stdin.take().unwrap();
        stdin.write_all(rules.as_bytes()).await.unwrap();
        drop(stdin);
        assert!(nft.wait().await.unwrap().success(), "nft");
    }

    /// Datagrams the rule dropped.
    pub async fn dropped(&self) -> u64 {
        let out = self
            .command("nft")
            .args(["list", "ruleset"])
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.split("packets ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// A server (`open_publish`, a 300 ms reconnect grace, 20 segments in
    /// the window) in the namespace, its JSON log gathered in `log`; the
    /// child and its "listening" line.
    pub async fn server(
        &self,
        data: &Path,
        log: Arc<Mutex<Vec<Value>>>,
    ) -> (tokio::process::Child, Value) {
        let mut child = self
            .command(env!("CARGO_BIN_EXE_streamforge"))
            .args(super::SERVE_ON_LOOPBACK)
            .args([
                "--rtsp-udp-ports",
                "off",
                "--tls",
                "off",
                "--log-format",
                "json",
            ])
            .arg("--data-dir")
            .arg(data)
            .env("STREAMFORGE_LIVE_OPEN_PUBLISH", "true")
            .env("STREAMFORGE_LIVE_RECONNECT_GRACE", "300ms")
            .env("STREAMFORGE_LIVE_WINDOW_SEGMENTS", "20")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let listening = super::await_listening(&mut child, Some(log)).await;
        (child, listening)
    }

    /// Waits for `stream` to end and its playlists with it; its status.
    pub async fn wait_ended(&self, http: &str, stream: &str) -> Value {
        let ns = self;
        let status_url = format!("{http}/api/live/{stream}");
        let mut status = Value::Null;
        for _ in 0..100 {
            let out = ns
                .command("curl")
                .args(["-fs", &status_url])
                .output()
                .await
                .unwrap();
            status = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            if status["live"] == false && status["samples"].as_u64().unwrap_or(0) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(status["live"], false, "{status}");
        // The playlists end once the reconnect grace is over (before, ffprobe
        // would read them as live, from three segments before the end).
        for rendition in ["v1", "a1"] {
            let url = format!("{http}/live/{stream}/{rendition}/media.m3u8");
            let mut ended = false;
            for _ in 0..100 {
                let out = ns
                    .command("curl")
                    .args(["-fs", &url])
                    .output()
                    .await
                    .unwrap();
                if String::from_utf8_lossy(&out.stdout).contains("#EXT-X-ENDLIST") {
                    ended = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(ended, "{rendition} never ended");
        }
        status
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}
