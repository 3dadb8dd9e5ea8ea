//! `streamforge package` against real peers: an ffmpeg-made MP4 (H.264 with
//! B-frames and 1 s GOPs, AAC) is packaged by the binary, then ffprobe reads
//! the HLS and the DASH output and must see the source's packets (timestamps,
//! keyframes, A/V alignment), ffmpeg must decode both without a message, and
//! the I-frame playlist must address every keyframe's `moof`. Broken inputs
//! must fail with exit code 1 and a message, never a panic.
//!
//! ffmpeg and ffprobe are required (`scripts/setup` installs them); the tests
//! fail, rather than skip, without them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn require_ffmpeg() {
    for tool in ["ffmpeg", "ffprobe"] {
        let ok = Command::new(tool)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "{tool} is required on PATH (run scripts/setup)");
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn streamforge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_streamforge"))
}

/// 6 s of 320x240 30 fps H.264 (2 B-frames, a keyframe every 30 frames) and
/// 48 kHz stereo AAC; the `moov` is at the end, as ffmpeg writes by default.
fn make_source(dir: &Path) -> PathBuf {
    let source = dir.join("source.mp4");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "6", "-pix_fmt", "yuv420p"])
        .args([
            "-c:v",
            "libx264",
            "-bf",
            "2",
            "-g",
            "30",
            "-keyint_min",
            "30",
        ])
        .args(["-sc_threshold", "0"])
        .args(["-c:a", "aac", "-ar", "48000", "-ac", "2"])
        .arg(&source));
    source
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packet {
    pts: i64,
    dts: i64,
    keyframe: bool,
}

#[derive(Debug)]
struct Stream {
    time_base: String,
    packets: Vec<Packet>,
}

#[derive(Debug)]
struct Probe {
    video: Stream,
    audio: Stream,
    duration: f64,
}

impl Stream {
    fn seconds(&self, ticks: i64) -> f64 {
        let (num, den) = self.time_base.split_once('/').expect("time base n/d");
        let (num, den): (f64, f64) = (num.parse().unwrap(), den.parse().unwrap());
        ticks as f64 * num / den
    }
}

/// Streams and packets as ffprobe sees them; streams are found by type,
/// since the HLS demuxer orders them differently from the source.
fn probe(input: &Path) -> Probe {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_packets",
            "-show_streams",
            "-show_format",
        ])
        .args(["-of", "json"])
        .arg(input));
    let json: Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let streams = json["streams"].as_array().expect("streams");
    let stream = |kind: &str| {
        let s = streams
            .iter()
            .find(|s| s["codec_type"] == kind)
            .unwrap_or_else(|| panic!("{}: no {kind} stream", input.display()));
        let index = s["index"].as_u64().expect("stream index");
        let packets = json["packets"]
            .as_array()
            .expect("packets")
            .iter()
            .filter(|p| p["stream_index"].as_u64() == Some(index))
            .map(|p| Packet {
                pts: p["pts"].as_i64().expect("pts"),
                dts: p["dts"].as_i64().expect("dts"),
                keyframe: p["flags"].as_str().is_some_and(|f| f.contains('K')),
            })
            .collect();
        Stream {
            time_base: s["time_base"].as_str().expect("time_base").to_owned(),
            packets,
        }
    };
    Probe {
        video: stream("video"),
        audio: stream("audio"),
        duration: json["format"]["duration"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .expect("format duration"),
    }
}

/// How many audio packets ffmpeg's DASH demuxer returns for ffmpeg's own
/// DASH remux of `source`: it ends the whole presentation at the first
/// representation's end (the video's), so audio past it is not returned
/// whoever packaged it.
fn ffmpeg_dash_audio_packets(source: &Path, dir: &Path) -> usize {
    let reference = dir.join("ffmpeg-dash");
    std::fs::create_dir_all(&reference).unwrap();
    let mpd = reference.join("reference.mpd");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(source)
        .args(["-c", "copy", "-f", "dash", "-seg_duration", "2"])
        .arg(&mpd));
    probe(&mpd).audio.packets.len()
}

/// `audio_packets`: how many of the source's audio packets the demuxer can
/// return (all of them, but for DASH).
fn assert_same_media(what: &str, actual: &Probe, source: &Probe, audio_packets: usize) {
    assert_eq!(actual.video.time_base, source.video.time_base, "{what}");
    assert_eq!(actual.audio.time_base, source.audio.time_base, "{what}");
    assert_eq!(
        actual.video.packets.len(),
        source.video.packets.len(),
        "{what}: video packet count"
    );
    for (n, (a, s)) in actual
        .video
        .packets
        .iter()
        .zip(&source.video.packets)
        .enumerate()
    {
        assert_eq!(a, s, "{what}: video packet {n}");
    }
    // Audio durations are not compared: ffmpeg's mov demuxer derives the
    // last fragmented AAC packet's duration itself. Timestamps are exact.
    let pts = |s: &Stream| s.packets.iter().map(|p| p.pts).collect::<Vec<_>>();
    assert_eq!(
        pts(&actual.audio),
        pts(&source.audio)[..audio_packets],
        "{what}: audio pts"
    );
    let frame = 1.0 / 30.0;
    assert!(
        (actual.duration - source.duration).abs() <= frame,
        "{what}: duration {} vs source {}",
        actual.duration,
        source.duration
    );
    // A/V sync: each stream starts when the source's does.
    for (a, s, kind) in [
        (&actual.video, &source.video, "video"),
        (&actual.audio, &source.audio, "audio"),
    ] {
        let first = |st: &Stream| st.seconds(st.packets[0].pts);
        assert_eq!(first(a), first(s), "{what}: first {kind} pts");
    }
}

fn assert_decodes_cleanly(input: &Path) {
    let out = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(input)
        .args(["-f", "null", "-"]));
    assert!(
        out.stderr.is_empty(),
        "ffmpeg decoding {}: {}",
        input.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct IFrame {
    duration: f64,
    length: usize,
    offset: usize,
    uri: String,
}

fn parse_i_frames(text: &str) -> Vec<IFrame> {
    assert!(text.contains("#EXT-X-I-FRAMES-ONLY") && text.contains("#EXT-X-ENDLIST"));
    let mut entries = Vec::new();
    let (mut duration, mut range) = (None, None);
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = Some(d.trim_end_matches(',').parse::<f64>().expect("EXTINF"));
        } else if let Some(r) = line.strip_prefix("#EXT-X-BYTERANGE:") {
            let (length, offset) = r.split_once('@').expect("explicit offset");
            range = Some((length.parse().unwrap(), offset.parse().unwrap()));
        } else if !line.starts_with('#') && !line.is_empty() {
            let (length, offset) = range.take().expect("BYTERANGE before the URI");
            entries.push(IFrame {
                duration: duration.take().expect("EXTINF before the URI"),
                length,
                offset,
                uri: line.to_owned(),
            });
        }
    }
    entries
}

#[test]
fn packages_hls_and_dash_that_ffmpeg_reads_as_the_source() {
    require_ffmpeg();
    let dir = tempfile::tempdir().expect("temp dir");
    let source = make_source(dir.path());
    let out = dir.path().join("out");
    let result = run(streamforge()
        .arg("package")
        .arg(&source)
        .arg("--out")
        .arg(&out)
        .args(["--segment-duration", "2s"]));
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        stdout.starts_with("packaged ") && stdout.contains("2 tracks"),
        "{stdout}"
    );
    for file in [
        "master.m3u8",
        "manifest.mpd",
        "v1/init.mp4",
        "v1/media.m3u8",
        "v1/iframes.m3u8",
        "v1/seg-00001.m4s",
        "a1/init.mp4",
        "a1/media.m3u8",
    ] {
        assert!(out.join(file).is_file(), "missing {file}");
    }

    let expected = probe(&source);
    assert_eq!(expected.video.packets.len(), 180);
    assert!(expected.video.packets.iter().any(|p| p.pts != p.dts));
    // ffmpeg 5.1's DASH demuxer resolves segment URLs against a relative
    // manifest path twice; the temp dir path is absolute.
    let hls = out.join("master.m3u8");
    let dash = out.join("manifest.mpd");
    assert!(dash.is_absolute());
    assert_same_media("HLS", &probe(&hls), &expected, expected.audio.packets.len());
    let dash_audio = ffmpeg_dash_audio_packets(&source, dir.path());
    assert!(dash_audio + 2 >= expected.audio.packets.len());
    assert_same_media("DASH", &probe(&dash), &expected, dash_audio);
    assert_decodes_cleanly(&hls);
    assert_decodes_cleanly(&dash);

    // The I-frame playlist: every source keyframe, at its time, each range
    // opening on a `moof` in its segment file.
    let text = std::fs::read_to_string(out.join("v1/iframes.m3u8")).unwrap();
    let entries = parse_i_frames(&text);
    let video = &expected.video;
    let keyframes: Vec<f64> = video
        .packets
        .iter()
        .filter(|p| p.keyframe)
        .map(|p| video.seconds(p.pts))
        .collect();
    assert_eq!(entries.len(), keyframes.len());
    assert_eq!(entries.len(), 6);
    let mut start = keyframes[0];
    for (entry, &time) in entries.iter().zip(&keyframes) {
        assert!(
            (start - time).abs() < 1e-3,
            "entry at {start}, keyframe at {time}"
        );
        start += entry.duration;
        let segment = std::fs::read(out.join("v1").join(&entry.uri)).unwrap();
        assert!(entry.offset + entry.length <= segment.len());
        let at = &segment[entry.offset..];
        let moof = u32::from_be_bytes([at[0], at[1], at[2], at[3]]) as usize;
        assert_eq!(&at[4..8], b"moof", "{} @{}", entry.uri, entry.offset);
        assert_eq!(&at[moof + 4..moof + 8], b"mdat");
        // The range is the whole fragment: the mdat ends where it ends.
        let mdat = u32::from_be_bytes([at[moof], at[moof + 1], at[moof + 2], at[moof + 3]]);
        assert_eq!(entry.length, moof + mdat as usize);
    }
    // A demuxer that knows nothing of I-frame playlists (ffmpeg's) still
    // reads each range as a complete fragment: one frame per keyframe.
    let i_frames = out.join("v1/iframes.m3u8");
    assert_decodes_cleanly(&i_frames);
    let decoded = run(Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&i_frames));
    // ffprobe lists the stream once under its HLS program and once alone.
    let counts = String::from_utf8_lossy(&decoded.stdout).into_owned();
    let counts: Vec<&str> = counts.lines().filter(|l| !l.is_empty()).collect();
    assert!(
        !counts.is_empty() && counts.iter().all(|&c| c == "6"),
        "{counts:?}"
    );
    let master = std::fs::read_to_string(&hls).unwrap();
    assert!(master.contains("#EXT-X-I-FRAME-STREAM-INF:"), "{master}");
    assert!(
        master.contains("CODECS=\"avc1.64000d,mp4a.40.2\",RESOLUTION=320x240,FRAME-RATE=30.000"),
        "{master}"
    );
}

fn package_fails(input: &Path, out: &Path) -> String {
    let result = streamforge()
        .arg("package")
        .arg(input)
        .arg("--out")
        .arg(out)
        .output()
        .expect("spawn streamforge");
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.starts_with("streamforge package: "), "{stderr}");
    stderr
}

#[test]
fn broken_inputs_fail_with_a_message() {
    require_ffmpeg();
    let dir = tempfile::tempdir().expect("temp dir");
    let source = make_source(dir.path());
    let out = dir.path().join("out");
    let bytes = std::fs::read(&source).unwrap();

    let truncated = dir.path().join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() * 3 / 10]).unwrap();
    let message = package_fails(&truncated, &out);
    assert!(message.contains("truncated"), "{message}");

    let noise = dir.path().join("noise.mp4");
    let random: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&noise, random).unwrap();
    let message = package_fails(&noise, &out);
    assert!(message.contains("not an MP4"), "{message}");

    let message = package_fails(&dir.path().join("missing.mp4"), &out);
    assert!(message.contains("cannot open"), "{message}");

    // An audio-only MP3 in an MP4 container: the sample entry is unsupported.
    let mp3 = dir.path().join("mp3.mp4");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&source)
        .args(["-vn", "-c:a", "libmp3lame"])
        .arg(&mp3));
    let message = package_fails(&mp3, &out);
    assert!(message.contains("unsupported"), "{message}");
}

#[test]
fn help_documents_the_subcommand() {
    let top = run(streamforge().arg("--help"));
    assert!(String::from_utf8_lossy(&top.stdout).contains("package"));
    let help = run(streamforge().args(["package", "--help"]));
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--out", "--segment-duration", "--part-duration", "INPUT"] {
        assert!(help.contains(flag), "package --help lacks {flag}:\n{help}");
    }
}
