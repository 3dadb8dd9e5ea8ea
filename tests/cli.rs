//! The real binary: configuration layering and errors, `--help`, and a clean
//! stop on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn streamforge() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_streamforge"));
    // The tests set exactly the variables they mean to.
    for (name, _) in std::env::vars() {
        if name.starts_with("STREAMFORGE_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
}

/// `streamforge serve` on loopback port 0 for every listener, with its
/// data in `data`.
fn serve(data: &std::path::Path) -> Command {
    let mut command = streamforge();
    command
        .args(common::SERVE_ON_LOOPBACK)
        .env("STREAMFORGE_LIVE_RTSP_UDP_PORTS", "[0, 0]")
        .arg("--data-dir")
        .arg(data);
    command
}

fn effective_config(command: &mut Command) -> toml::Table {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().parse().unwrap()
}

#[test]
fn help_explains_every_option() {
    let output = streamforge().args(["serve", "--help"]).output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--config",
        "--data-dir",
        "--storage",
        "--database",
        "--listen",
        "--max-header-bytes",
        "--max-headers",
        "--max-body-bytes",
        "--idle-timeout",
        "--header-timeout",
        "--shutdown-grace",
        "--log-filter",
        "--log-format",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}:\n{help}");
    }
    let top = streamforge().arg("--help").output().unwrap();
    let top = String::from_utf8(top.stdout).unwrap();
    assert!(
        top.contains("serve") && top.contains("STREAMFORGE_"),
        "{top}"
    );
}

#[test]
fn flags_beat_the_file_which_beats_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("streamforge.toml");
    std::fs::write(
        &file,
        "data_dir = \"/srv/file\"\n[http]\nlisten = \"127.0.0.1:7001\"\nidle_timeout = \"90s\"\n",
    )
    .unwrap();

    let config = effective_config(
        streamforge()
            .args(["config", "--config"])
            .arg(&file)
            .args(["--listen", "127.0.0.1:7002"])
            .env("STREAMFORGE_HTTP_LISTEN", "127.0.0.1:7003")
            .env("STREAMFORGE_HTTP_MAX_HEADERS", "42")
            .env("STREAMFORGE_DATA_DIR", "/srv/env")
            .env("STREAMFORGE_LOG_FORMAT", "json"),
    );
    let http = config["http"].as_table().unwrap();
    assert_eq!(http["listen"].as_str(), Some("127.0.0.1:7002"), "flag wins");
    assert_eq!(
        config["data_dir"].as_str(),
        Some("/srv/file"),
        "file beats env"
    );
    assert_eq!(http["idle_timeout"].as_str(), Some("1m 30s"));
    assert_eq!(
        http["max_headers"].as_integer(),
        Some(42),
        "env beats default"
    );
    assert_eq!(config["log"]["format"].as_str(), Some("json"));
    assert_eq!(
        http["max_body_bytes"].as_integer(),
        Some(1024 * 1024),
        "default"
    );
}

fn config_error(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "invalid configuration must exit 2"
    );
    String::from_utf8(output.stderr).unwrap()
}

/// The file `config --default` prints is a configuration the server loads
/// as its defaults, and edits to it take effect.
#[test]
fn the_default_file_is_a_starting_point() {
    let output = streamforge()
        .args(["config", "--default"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("\n# A stream whose publisher left waits this long"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("streamforge.toml");
    std::fs::write(&file, &text).unwrap();
    let defaults = effective_config(streamforge().arg("config"));
    let from_file = effective_config(streamforge().arg("--config").arg(&file).arg("config"));
    assert_eq!(from_file, defaults);
    std::fs::write(
        &file,
        text.replace("reconnect_grace = \"10s\"", "reconnect_grace = \"3s\""),
    )
    .unwrap();
    let edited = effective_config(streamforge().arg("--config").arg(&file).arg("config"));
    assert_eq!(edited["live"]["reconnect_grace"].as_str(), Some("3s"));
    // The reference documents the same keys.
    let reference = streamforge()
        .args(["config", "--reference"])
        .output()
        .unwrap();
    let reference = String::from_utf8(reference.stdout).unwrap();
    assert!(
        reference.contains(
            "| `reconnect_grace` | duration | `\"10s\"` | `STREAMFORGE_LIVE_RECONNECT_GRACE` |"
        ),
        "{reference}"
    );
}

#[test]
fn invalid_values_name_the_key_and_the_problem() {
    let message = config_error(
        streamforge()
            .arg("config")
            .env("STREAMFORGE_HTTP_LISTEN", "not-an-address"),
    );
    assert!(message.contains("http.listen"), "{message}");
    assert!(message.contains("STREAMFORGE_HTTP_LISTEN"), "{message}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[http]\nmax_headers = 0\n").unwrap();
    let message = config_error(streamforge().args(["config", "--config"]).arg(&file));
    assert!(message.contains("`http.max_headers`"), "{message}");
    assert!(message.contains("between 1 and 1000"), "{message}");

    std::fs::write(&file, "[http]\nidle_timout = \"5s\"\n").unwrap();
    let message = config_error(streamforge().args(["config", "--config"]).arg(&file));
    assert!(
        message.contains("idle_timout"),
        "unknown keys are named: {message}"
    );

    std::fs::write(
        &file,
        "[[transcode.ladder]]\nheight = 720\nvideo_kbps = 2500\naudio_kbps = 128\n\
         [[transcode.ladder]]\nheight = 360\nvideo_kbps = 800\naudio_kbps = 96\n",
    )
    .unwrap();
    let message = config_error(streamforge().args(["config", "--config"]).arg(&file));
    assert!(
        message.contains("`transcode.ladder`") && message.contains("heights must increase"),
        "{message}"
    );

    std::fs::write(
        &file,
        "[[live.streams]]\nname = \"main\"\nladder = [{ height = 241, video_kbps = 400 }]\n",
    )
    .unwrap();
    let message = config_error(streamforge().args(["config", "--config"]).arg(&file));
    assert!(
        message.contains("`live.streams.ladder`") && message.contains("even"),
        "{message}"
    );
    std::fs::write(
        &file,
        "[[live.streams]]\nname = \"main\"\nladder = [{ height = 240, video_kbps = 400 }]\n",
    )
    .unwrap();
    let config = effective_config(streamforge().args(["config", "--config"]).arg(&file));
    assert_eq!(
        config["live"]["streams"][0]["ladder"][0]["height"].as_integer(),
        Some(240)
    );

    std::fs::write(
        &file,
        "[[webhooks]]\nurl = \"https://hooks.example.com/in\"\nevents = [\"asset.ready\"]\n\
         secret = \"whsec_c2hvcnQ=\"\n",
    )
    .unwrap();
    let message = config_error(streamforge().args(["config", "--config"]).arg(&file));
    assert!(
        message.contains("`webhooks`") && message.contains("24 to 64 bytes"),
        "{message}"
    );
    std::fs::write(
        &file,
        "[[webhooks]]\nurl = \"https://hooks.example.com/in\"\nevents = [\"asset.done\"]\n\
         secret = \"whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n",
    )
    .unwrap();
    let message = config_error(streamforge().args(["config", "--config"]).arg(&file));
    assert!(message.contains("asset.done"), "{message}");

    let message = config_error(
        streamforge()
            .arg("config")
            .env("STREAMFORGE_TRANSCODE_CLAIM_EVERY", "10s"),
    );
    assert!(
        message.contains("`transcode.claim_every`") && message.contains("lease"),
        "leases would run out between renewals: {message}"
    );

    std::fs::write(&file, "storage = \"ftp://example.com/x\"\n").unwrap();
    let message = config_error(streamforge().args(["config", "--config"]).arg(&file));
    assert!(
        message.contains("`storage`") && message.contains("ftp"),
        "{message}"
    );

    let message = config_error(
        streamforge()
            .args(["config", "--config"])
            .arg(dir.path().join("missing.toml")),
    );
    assert!(message.contains("does not exist"), "{message}");

    let output = streamforge()
        .args(["serve", "--listen", "nowhere"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--listen"));
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = serve(dir.path())
        .args(["--log-format", "json"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("the server logs its address").unwrap();
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["message"] == "streamforge listening" {
            break event["http"].as_str().unwrap().to_owned();
        }
    };
    let body = reqwest::blocking_get(&addr);
    assert!(body.contains("\"ok\""), "{body}");

    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("streamforge stopped")),
        "{rest:#?}"
    );

    // The run was recorded as cleanly stopped: the next start reports no crash.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("streamforge.db").display());
        let db = streamforge_actors::db::Database::open(&url).await.unwrap();
        let (_, unclean) = db.begin_run("test").await.unwrap();
        assert!(unclean.is_empty(), "{unclean:?}");
        db.close().await;
    });
}

mod reqwest {
    /// GET /healthz over a plain TCP socket: no async runtime needed here.
    pub fn blocking_get(addr: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }
}

/// The service unit passes `systemd-analyze verify` (with `ExecStart`
/// pointing at this build: verify checks the binary exists), without a
/// word of warning (an unknown directive only warns).
#[test]
fn the_service_unit_verifies() {
    let Ok(found) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed here: the unit is not verified");
        return;
    };
    assert!(found.status.success());
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dist/streamforge.service"
    ))
    .unwrap();
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ReadWritePaths=/var/lib/streamforge",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streamforge.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/streamforge",
            env!("CARGO_BIN_EXE_streamforge"),
        ),
    )
    .unwrap();
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(
        verified.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

/// Under systemd (`Type=notify`): the server says `READY=1` once it
/// listens, pings the watchdog twice per `WATCHDOG_USEC`, and says
/// `STOPPING=1` on SIGTERM. The test is the service manager's socket.
#[test]
fn systemd_hears_ready_watchdog_pings_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut child = serve(&dir.path().join("data"))
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let next = || {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = next();
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(
        ready.contains("STATUS=listening on http://127.0.0.1:"),
        "{ready}"
    );
    let pings = (0..3).map(|_| next()).collect::<Vec<_>>();
    assert!(pings.iter().all(|p| p == "WATCHDOG=1\n"), "{pings:?}");

    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let stopping = loop {
        let said = next();
        if said != "WATCHDOG=1\n" {
            break said;
        }
    };
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping}");
    assert!(child.wait().unwrap().success());
}

/// `streamforge openapi` prints the description the server serves, for
/// client generators, without a server.
#[test]
fn the_openapi_description_prints_without_a_server() {
    let output = streamforge().arg("openapi").output().unwrap();
    assert!(output.status.success());
    let spec: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    assert!(spec["paths"]["/api/webhooks"]["post"]["responses"]["201"].is_object());
    assert_eq!(
        spec["paths"]["/api/imports"]["post"]["responses"]["400"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/ErrorEnvelope"
    );
}
