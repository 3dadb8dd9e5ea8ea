//! A full disk during an upload: the uploads directory is a 3 MiB tmpfs
//! (this test mounts one, so it needs root, as CI runs). The PATCH that
//! does not fit fails with 507 and a message; what was acknowledged stays
//! intact; once space returns (the tmpfs grows) the client resumes from
//! HEAD's offset and the stored original is byte-identical.

mod common;

use common::{TestServer, error_of};

/// A tmpfs mounted on a directory for the test's lifetime.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Self(dir.to_owned())
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_pauses_an_upload_that_resumes_once_space_returns() {
    let data = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::mount(&data.path().join("uploads"), "3m");
    let server = TestServer::start_in(data, |c| c.uploads.process_while_uploading = false).await;
    let source: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let http = reqwest::Client::new();
    let created = http
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", source.len().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let url = server.url(created.headers()["location"].to_str().unwrap());
    let head_offset = async || -> usize {
        http.head(&url)
            .header("tus-resumable", "1.0.0")
            .send()
            .await
            .unwrap()
            .headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };

    // 1 MB PATCHes until the disk is full.
    let mut offset = 0usize;
    let full = loop {
        let end = (offset + 1_000_000).min(source.len());
        let patched = http
            .patch(&url)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(source[offset..end].to_vec())
            .send()
            .await
            .unwrap();
        if patched.status() != 204 {
            break patched;
        }
        offset = end;
        assert!(offset < source.len(), "5 MB fitted in a 3 MiB tmpfs");
    };
    assert_eq!(full.status(), 507);
    let (code, message) = error_of(full).await;
    assert_eq!(code, "storage_full");
    assert!(message.contains("resume"), "{message}");
    // Nothing acknowledged was lost, nothing half-written counts.
    assert_eq!(head_offset().await, offset);
    assert!(offset >= 2_000_000, "{offset}");

    // Space returns: resume from HEAD's offset to the end.
    tmpfs.resize("20m");
    let resumed = http
        .patch(&url)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(source[offset..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 204);
    let asset = resumed.headers()["x-asset-id"].to_str().unwrap().to_owned();
    let original = http
        .get(server.url(&format!("/api/assets/{asset}/original")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(original == source, "the original is byte-identical");
    let data = server.stop_keeping_data().await;
    drop(tmpfs);
    drop(data);
}
