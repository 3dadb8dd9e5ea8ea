//! Upload sessions on their own: durability across restarts, bytes of an
//! interrupted PATCH, expiry.

use std::time::Duration;

use bytes::Bytes;
use streamforge_actors::db::Database;
use streamforge_actors::process::Processes;
use streamforge_actors::storage::{ObjectKey, Storage};
use streamforge_actors::supervision::Supervision;
use streamforge_actors::uploads::{NewUpload, UploadError, UploadSessionMsg, Uploads};

struct Fixture {
    dir: tempfile::TempDir,
    uploads: Uploads,
    storage: Storage,
    tree: Supervision,
}

async fn fixture(dir: Option<tempfile::TempDir>, expire_after: Duration) -> Fixture {
    let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
    let db = Database::open(&format!(
        "sqlite://{}",
        dir.path().join("db.sqlite").display()
    ))
    .await
    .unwrap();
    let storage = Storage::local(&dir.path().join("media")).unwrap();
    let tree = Supervision::start(Processes::new()).await.unwrap();
    let uploads = Uploads::new(
        db,
        storage.clone(),
        tree.clone(),
        dir.path().join("uploads"),
        expire_after,
        None,
        streamforge_actors::events::EventBus::default(),
    )
    .unwrap();
    Fixture {
        dir,
        uploads,
        storage,
        tree,
    }
}

async fn append(uploads: &Uploads, id: &str, offset: u64, bytes: &'static [u8]) -> u64 {
    let session = uploads.session(id).await.unwrap();
    ractor::call!(session, |reply| UploadSessionMsg::Begin { offset, reply })
        .unwrap()
        .unwrap();
    ractor::call!(session, |reply| UploadSessionMsg::Append {
        bytes: Bytes::from_static(bytes),
        reply
    })
    .unwrap()
    .unwrap();
    ractor::call!(session, |reply| UploadSessionMsg::Commit {
        length: None,
        reply
    })
    .unwrap()
    .unwrap()
    .offset
}

#[tokio::test]
async fn bytes_past_the_durable_offset_are_dropped_after_a_crash() {
    let first = fixture(None, Duration::from_secs(3600)).await;
    let record = first
        .uploads
        .create(NewUpload {
            length: Some(12),
            filename: "a.bin".into(),
            ..NewUpload::default()
        })
        .await
        .unwrap();
    assert_eq!(append(&first.uploads, &record.id, 0, b"hello ").await, 6);
    first.tree.shutdown(Duration::from_secs(5)).await;

    // A PATCH that was being written when the process died: on disk, never acknowledged.
    let file = first
        .dir
        .path()
        .join("uploads")
        .join(format!("{}.bin", record.id));
    let mut on_disk = std::fs::read(&file).unwrap();
    on_disk.extend_from_slice(b"garbage");
    std::fs::write(&file, &on_disk).unwrap();

    let second = fixture(Some(first.dir), Duration::from_secs(3600)).await;
    let status = second.uploads.status(&record.id).await.unwrap();
    assert_eq!(status.offset, 6);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 6);
    assert_eq!(append(&second.uploads, &record.id, 6, b"world!").await, 12);

    let status = second.uploads.status(&record.id).await.unwrap();
    let asset = status.asset_id.expect("a complete upload is an asset");
    let original = second
        .storage
        .read_all(&ObjectKey::new(format!("assets/{asset}/original")).unwrap())
        .await
        .unwrap();
    assert_eq!(original, Bytes::from_static(b"hello world!"));
    assert!(!file.exists(), "the append file is removed once stored");
    second.tree.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn expired_uploads_are_refused_and_swept() {
    let f = fixture(None, Duration::ZERO).await;
    let record = f
        .uploads
        .create(NewUpload {
            length: Some(100),
            ..NewUpload::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(matches!(
        f.uploads.status(&record.id).await,
        Err(UploadError::Expired(_))
    ));
    assert_eq!(f.uploads.sweep_expired().await.unwrap(), 1);
    assert!(matches!(
        f.uploads.status(&record.id).await,
        Err(UploadError::NotFound(_))
    ));
    assert!(
        !f.dir
            .path()
            .join("uploads")
            .join(format!("{}.bin", record.id))
            .exists()
    );
    f.tree.shutdown(Duration::from_secs(5)).await;
}
