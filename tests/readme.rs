//! The README's "Try it" commands, run as written against a test server:
//! the only changes are the addresses (the test server listens on port 0),
//! the placeholders the README asks the reader to fill in (`ASSET_ID`,
//! `sk_…`) and, so that nothing waits for a person: `ffplay` without a
//! display (SDL's dummy drivers) for 2 s of a VOD asset, ffmpeg reading 2 s
//! of a live stream in place of ffplay (which never ends on one), and the
//! live publishers stopped once their stream has been played. `scripts/serve &` is the
//! test server itself.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::TestServer;
use serde_json::Value;
use tokio::process::{Child, Command};

/// How long playing 2 s of a stream may take.
const PLAYING: Duration = Duration::from_secs(20);

/// The commands of the README's first `sh` block under "## Try it", with
/// continuation lines joined and comments dropped.
fn try_it_commands() -> Vec<String> {
    let readme = std::fs::read_to_string("README.md").expect("README.md");
    let section = readme
        .split_once("## Try it")
        .expect("a \"Try it\" section")
        .1;
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a sh block")
        .0;
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        // A comment after the command: two or more spaces, then `# `.
        let line = match line.find("  #") {
            Some(at) => line[..at].trim_end(),
            None => line,
        };
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(line);
                commands.push(std::mem::take(&mut current));
            }
        }
    }
    commands
}

fn shell(command: &str, dir: &std::path::Path) -> Command {
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(command)
        .current_dir(dir)
        .env("SDL_VIDEODRIVER", "dummy")
        .env("SDL_AUDIODRIVER", "dummy")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

async fn run(command: &str, dir: &std::path::Path) -> String {
    let output = tokio::time::timeout(Duration::from_secs(60), shell(command, dir).output())
        .await
        .unwrap_or_else(|_| panic!("{command}: still running after 60 s"))
        .unwrap();
    assert!(
        output.status.success(),
        "{command}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_try_it_commands_work_as_written() {
    let server = TestServer::start_with(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let http = server.url("").trim_start_matches("http://").to_owned();
    let rtmp = server.rtmp_url().trim_start_matches("rtmp://").to_owned();
    let rtsp = server.rtsp_url().trim_start_matches("rtsp://").to_owned();
    let srt = server.srt_url().trim_start_matches("srt://").to_owned();
    let commands = try_it_commands();
    assert!(commands.len() >= 10, "{commands:#?}");
    let (mut asset, mut key) = (None::<String>, None::<String>);
    let mut publisher: Option<Child> = None;
    // A publisher with no play command after it, and its protocol.
    let mut unplayed: Option<&str> = None;
    let mut ran = 0;
    let started = std::time::Instant::now();
    for written in &commands {
        if written == "scripts/serve &" {
            continue;
        }
        let mut command = written
            .replace("localhost:8080", &http)
            .replace("127.0.0.1:1935", &rtmp)
            .replace("127.0.0.1:8554", &rtsp)
            .replace("127.0.0.1:8890", &srt);
        if let Some(id) = &asset {
            command = command.replace("ASSET_ID", id);
        }
        if let Some(k) = &key {
            command = command.replace("sk_…", k);
        }
        assert!(
            !command.contains('…') && !command.contains("ASSET_ID"),
            "a placeholder the README never filled: {command}"
        );
        eprintln!("$ {command}   [{:.1} s]", started.elapsed().as_secs_f64());
        ran += 1;
        if command.starts_with("ffmpeg -re") {
            // A live publisher runs until it is stopped: the next command
            // plays its stream.
            if let Some(protocol) = unplayed.take() {
                assert_publishing(&server, protocol).await;
            }
            if let Some(mut p) = publisher.take() {
                let _ = p.kill().await;
            }
            publisher = Some(shell(&command, dir.path()).spawn().unwrap());
            unplayed = Some(if command.contains("srt://") {
                "srt"
            } else if command.contains("rtsp://") {
                "rtsp"
            } else {
                "rtmp"
            });
            continue;
        }
        if let Some(url) = command.strip_prefix("ffplay ") {
            unplayed = None;
            let url = url.split_whitespace().next().unwrap().to_owned();
            if url.contains("/vod/") {
                // "status: processing, then ready".
                let view = common::wait_for_asset(
                    &server.url(""),
                    asset.as_deref().unwrap(),
                    &["ready", "failed"],
                )
                .await;
                assert_eq!(view["status"], "ready", "{view}");
            }
            // ffplay without a display plays a file to its end; a live
            // stream never ends, so it is played by ffmpeg for 2 s instead
            // (ffplay held on a waiting playlist would print nothing).
            // Live: retried until the stream has started.
            let play = if url.contains("/live/") {
                format!("ffmpeg -v error -i {url} -t 2 -f null -")
            } else {
                format!("ffplay -v error -autoexit -t 2 {url}")
            };
            let mut tries = 0;
            loop {
                let out = tokio::time::timeout(PLAYING, shell(&play, dir.path()).output())
                    .await
                    .map(|out| out.expect("bash runs"));
                let failure = match out {
                    Ok(out) if out.status.success() && out.stderr.is_empty() => break,
                    Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                    Err(_) => format!("still running after {PLAYING:?}"),
                };
                tries += 1;
                assert!(tries < 30, "{play}: {failure}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if let Some(mut p) = publisher.take() {
                let _ = p.kill().await;
            }
            continue;
        }
        let out = run(&command, dir.path()).await;
        if command.contains("/healthz") {
            assert!(out.contains("\"ok\""), "{out}");
        } else if command.contains("/api/uploads") {
            let created: Value = serde_json::from_str(&out).expect(&out);
            asset = created["asset_id"].as_str().map(str::to_owned);
            assert!(asset.is_some(), "{out}");
        } else if command.contains("/api/live/keys") {
            let created: Value = serde_json::from_str(&out).expect(&out);
            key = created["key"].as_str().map(str::to_owned);
            assert!(key.is_some(), "{out}");
            assert!(
                created["rtmp_stream_name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("cam?key=sk_")),
                "{out}"
            );
        } else if command.contains("/metrics") {
            assert!(out.contains("streamforge_"), "{out}");
        }
    }
    // The last publishers (RTSP, SRT) have no play command after them:
    // each must be publishing, and playable, all the same.
    if let Some(protocol) = unplayed.take() {
        assert_publishing(&server, protocol).await;
    }
    if let Some(mut p) = publisher.take() {
        let _ = p.kill().await;
    }
    assert_eq!(ran, commands.len() - 1, "every command but the server ran");
    server.stop().await;
}

/// Stream `cam` is live by `protocol` and playable.
async fn assert_publishing(server: &TestServer, protocol: &str) {
    let mut tries = 0;
    loop {
        let status: Value = reqwest::get(server.url("/api/live/cam"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(status["last_error"].is_null(), "{status}");
        if status["live"] == true && status["protocol"] == protocol && status["playable"] == true {
            return;
        }
        tries += 1;
        assert!(tries < 60, "the {protocol} publish never started: {status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
