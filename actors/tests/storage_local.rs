//! The local storage backend: streaming writes, ranged streaming reads, deletes.

use bytes::Bytes;
use futures::TryStreamExt;
use streamforge_actors::storage::{ObjectKey, Storage, StorageError};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn read_range(
    storage: &Storage,
    key: &ObjectKey,
    range: Option<std::ops::Range<u64>>,
) -> Vec<u8> {
    body_of(storage.read(key, range).await.unwrap()).await
}

async fn body_of(read: streamforge_actors::storage::ObjectRead) -> Vec<u8> {
    let chunks: Vec<Bytes> = read.body.try_collect().await.unwrap();
    chunks.concat()
}

#[tokio::test]
async fn streaming_write_then_ranged_reads() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(&dir.path().join("objects")).unwrap();
    let key = ObjectKey::new("assets/a1/original").unwrap();

    // 12 MiB in uneven chunks: crosses several 5 MiB multipart parts.
    let source = pattern(12 * 1024 * 1024 + 17, 7);
    let mut writer = storage.writer(&key).await.unwrap();
    for chunk in source.chunks(700_001) {
        writer.write(Bytes::copy_from_slice(chunk)).await.unwrap();
        assert!(
            storage.head(&key).await.unwrap().is_none(),
            "an object must not be visible before finish"
        );
    }
    assert_eq!(writer.finish().await.unwrap(), source.len() as u64);

    let info = storage.head(&key).await.unwrap().unwrap();
    assert_eq!(info.size, source.len() as u64);
    assert_eq!(read_range(&storage, &key, None).await, source);

    for range in [0..1, 5..6_000_000, 6_000_000..source.len() as u64] {
        let got = read_range(&storage, &key, Some(range.clone())).await;
        assert_eq!(got, &source[range.start as usize..range.end as usize]);
    }
    // A range past the end is clamped, as HTTP does.
    let tail = storage
        .read(&key, Some(source.len() as u64 - 10..u64::MAX))
        .await
        .unwrap();
    assert_eq!(tail.range, source.len() as u64 - 10..source.len() as u64);

    let err = storage
        .read(&key, Some(source.len() as u64..source.len() as u64 + 5))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, StorageError::RangeNotSatisfiable { size, .. } if size == source.len() as u64)
    );
}

#[tokio::test]
async fn aborted_writes_leave_nothing_and_deletes_clean_up() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(dir.path()).unwrap();
    let kept = ObjectKey::new("assets/a2/renditions/360p/init.mp4").unwrap();
    let other = ObjectKey::new("assets/a2/renditions/360p/seg-1.m4s").unwrap();
    storage
        .put(&kept, Bytes::from_static(b"init"))
        .await
        .unwrap();
    storage
        .put(&other, Bytes::from_static(b"segment"))
        .await
        .unwrap();

    let abandoned = ObjectKey::new("assets/a2/partial").unwrap();
    let mut writer = storage.writer(&abandoned).await.unwrap();
    writer.write(Bytes::from(pattern(1024, 1))).await.unwrap();
    writer.abort().await.unwrap();
    assert!(storage.head(&abandoned).await.unwrap().is_none());

    assert_eq!(
        storage.read_all(&kept).await.unwrap(),
        Bytes::from_static(b"init")
    );
    let prefix = ObjectKey::new("assets/a2").unwrap();
    assert_eq!(storage.delete_prefix(&prefix).await.unwrap(), 2);
    assert!(storage.head(&kept).await.unwrap().is_none());
    assert!(matches!(
        storage.read(&kept, None).await.err().unwrap(),
        StorageError::NotFound(_)
    ));
    storage.delete(&kept).await.unwrap();
    storage.ping().await.unwrap();
    // Automatic cleanup removed the emptied directories.
    assert!(!dir.path().join("assets").exists());
}

async fn read_mapped(
    storage: &Storage,
    key: &ObjectKey,
    range: Option<std::ops::Range<u64>>,
) -> Vec<u8> {
    let object = storage.open_mapped(key).await.unwrap().unwrap();
    body_of(object.read(range).await.unwrap()).await
}

#[tokio::test]
async fn mapped_reads_follow_the_servers_own_writes_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(&dir.path().join("objects")).unwrap();
    let key = ObjectKey::new("assets/a1/media/v1/seg-1.m4s").unwrap();
    let first = pattern(300_000, 1);
    storage.put(&key, Bytes::from(first.clone())).await.unwrap();
    assert_eq!(read_mapped(&storage, &key, None).await, first);
    assert_eq!(
        read_mapped(&storage, &key, Some(5..70_000)).await,
        &first[5..70_000]
    );

    // A new version through the server replaces the mapping at once (no
    // waiting for the revalidation), whether put whole or written in parts.
    let second = pattern(200_000, 2);
    storage
        .put(&key, Bytes::from(second.clone()))
        .await
        .unwrap();
    assert_eq!(read_mapped(&storage, &key, None).await, second);
    let third = pattern(250_000, 3);
    let mut writer = storage.writer(&key).await.unwrap();
    writer.write(Bytes::from(third.clone())).await.unwrap();
    writer.finish().await.unwrap();
    assert_eq!(read_mapped(&storage, &key, None).await, third);

    // Deleted, alone or with its asset: not found, not served from the mapping.
    storage.delete(&key).await.unwrap();
    assert!(storage.open_mapped(&key).await.unwrap().is_none());
    storage.put(&key, Bytes::from(first.clone())).await.unwrap();
    assert_eq!(read_mapped(&storage, &key, None).await, first);
    storage
        .delete_prefix(&ObjectKey::new("assets/a1").unwrap())
        .await
        .unwrap();
    assert!(storage.open_mapped(&key).await.unwrap().is_none());

    // Empty files are not mapped, and read as empty.
    let empty = ObjectKey::new("assets/a2/media/v1/empty.m4s").unwrap();
    storage.put(&empty, Bytes::new()).await.unwrap();
    assert!(read_mapped(&storage, &empty, None).await.is_empty());
}

#[tokio::test]
async fn a_mapped_file_cut_short_underneath_fails_the_read_not_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(&dir.path().join("objects")).unwrap();
    let key = ObjectKey::new("assets/a1/media/v1/seg-1.m4s").unwrap();
    let data = pattern(1_000_000, 4);
    storage.put(&key, Bytes::from(data.clone())).await.unwrap();
    assert_eq!(read_mapped(&storage, &key, None).await, data);

    // Another program truncates the file in place (as `File::create` would).
    let path = storage.local_path(&key).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100_000)
        .unwrap();
    // The mapping is still held (checked moments ago); its pages past the
    // new end are gone from the page cache, so the read goes to the file,
    // which is no longer the version described: an error, not a signal.
    let object = storage.open_mapped(&key).await.unwrap().unwrap();
    let read = object.read(None).await;
    let failed = match read {
        Err(_) => true,
        Ok(read) => read.body.try_collect::<Vec<Bytes>>().await.is_err(),
    };
    assert!(failed, "a read of a truncated file must fail");
    // The next open maps the file as it is now.
    assert_eq!(read_mapped(&storage, &key, None).await, &data[..100_000]);
}
