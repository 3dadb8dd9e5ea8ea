//! Byte storage for originals, renditions and segments, through `object_store`.
//!
//! [`Storage`] is the one interface the rest of the server uses: a local
//! directory by default, or an S3-compatible bucket chosen by URL
//! (`s3://bucket/prefix?endpoint=…&region=…`, credentials from the usual
//! `AWS_*` environment variables). Writes stream through [`ObjectWriter`]
//! (multipart: the object appears whole at `finish`, never half-written);
//! reads stream in bounded chunks, optionally for a byte range.
//!
//! Every key goes through [`ObjectKey`], which only admits generated-looking
//! names, so no request can name a path outside the store.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use object_store::{
    GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart,
};
use streamforge_protocols::rope::Rope;

mod mapped;

/// Pages of mapped files found cut short underneath a read (served as zeros).
pub use mapped::guard::faults as truncated_page_faults;

/// Longest key accepted, in bytes.
const MAX_KEY_LEN: usize = 512;
/// Most path segments in a key.
const MAX_KEY_SEGMENTS: usize = 16;
/// Part size for multipart writes: S3's minimum part size, so the same writer
/// works against every backend while holding at most one part in memory.
const WRITE_PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts in flight at once per writer; bounds a writer's memory to
/// `WRITE_PART_SIZE * (WRITE_CONCURRENCY + 1)`.
const WRITE_CONCURRENCY: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid storage URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("object {0} not found")]
    NotFound(ObjectKey),
    #[error("range {start}..{end} not satisfiable for object {key} of {size} bytes")]
    RangeNotSatisfiable {
        key: ObjectKey,
        start: u64,
        end: u64,
        size: u64,
    },
    #[error("storage backend failed on {key}: {source}")]
    Backend {
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot prepare local storage directory {path}: {source}")]
    LocalDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    fn backend(key: impl fmt::Display, source: object_store::Error) -> Self {
        StorageError::Backend {
            key: key.to_string(),
            source,
        }
    }

    fn from_store(key: &ObjectKey, source: object_store::Error) -> Self {
        match source {
            object_store::Error::NotFound { .. } => StorageError::NotFound(key.clone()),
            source => StorageError::backend(key, source),
        }
    }
}

/// A validated object key: `/`-separated segments of `[A-Za-z0-9._-]`, none of
/// them empty, `.` or `..`, and none starting with a dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn new(key: impl Into<String>) -> Result<Self, StorageError> {
        let key = key.into();
        let invalid = |reason| StorageError::InvalidKey {
            key: key.chars().take(80).collect(),
            reason,
        };
        if key.is_empty() {
            return Err(invalid("empty"));
        }
        if key.len() > MAX_KEY_LEN {
            return Err(invalid("too long"));
        }
        let mut segments = 0;
        for segment in key.split('/') {
            segments += 1;
            if segment.is_empty() {
                return Err(invalid("empty path segment"));
            }
            if segment.starts_with('.') {
                return Err(invalid("path segment starts with a dot"));
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(invalid(
                    "only letters, digits, '.', '_' and '-' are allowed",
                ));
            }
        }
        if segments > MAX_KEY_SEGMENTS {
            return Err(invalid("too many path segments"));
        }
        Ok(ObjectKey(key))
    }

    /// The key of `segment` under this key, validated the same way.
    pub fn join(&self, segment: &str) -> Result<Self, StorageError> {
        ObjectKey::new(format!("{}/{segment}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn store_path(&self) -> StorePath {
        // Validation above admits only characters object_store keeps verbatim.
        StorePath::from(self.0.as_str())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the bytes live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    Local { root: PathBuf },
    S3 { bucket: String, prefix: String },
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Local { root } => write!(f, "local:{}", root.display()),
            Backend::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Backend::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Size and version of a stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub last_modified: std::time::SystemTime,
    /// The backend's entity tag, when it has one.
    pub e_tag: Option<String>,
}

/// A read in progress: the object's metadata, the byte range being returned,
/// and the bytes as a stream of chunks.
pub struct ObjectRead {
    pub info: ObjectInfo,
    pub range: Range<u64>,
    pub body: BoxStream<'static, Result<Bytes, StorageError>>,
}

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    backend: Backend,
    /// Read-only mappings of local files ([`Storage::open_mapped`]); `None`
    /// for remote (and throttled) stores.
    mapped: Option<Arc<mapped::MappedFiles>>,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Storage {
    /// Local storage rooted at `root`, created if missing.
    pub fn local(root: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(root).map_err(|source| StorageError::LocalDir {
            path: root.to_owned(),
            source,
        })?;
        let root = root
            .canonicalize()
            .map_err(|source| StorageError::LocalDir {
                path: root.to_owned(),
                source,
            })?;
        let store = LocalFileSystem::new_with_prefix(&root)
            .map_err(|source| StorageError::backend(root.display(), source))?
            // Remove emptied directories on delete, so deleting an asset leaves nothing behind.
            .with_automatic_cleanup(true);
        Ok(Storage {
            store: Arc::new(store),
            backend: Backend::Local { root },
            mapped: Some(Arc::new(mapped::MappedFiles::new())),
        })
    }

    /// Storage from a URL: `file:///abs/path`,
    /// `s3://bucket[/prefix][?endpoint=URL&region=R&access_key_id=K&secret_access_key=S]`.
    /// S3 credentials and defaults not in the URL come from the `AWS_*`
    /// environment variables.
    pub fn from_url(url: &str) -> Result<Self, StorageError> {
        match parse_url(url)? {
            Target::Local(path) => Storage::local(&path),
            Target::Remote(storage) => Ok(storage),
        }
    }

    /// The same storage with every call delayed as `config` says
    /// (object_store's `ThrottledStore`): how the server behaves when its
    /// store falls behind, for tests and experiments.
    pub fn throttled(&self, config: object_store::throttle::ThrottleConfig) -> Storage {
        Storage {
            store: Arc::new(object_store::throttle::ThrottledStore::new(
                self.store.clone(),
                config,
            )),
            backend: self.backend.clone(),
            // Mapped files would bypass the throttle.
            mapped: None,
        }
    }

    /// Checks a storage URL without touching the backend or the filesystem.
    pub fn check_url(url: &str) -> Result<(), StorageError> {
        parse_url(url).map(|_| ())
    }

    /// Where `key` lives on the local filesystem, for programs (ffmpeg) that
    /// read files by path; `None` for remote backends.
    pub fn local_path(&self, key: &ObjectKey) -> Option<PathBuf> {
        match &self.backend {
            Backend::Local { root } => Some(root.join(key.as_str())),
            Backend::S3 { .. } => None,
        }
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Starts a streaming write of `key`. The object becomes visible, whole,
    /// when [`ObjectWriter::finish`] returns; dropping the writer abandons it.
    pub async fn writer(&self, key: &ObjectKey) -> Result<ObjectWriter, StorageError> {
        let upload = self
            .store
            .put_multipart(&key.store_path())
            .await
            .map_err(|e| StorageError::from_store(key, e))?;
        Ok(ObjectWriter {
            mapped: self.mapped.clone(),
            key: key.clone(),
            inner: WriteMultipart::new_with_chunk_size(upload, WRITE_PART_SIZE),
            written: 0,
        })
    }

    /// Writes a small object in one request. Use [`Storage::writer`] for anything
    /// that arrives in pieces.
    pub async fn put(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), StorageError> {
        self.put_payload(key, PutPayload::from_bytes(bytes)).await
    }

    /// Stores `rope` without joining its pieces: a packaged segment's sample
    /// data goes to storage straight from the buffers it arrived in.
    pub async fn put_rope(&self, key: &ObjectKey, rope: Rope) -> Result<(), StorageError> {
        self.put_payload(key, rope.into_pieces().into_iter().collect())
            .await
    }

    /// Stores `chunks`, in order, as one object, without joining them.
    pub async fn put_chunks(
        &self,
        key: &ObjectKey,
        chunks: Vec<Bytes>,
    ) -> Result<(), StorageError> {
        self.put_payload(key, chunks.into_iter().collect()).await
    }

    /// Whether objects are files on this machine (else a remote store).
    pub fn is_local(&self) -> bool {
        matches!(self.backend, Backend::Local { .. })
    }

    async fn put_payload(&self, key: &ObjectKey, payload: PutPayload) -> Result<(), StorageError> {
        let put = self.store.put(&key.store_path(), payload).await;
        // After the new version is in place: a read in between would map
        // the old one again.
        self.forget_mapping(key);
        put.map(|_| ())
            .map_err(|e| StorageError::from_store(key, e))
    }

    pub async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, StorageError> {
        match self.store.head(&key.store_path()).await {
            Ok(meta) => Ok(Some(info_of(&meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StorageError::backend(key, e)),
        }
    }

    /// Streams `key`, or the part of it in `range` (clamped to the object's
    /// end, as HTTP ranges are). An empty or out-of-bounds range is an error.
    pub async fn read(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ObjectRead, StorageError> {
        self.open(key)
            .await?
            .ok_or_else(|| StorageError::NotFound(key.clone()))?
            .read(range)
            .await
    }

    /// Looks `key` up for reading: its metadata now, its bytes (all or a
    /// range, decided from the metadata) with [`OpenObject::read`]. A local
    /// file is opened once, here, and read from that open file — the same
    /// version that was described, in two trips to the blocking pool in
    /// all; a remote object is described by a `HEAD` and fetched by a `GET`.
    pub async fn open(&self, key: &ObjectKey) -> Result<Option<OpenObject>, StorageError> {
        match self.backend {
            Backend::Local { .. } => {
                let result = match self
                    .store
                    .get_opts(&key.store_path(), GetOptions::default())
                    .await
                {
                    Ok(result) => result,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(StorageError::from_store(key, e)),
                };
                let info = info_of(&result.meta);
                let source = match result.payload {
                    GetResultPayload::File(file, _) => Source::File(Arc::new(file)),
                    GetResultPayload::Stream(_) => Source::Store(self.clone()),
                };
                Ok(Some(OpenObject {
                    key: key.clone(),
                    info,
                    source,
                }))
            }
            Backend::S3 { .. } => Ok(self.head(key).await?.map(|info| OpenObject {
                key: key.clone(),
                info,
                source: Source::Store(self.clone()),
            })),
        }
    }

    /// [`Storage::open`] for a file served again and again (a segment): on
    /// local storage the file is mapped, and reads of it hand out the
    /// mapping's pages (see [`mapped`]), which the kernel copies into the
    /// socket; a mapping checked within the last seconds is served without
    /// touching the filesystem. Elsewhere, and for files that are not
    /// mapped (empty, large), the same as [`Storage::open`].
    pub async fn open_mapped(&self, key: &ObjectKey) -> Result<Option<OpenObject>, StorageError> {
        let Some(mapped) = &self.mapped else {
            return self.open(key).await;
        };
        if let Some(file) = mapped.fresh(key) {
            return Ok(Some(self.mapped_object(key, file)));
        }
        let generation = mapped.generation();
        let Some(object) = self.open(key).await? else {
            mapped.remove(key);
            return Ok(None);
        };
        match &object.source {
            Source::File(file) => match mapped.map(key, file, &object.info, generation) {
                Some(file) => Ok(Some(self.mapped_object(key, file))),
                None => Ok(Some(object)),
            },
            Source::Store(_) | Source::Mapped { .. } => Ok(Some(object)),
        }
    }

    fn mapped_object(&self, key: &ObjectKey, file: mapped::MappedFile) -> OpenObject {
        OpenObject {
            key: key.clone(),
            info: file.info.clone(),
            source: Source::Mapped {
                file,
                storage: self.clone(),
            },
        }
    }

    fn forget_mappings_under(&self, prefix: &ObjectKey) {
        if let Some(mapped) = &self.mapped {
            mapped.remove_prefix(&format!("{}/", prefix.as_str()));
        }
    }

    fn forget_mapping(&self, key: &ObjectKey) {
        if let Some(mapped) = &self.mapped {
            mapped.remove(key);
        }
    }

    async fn get_range(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ObjectRead, StorageError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(&key.store_path(), options)
            .await
            .map_err(|e| StorageError::from_store(key, e))?;
        let info = info_of(&result.meta);
        let range = result.range.clone();
        let body = match result.payload {
            GetResultPayload::File(file, _) => {
                local_file_stream(key, Arc::new(file), range.clone())
            }
            GetResultPayload::Stream(stream) => {
                let error_key = key.clone();
                stream
                    .map_err(move |e| StorageError::backend(&error_key, e))
                    .boxed()
            }
        };
        Ok(ObjectRead { info, range, body })
    }

    /// Reads a whole small object (a playlist, a manifest) into memory.
    pub async fn read_all(&self, key: &ObjectKey) -> Result<Bytes, StorageError> {
        let result = self
            .store
            .get(&key.store_path())
            .await
            .map_err(|e| StorageError::from_store(key, e))?;
        result
            .bytes()
            .await
            .map_err(|e| StorageError::backend(key, e))
    }

    /// Deletes `key`; deleting a missing object is not an error.
    pub async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        let deleted = self.store.delete(&key.store_path()).await;
        // After the file is gone: a read in between would map it again.
        self.forget_mapping(key);
        match deleted {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StorageError::backend(key, e)),
        }
    }

    /// Deletes every object under `prefix` and returns how many there were.
    pub async fn delete_prefix(&self, prefix: &ObjectKey) -> Result<u64, StorageError> {
        let mut listing = self.store.list(Some(&prefix.store_path()));
        let mut deleted = 0;
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| StorageError::backend(prefix, e))?;
            let result = match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(StorageError::backend(&meta.location, e)),
            };
            if let Err(err) = result {
                // What was deleted before the failure is not served either.
                self.forget_mappings_under(prefix);
                return Err(err);
            }
            deleted += 1;
        }
        self.forget_mappings_under(prefix);
        Ok(deleted)
    }

    /// Checks that the backend answers: a listing of one page under a key
    /// that is never written.
    pub async fn ping(&self) -> Result<(), StorageError> {
        let probe = StorePath::from(".readiness");
        let mut listing = self.store.list(Some(&probe));
        match listing.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(StorageError::backend(&probe, e)),
        }
    }
}

enum Target {
    Local(PathBuf),
    Remote(Storage),
}

fn parse_url(url: &str) -> Result<Target, StorageError> {
    let invalid = |reason: String| StorageError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    match parsed.scheme() {
        "file" => {
            let path = parsed
                .to_file_path()
                .map_err(|()| invalid("a file URL needs an absolute path".into()))?;
            Ok(Target::Local(path))
        }
        "s3" => {
            let bucket = parsed
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| invalid("missing bucket name".into()))?
                .to_owned();
            let prefix = parsed.path().trim_matches('/').to_owned();
            if !prefix.is_empty() {
                ObjectKey::new(prefix.clone()).map_err(|e| invalid(e.to_string()))?;
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
            for (name, value) in parsed.query_pairs() {
                builder = match name.as_ref() {
                    "endpoint" => {
                        let plain_http = value.starts_with("http://");
                        builder
                            .with_endpoint(value.as_ref())
                            .with_allow_http(plain_http)
                    }
                    "region" => builder.with_region(value.as_ref()),
                    "virtual_hosted_style" => {
                        builder.with_virtual_hosted_style_request(value.parse::<bool>().map_err(
                            |_| invalid("virtual_hosted_style must be true or false".into()),
                        )?)
                    }
                    // Credentials for this store alone (the `AWS_*`
                    // environment variables are the default).
                    "access_key_id" => builder.with_access_key_id(value.as_ref()),
                    "secret_access_key" => builder.with_secret_access_key(value.as_ref()),
                    other => {
                        return Err(invalid(format!(
                            "unknown parameter {other:?} (known: endpoint, region, \
                             virtual_hosted_style, access_key_id, secret_access_key)"
                        )));
                    }
                };
            }
            let s3 = builder
                .build()
                .map_err(|e| invalid(format!("cannot configure S3: {e}")))?;
            let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix.as_str()))
            };
            Ok(Target::Remote(Storage {
                store,
                backend: Backend::S3 { bucket, prefix },
                mapped: None,
            }))
        }
        other => Err(invalid(format!(
            "unsupported scheme {other:?} (use file:// or s3://)"
        ))),
    }
}

/// An object looked up by [`Storage::open`].
pub struct OpenObject {
    key: ObjectKey,
    pub info: ObjectInfo,
    source: Source,
}

enum Source {
    /// The local file, open since [`Storage::open`].
    File(Arc<std::fs::File>),
    /// The local file's mapping ([`Storage::open_mapped`]); `storage`
    /// reads it again should its pages not be readable.
    Mapped {
        file: mapped::MappedFile,
        storage: Storage,
    },
    /// Fetched when read.
    Store(Storage),
}

impl OpenObject {
    /// Streams the object, or the part of it in `range` (clamped to the
    /// object's end, as HTTP ranges are). An empty or out-of-bounds range is
    /// an error.
    pub async fn read(self, range: Option<Range<u64>>) -> Result<ObjectRead, StorageError> {
        let size = self.info.size;
        let range = match range {
            None => None,
            Some(range) if range.start >= range.end || range.start >= size => {
                return Err(StorageError::RangeNotSatisfiable {
                    key: self.key,
                    start: range.start,
                    end: range.end,
                    size,
                });
            }
            Some(range) => Some(range.start..range.end.min(size)),
        };
        match self.source {
            Source::File(file) => {
                let range = range.unwrap_or(0..size);
                Ok(ObjectRead {
                    body: local_file_stream(&self.key, file, range.clone()),
                    info: self.info,
                    range,
                })
            }
            Source::Mapped { file, storage } => {
                let range = range.unwrap_or(0..size);
                let body = read_mapped(&self.key, file, storage, range.clone()).await?;
                Ok(ObjectRead {
                    body,
                    info: self.info,
                    range,
                })
            }
            Source::Store(storage) => storage.get_range(&self.key, range).await,
        }
    }
}

/// `range` of a mapped file as one chunk over the mapping: at once when its
/// pages are in the page cache, else after the blocking pool has read them
/// in (so the socket copy that follows does not wait for the disk on a
/// runtime thread). Pages that cannot be read in (the file was cut short
/// underneath) send the read to the file itself, if it is still the version
/// described, and make it an error if not.
async fn read_mapped(
    key: &ObjectKey,
    file: mapped::MappedFile,
    storage: Storage,
    range: Range<u64>,
) -> Result<BoxStream<'static, Result<Bytes, StorageError>>, StorageError> {
    // Within the file's size, which is at most MAX_MAPPED_BYTES.
    let span = range.start as usize..range.end as usize;
    let chunk = match file.resident(&span) {
        Some(bytes) => Ok(bytes),
        None => {
            let populating = file.clone();
            let span = span.clone();
            tokio::task::spawn_blocking(move || populating.populate(&span))
                .await
                .unwrap_or_else(|join| Err(std::io::Error::other(join)))
        }
    };
    match chunk {
        Ok(bytes) => Ok(futures::stream::once(async move { Ok(bytes) }).boxed()),
        Err(err) => {
            // An old kernel's missing MADV_POPULATE_READ says nothing about
            // the mapping; anything else (the file cut short) retires it.
            if err.kind() != std::io::ErrorKind::Unsupported {
                tracing::debug!(%key, %err, "cannot read the mapping in");
                storage.forget_mapping(key);
            }
            // The file as it is now, if it is still the version described.
            match storage.open(key).await? {
                Some(OpenObject {
                    info,
                    source: Source::File(open),
                    ..
                }) if info == file.info => Ok(local_file_stream(key, open, range)),
                _ => Err(local_io_error(
                    key,
                    std::io::Error::other("the file changed while it was being read"),
                )),
            }
        }
    }
}

/// Bytes read per blocking read of a local file: a typical segment in one
/// read, while a response holds at most this much in memory.
const LOCAL_READ_CHUNK: u64 = 512 * 1024;

/// Reads `range` of an open file in [`LOCAL_READ_CHUNK`] pieces, each one
/// positioned read (`pread`) on the blocking pool: no seek, no shared file
/// position, and object_store's 8 KiB reads (one blocking task each) avoided.
/// A file that ends early (truncated meanwhile) ends the stream with an error.
fn local_file_stream(
    key: &ObjectKey,
    file: Arc<std::fs::File>,
    range: Range<u64>,
) -> BoxStream<'static, Result<Bytes, StorageError>> {
    let key = key.clone();
    futures::stream::try_unfold(range.start, move |pos| {
        let (file, key, end) = (file.clone(), key.clone(), range.end);
        async move {
            if pos >= end {
                return Ok(None);
            }
            let want = (end - pos).min(LOCAL_READ_CHUNK) as usize;
            let read = tokio::task::spawn_blocking(move || read_exact_at(&file, want, pos))
                .await
                .map_err(std::io::Error::other)
                .and_then(|read| read);
            match read {
                Ok(bytes) => Ok(Some((bytes, pos + want as u64))),
                Err(e) => Err(local_io_error(&key, e)),
            }
        }
    })
    .boxed()
}

/// Reads exactly `len` bytes at `pos` into a new buffer, without first
/// zeroing it (`pread` into the vector's spare capacity; zeroing 512 KiB
/// cost as much as the read itself).
fn read_exact_at(file: &std::fs::File, len: usize, pos: u64) -> std::io::Result<Bytes> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let at = pos + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The spare capacity may exceed `len`: keep only what was asked for.
    buf.truncate(len);
    Ok(Bytes::from(buf))
}

fn local_io_error(key: &ObjectKey, source: std::io::Error) -> StorageError {
    StorageError::backend(
        key,
        object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(source),
        },
    )
}

fn info_of(meta: &object_store::ObjectMeta) -> ObjectInfo {
    ObjectInfo {
        size: meta.size,
        last_modified: meta.last_modified.into(),
        e_tag: meta.e_tag.clone(),
    }
}

/// A streaming write of one object. Holds at most a few parts in memory:
/// [`ObjectWriter::write`] waits while earlier parts are still uploading.
pub struct ObjectWriter {
    key: ObjectKey,
    /// Mappings to forget the key in once the new version is in place.
    mapped: Option<Arc<mapped::MappedFiles>>,
    inner: WriteMultipart,
    written: u64,
}

impl ObjectWriter {
    pub async fn write(&mut self, bytes: Bytes) -> Result<(), StorageError> {
        self.inner
            .wait_for_capacity(WRITE_CONCURRENCY)
            .await
            .map_err(|e| StorageError::backend(&self.key, e))?;
        self.written += bytes.len() as u64;
        self.inner.put(bytes);
        Ok(())
    }

    /// Bytes handed to [`ObjectWriter::write`] so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Completes the object; it is visible, whole, once this returns.
    pub async fn finish(self) -> Result<u64, StorageError> {
        let key = self.key;
        let finished = self.inner.finish().await;
        // After the new version is in place: a read in between would map
        // the old one again.
        if let Some(mapped) = &self.mapped {
            mapped.remove(&key);
        }
        finished.map_err(|e| StorageError::backend(&key, e))?;
        Ok(self.written)
    }

    /// Abandons the write and removes its uploaded parts.
    pub async fn abort(self) -> Result<(), StorageError> {
        let key = self.key;
        self.inner
            .abort()
            .await
            .map_err(|e| StorageError::backend(&key, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_reject_traversal_and_odd_characters() {
        for bad in [
            "", "..", "a/../b", "a//b", "/a", "a/", ".hidden", "a/.b", "a\\b", "a b", "a%2e", "é",
        ] {
            assert!(ObjectKey::new(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in [
            "a",
            "assets/01HZX/original",
            "seg-0001.m4s",
            "v_1.2/init.mp4",
        ] {
            assert_eq!(ObjectKey::new(good).unwrap().as_str(), good);
        }
        assert!(ObjectKey::new("x".repeat(MAX_KEY_LEN + 1)).is_err());
        assert!(ObjectKey::new(vec!["a"; MAX_KEY_SEGMENTS + 1].join("/")).is_err());
    }

    #[test]
    fn urls_select_backends() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let storage = Storage::from_url(url.as_str()).unwrap();
        assert!(matches!(storage.backend(), Backend::Local { .. }));

        let s3 =
            Storage::from_url("s3://media/prod?endpoint=http://127.0.0.1:9000&region=eu-west-1")
                .unwrap();
        assert_eq!(
            s3.backend(),
            &Backend::S3 {
                bucket: "media".into(),
                prefix: "prod".into()
            }
        );

        for bad in ["ftp://x", "s3://", "s3://b?colour=red", "not a url"] {
            let err = Storage::from_url(bad).unwrap_err();
            assert!(
                matches!(err, StorageError::InvalidUrl { .. }),
                "{bad}: {err}"
            );
        }
    }
}
