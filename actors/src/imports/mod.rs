//! Imports from a URL: the server downloads a file from an http(s) source
//! into an upload of its own, so that it is processed while it downloads
//! exactly as an upload still arriving is (probe, poster, preview, ladder),
//! and its original is kept byte for byte.
//!
//! ```text
//! POST /api/imports ─▶ Imports::start: guard the URL, first GET (errors
//!                      answer the POST), an upload of the source's length
//!                      └─▶ Importer actor (uploads branch): streams the body
//!                          into the upload (Uploads::write); a dropped
//!                          connection resumes with Range from the durable
//!                          offset (If-Range on the validator), a source
//!                          without ranges is read again and skipped ahead
//! ```
//!
//! [`guard`] keeps imports off loopback, private and link-local addresses
//! (server-side request forgery) unless allowed. An import left unfinished
//! by a stopped server is resumed when its node starts again.

pub mod guard;
pub mod pages;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use serde::Serialize;
use sqlx::Row;

use crate::clock;
use crate::db::{Database, DbError};
use crate::supervision::{BranchKind, Supervision};
use crate::uploads::{NewUpload, UploadError, Uploads, Write, WriteError};
use guard::{Guard, GuardedResolver, Refusal, refusal_of};

/// How long the source has to answer with its headers.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a body may stall before the connection counts as dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Resumes in a row that bring no new byte before the import fails.
const MAX_FRUITLESS_RESUMES: u32 = 5;
/// The wait before the first resume; doubled after each, up to the most.
const FIRST_RESUME_WAIT: Duration = Duration::from_millis(500);
const MAX_RESUME_WAIT: Duration = Duration::from_secs(10);
/// Longest URL accepted.
const MAX_URL_BYTES: usize = 4096;
/// Pages read with yt-dlp at once.
const MAX_PAGE_READS: usize = 2;

/// Where an import stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportState {
    Downloading,
    Completed,
    Failed,
    Cancelled,
}

impl ImportState {
    fn as_str(self) -> &'static str {
        match self {
            ImportState::Downloading => "downloading",
            ImportState::Completed => "completed",
            ImportState::Failed => "failed",
            ImportState::Cancelled => "cancelled",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        [
            Self::Downloading,
            Self::Completed,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
    }
}

/// An import as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportView {
    /// Also the id of its upload (`/api/assets/{id}/events` follows it).
    pub id: String,
    pub url: String,
    pub state: ImportState,
    pub error: Option<String>,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// Bytes downloaded and durable, and the source's length when known.
    pub offset: u64,
    pub length: Option<u64>,
    /// The asset made from it, once processing started.
    pub asset_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("the source answered {status}")]
    Source { status: u16 },
    #[error("cannot fetch the source: {0}")]
    Unreachable(String),
    #[error("the source has {length} bytes; imports are limited to {max}")]
    TooLarge { length: u64, max: u64 },
    #[error("no import {0}")]
    NotFound(String),
    #[error(
        "the URL answers with an HTML page, not a media file (pages are read with yt-dlp when it is on the server's PATH and imports.yt_dlp is on)"
    )]
    NotMedia,
    #[error(transparent)]
    Page(#[from] pages::PageError),
    #[error("the server is reading as many pages as it reads at once; retry shortly")]
    Busy,
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<reqwest::Error> for ImportError {
    fn from(err: reqwest::Error) -> Self {
        match refusal_of(&err) {
            Some(refusal) => ImportError::Refused(refusal),
            None => ImportError::Unreachable(describe(&err)),
        }
    }
}

/// Why a download that had started failed (its import's `error`).
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Resume(#[from] ResumeError),
    #[error("the source sent nothing new in {attempts} attempts to resume at byte {offset}")]
    Stalled { attempts: u32, offset: u64 },
    #[error("cannot run the download: {0}")]
    Actor(String),
    #[error("its upload is gone: {0}")]
    UploadGone(UploadError),
    #[error("its URL no longer parses: {0}")]
    Url(#[from] url::ParseError),
}

/// Why asking the source for the rest failed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("no answer in time")]
    Timeout,
    #[error("{0}")]
    Transport(String),
    #[error("the source answered {0} to a range request")]
    Status(u16),
    #[error("asked for bytes from {asked}, the source sent {got:?}")]
    WrongRange { asked: u64, got: String },
    #[error("the source changed: it has {now:?} bytes now, {before:?} before")]
    Changed {
        now: Option<u64>,
        before: Option<u64>,
    },
}

impl ResumeError {
    /// Whether trying again may help.
    fn transient(&self) -> bool {
        match self {
            ResumeError::Timeout | ResumeError::Transport(_) => true,
            ResumeError::Status(status) => matches!(status, 408 | 429 | 500..=599),
            _ => false,
        }
    }
}

/// A transport error with its causes, without the URL (it may carry a
/// signed query or credentials).
pub(crate) fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "no answer in time"
    } else if err.is_connect() {
        "cannot connect"
    } else if err.is_redirect() {
        "a redirect was refused"
    } else {
        "the request failed"
    }
    .to_owned();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What a range request checks the source is still the same file against.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Validator {
    ETag(String),
    LastModified(String),
}

impl Validator {
    /// A response's validator: its strong ETag, else its Last-Modified (a
    /// weak ETag cannot validate a byte range, RFC 9110 §13.1.5).
    fn of(response: &reqwest::Response) -> Option<Validator> {
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        header(ETAG)
            .filter(|tag| !tag.starts_with("W/"))
            .map(Validator::ETag)
            .or_else(|| header(LAST_MODIFIED).map(Validator::LastModified))
    }

    /// As the `imports.validator` column keeps it.
    fn to_text(&self) -> String {
        match self {
            Validator::ETag(tag) => format!("etag:{tag}"),
            Validator::LastModified(date) => format!("date:{date}"),
        }
    }

    fn parse(text: &str) -> Option<Validator> {
        if let Some(tag) = text.strip_prefix("etag:") {
            return Some(Validator::ETag(tag.to_owned()));
        }
        text.strip_prefix("date:")
            .map(|date| Validator::LastModified(date.to_owned()))
    }
}

/// The imports of this node.
#[derive(Clone)]
pub struct Imports {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    uploads: Uploads,
    supervision: Supervision,
    client: reqwest::Client,
    guard: Arc<Guard>,
    max_size: u64,
    node: String,
    /// yt-dlp, to find the media of pages, when it is on the PATH.
    yt_dlp: Option<std::path::PathBuf>,
    /// yt-dlp runs at once (each a Python process of its own).
    page_slots: tokio::sync::Semaphore,
    running: Mutex<HashMap<String, ActorRef<ImporterMsg>>>,
}

impl std::fmt::Debug for Imports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imports")
            .field("guard", &self.inner.guard)
            .field("max_size", &self.inner.max_size)
            .finish_non_exhaustive()
    }
}

impl Imports {
    pub fn new(
        db: Database,
        uploads: Uploads,
        supervision: Supervision,
        guard: Guard,
        max_size: u64,
        node: &str,
        use_yt_dlp: bool,
    ) -> Result<Self, ImportError> {
        let guard = Arc::new(guard);
        let yt_dlp = use_yt_dlp.then(pages::find_yt_dlp).flatten();
        if let Some(path) = &yt_dlp {
            tracing::info!(yt_dlp = %path.display(), "imports read pages with yt-dlp");
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("StreamForge/", env!("CARGO_PKG_VERSION")))
            // A proxy from the environment would connect to addresses the
            // guard never saw.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
            .redirect(guard.redirect_policy())
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|e| ImportError::Unreachable(describe(&e)))?;
        Ok(Imports {
            inner: Arc::new(Inner {
                db,
                uploads,
                supervision,
                client,
                guard,
                max_size,
                node: node.to_owned(),
                yt_dlp,
                page_slots: tokio::sync::Semaphore::new(MAX_PAGE_READS),
                running: Mutex::default(),
            }),
        })
    }

    /// Starts importing `url`: its first answer is awaited here, so that
    /// a refused address, a failing source or a file too large answers
    /// the caller; the body is downloaded by an [`Importer`].
    pub async fn start(
        &self,
        url: &str,
        filename: Option<String>,
    ) -> Result<ImportView, ImportError> {
        if url.len() > MAX_URL_BYTES {
            return Err(ImportError::Invalid(format!(
                "a URL is at most {MAX_URL_BYTES} bytes"
            )));
        }
        let parsed =
            url::Url::parse(url).map_err(|e| ImportError::Invalid(format!("invalid URL: {e}")))?;
        self.inner.guard.check_url(&parsed)?;
        let mut response = self.first_answer(parsed, &[]).await?;
        let mut media = None;
        if is_page(&response) {
            let yt_dlp = self.inner.yt_dlp.as_deref().ok_or(ImportError::NotMedia)?;
            let _slot = self
                .inner
                .page_slots
                .try_acquire()
                .map_err(|_| ImportError::Busy)?;
            let processes = self.inner.supervision.processes();
            let found = pages::resolve(yt_dlp, processes, response.url()).await?;
            self.inner.guard.check_url(&found.url)?;
            tracing::info!(
                page = response.url().host_str().unwrap_or(""),
                media = found.url.host_str().unwrap_or(""),
                "yt-dlp found the page's media"
            );
            response = self.first_answer(found.url.clone(), &found.headers).await?;
            if is_page(&response) {
                return Err(ImportError::NotMedia);
            }
            media = Some(found);
        }
        let length = response.content_length();
        if let Some(length) = length.filter(|l| *l > self.inner.max_size) {
            return Err(ImportError::TooLarge {
                length,
                max: self.inner.max_size,
            });
        }
        let headers = media
            .as_ref()
            .map(|m| m.headers.clone())
            .unwrap_or_default();
        let filename = filename.or_else(|| media.as_ref().map(|m| plain_name(&m.filename)));
        let source = Source::of(&response, filename, headers);
        let record = self
            .inner
            .uploads
            .create(NewUpload {
                length,
                filename: source.filename.clone(),
                filetype: source.filetype.clone(),
                ..NewUpload::default()
            })
            .await?;
        self.inner
            .db
            .insert_import(
                &record.id,
                url,
                media.as_ref(),
                source.validator.as_ref(),
                &self.inner.node,
            )
            .await?;
        tracing::info!(
            import = %record.id,
            host = source.url.host_str().unwrap_or(""),
            ?length,
            "importing"
        );
        self.spawn(Job {
            id: record.id.clone(),
            source,
            length,
            first: Some(response),
        })
        .await;
        self.view(&record.id).await
    }

    /// The first answer for `url` (with a site's `headers`): 2xx, or the
    /// error the caller gets.
    async fn first_answer(
        &self,
        url: url::Url,
        headers: &[(String, String)],
    ) -> Result<reqwest::Response, ImportError> {
        let mut request = self.inner.client.get(url);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = tokio::time::timeout(ANSWER_TIMEOUT, request.send())
            .await
            .map_err(|_| ImportError::Unreachable("no answer in time".to_owned()))??;
        if !response.status().is_success() {
            return Err(ImportError::Source {
                status: response.status().as_u16(),
            });
        }
        Ok(response)
    }

    async fn spawn(&self, job: Job) {
        let id = job.id.clone();
        let branch = match self.inner.supervision.branch(BranchKind::Uploads).await {
            Ok(branch) => branch,
            Err(err) => {
                self.finish(&id, Err(ImportFailure::Actor(err.to_string())))
                    .await;
                return;
            }
        };
        let args = ImporterArgs {
            imports: self.clone(),
            job,
        };
        match Actor::spawn_linked(None, Importer, args, branch.get_cell()).await {
            Ok((actor, _)) => {
                lock(&self.inner.running).insert(id, actor);
            }
            Err(err) => {
                self.finish(&id, Err(ImportFailure::Actor(err.to_string())))
                    .await
            }
        }
    }

    /// Resumes the imports a stopped run of this node left unfinished.
    pub async fn resume_unfinished(&self) {
        let ids = match self.inner.db.unfinished_imports(&self.inner.node).await {
            Ok(ids) => ids,
            Err(err) => {
                tracing::error!(%err, "cannot look for unfinished imports");
                return;
            }
        };
        for Unfinished {
            id,
            url,
            headers,
            validator,
        } in ids
        {
            let record = match self.inner.uploads.record(&id).await {
                Ok(record) => record,
                Err(err) => {
                    self.finish(&id, Err(ImportFailure::UploadGone(err))).await;
                    continue;
                }
            };
            tracing::info!(import = %id, offset = record.offset, "resuming an import");
            let parsed = match url::Url::parse(&url) {
                Ok(parsed) => parsed,
                Err(err) => {
                    self.finish(&id, Err(err.into())).await;
                    continue;
                }
            };
            self.spawn(Job {
                id,
                source: Source {
                    url: parsed,
                    validator,
                    filename: record.filename,
                    filetype: record.filetype,
                    headers,
                },
                length: record.length,
                first: None,
            })
            .await;
        }
    }

    /// An import and its progress.
    pub async fn view(&self, id: &str) -> Result<ImportView, ImportError> {
        let mut view = self
            .inner
            .db
            .import(id)
            .await?
            .ok_or_else(|| ImportError::NotFound(id.to_owned()))?;
        if let Ok(status) = self.inner.uploads.status(id).await {
            view.offset = status.offset;
            view.length = status.length;
            view.asset_id = status.asset_id;
        }
        Ok(view)
    }

    /// Stops an import in progress and removes what it downloaded (an
    /// asset processed from it meanwhile goes as a terminated upload's
    /// does).
    pub async fn cancel(&self, id: &str) -> Result<(), ImportError> {
        let view = self.view(id).await?;
        if view.state != ImportState::Downloading {
            return Err(ImportError::Invalid(format!(
                "import {id} is {}, not downloading",
                view.state.as_str()
            )));
        }
        if let Some(actor) = lock(&self.inner.running).remove(id) {
            actor.kill();
        }
        let cancelled = self
            .inner
            .db
            .finish_import(id, ImportState::Cancelled, None)
            .await?;
        if !cancelled {
            return Err(ImportError::Invalid(format!(
                "import {id} ended before it could be cancelled"
            )));
        }
        match self.inner.uploads.terminate(id).await {
            Ok(()) | Err(UploadError::NotFound(_)) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Records how an import ended; a failed import's upload is removed.
    async fn finish(&self, id: &str, outcome: Result<(), ImportFailure>) {
        lock(&self.inner.running).remove(id);
        let (state, error) = match &outcome {
            Ok(()) => (ImportState::Completed, None),
            Err(reason) => (ImportState::Failed, Some(reason.to_string())),
        };
        if let Err(err) = self
            .inner
            .db
            .finish_import(id, state, error.as_deref())
            .await
        {
            tracing::error!(import = %id, %err, "cannot record how an import ended");
        }
        match &outcome {
            Ok(()) => tracing::info!(import = %id, "import downloaded"),
            Err(reason) => {
                tracing::warn!(import = %id, %reason, "import failed");
                if let Err(err) = self.inner.uploads.terminate(id).await {
                    tracing::debug!(import = %id, %err, "a failed import's upload stays");
                }
            }
        }
    }
}

/// A mutex's guard, even if a holder panicked (the data stays usable).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where an import's bytes come from, and what it is called.
#[derive(Clone, Debug)]
struct Source {
    /// The URL after redirects: resumes go there.
    url: url::Url,
    validator: Option<Validator>,
    filename: String,
    filetype: String,
    /// Headers a site wants on every request (from yt-dlp).
    headers: Vec<(String, String)>,
}

/// Whether an answer is an HTML page rather than a file.
fn is_page(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| t == "text/html" || t == "application/xhtml+xml")
}

impl Source {
    fn of(
        response: &reqwest::Response,
        filename: Option<String>,
        headers: Vec<(String, String)>,
    ) -> Source {
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let validator = Validator::of(response);
        let url = response.url().clone();
        let filename = filename
            .or_else(|| {
                header(reqwest::header::CONTENT_DISPOSITION).and_then(|d| disposition_name(&d))
            })
            .or_else(|| {
                url.path_segments()
                    .and_then(|mut s| s.next_back().map(str::to_owned))
            })
            .map(|name| plain_name(&name))
            .unwrap_or_default();
        let filetype = header(reqwest::header::CONTENT_TYPE)
            .map(|t| t.split(';').next().unwrap_or("").trim().to_owned())
            .unwrap_or_default();
        Source {
            url,
            validator,
            filename,
            filetype,
            headers,
        }
    }
}

/// `filename="…"` of a `Content-Disposition`.
fn disposition_name(value: &str) -> Option<String> {
    value.split(';').find_map(|part| {
        let (key, name) = part.trim().split_once('=')?;
        (key.eq_ignore_ascii_case("filename")).then(|| name.trim_matches('"').to_owned())
    })
}

/// A file name without path separators or control characters, at most
/// 255 bytes.
fn plain_name(name: &str) -> String {
    let decoded = percent_decoded(name);
    let mut plain: String = decoded
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '/' | '\\'))
        .collect();
    while plain.len() > 255 {
        plain.pop();
    }
    plain
}

fn percent_decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("n={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_owned())
}

/// One import's download.
struct Job {
    id: String,
    source: Source,
    length: Option<u64>,
    /// The first answer, when the import just started.
    first: Option<reqwest::Response>,
}

/// Downloads one import into its upload, resuming after dropped
/// connections; stops itself when done.
pub struct Importer;

pub enum ImporterMsg {
    Run,
}

pub struct ImporterArgs {
    imports: Imports,
    job: Job,
}

impl Actor for Importer {
    type Msg = ImporterMsg;
    type State = Option<ImporterArgs>;
    type Arguments = ImporterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ImporterMsg>,
        args: ImporterArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_message(ImporterMsg::Run)?;
        Ok(Some(args))
    }

    async fn handle(
        &self,
        myself: ActorRef<ImporterMsg>,
        ImporterMsg::Run: ImporterMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ImporterArgs { imports, job }) = state.take() {
            let id = job.id.clone();
            let outcome = download(&imports, job).await;
            imports.finish(&id, outcome).await;
        }
        myself.stop(None);
        Ok(())
    }
}

/// The download loop: each pass streams one answer's body into the
/// upload from its durable offset; the next asks for the rest.
async fn download(imports: &Imports, mut job: Job) -> Result<(), ImportFailure> {
    let uploads = &imports.inner.uploads;
    let mut fruitless = 0;
    let mut wait = FIRST_RESUME_WAIT;
    loop {
        let before = uploads.status(&job.id).await?;
        // An asset may exist long before the end (processing starts
        // with the first bytes): only the offset says the file is here.
        if job.length.is_some_and(|l| before.offset >= l) {
            return Ok(());
        }
        let answer = match job.first.take() {
            Some(first) => Ok((first, 0)),
            None => resume(imports, &job, before.offset).await,
        };
        let written = match answer {
            Ok((response, skip)) => {
                let body = skip_bytes(response.bytes_stream(), skip);
                let write = Write {
                    offset: before.offset,
                    limit: job
                        .length
                        .map_or(imports.inner.max_size, |l| l - before.offset),
                    checksum: None,
                    length: None,
                    // A source of unknown length cannot be resumed: its
                    // body is the whole file.
                    whole: job.length.is_none(),
                };
                uploads.write(&job.id, write, body).await
            }
            Err(err) if err.transient() => {
                tracing::info!(import = %job.id, %err, "cannot resume the import yet");
                Err(WriteError::Incomplete)
            }
            Err(err) => return Err(err.into()),
        };
        match written {
            Ok(status) if job.length.is_none_or(|l| status.offset >= l) => return Ok(()),
            // Without a length nothing says where a resumed body belongs.
            Err(err) if job.length.is_none() => return Err(err.into()),
            Ok(_) | Err(WriteError::Incomplete) => {}
            Err(err @ WriteError::Tus(_)) => return Err(err.into()),
            Err(err) => tracing::info!(import = %job.id, %err, "the import's write stopped"),
        }
        let after = uploads.status(&job.id).await?;
        if after.offset > before.offset {
            fruitless = 0;
            wait = FIRST_RESUME_WAIT;
        } else {
            fruitless += 1;
            if fruitless >= MAX_FRUITLESS_RESUMES {
                return Err(ImportFailure::Stalled {
                    attempts: MAX_FRUITLESS_RESUMES,
                    offset: after.offset,
                });
            }
        }
        if job.length.is_some_and(|l| after.offset < l) {
            tracing::info!(import = %job.id, offset = after.offset, "the source's connection dropped; resuming");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_RESUME_WAIT);
        }
    }
}

/// Asks the source for the bytes from `offset` on: a 206 from exactly
/// there, of the same total length; or, from a source without ranges
/// whose validator shows the same file, the whole file again with
/// `offset` bytes to skip. A changed file is never spliced onto the
/// bytes already kept.
async fn resume(
    imports: &Imports,
    job: &Job,
    offset: u64,
) -> Result<(reqwest::Response, u64), ResumeError> {
    let mut request = imports
        .inner
        .client
        .get(job.source.url.clone())
        .header(RANGE, format!("bytes={offset}-"));
    for (name, value) in &job.source.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    request = match &job.source.validator {
        Some(Validator::ETag(tag)) => request.header(IF_RANGE, tag),
        Some(Validator::LastModified(date)) => request.header(IF_RANGE, date),
        None => request,
    };
    let response = tokio::time::timeout(ANSWER_TIMEOUT, request.send())
        .await
        .map_err(|_| ResumeError::Timeout)?
        .map_err(|e| match refusal_of(&e) {
            Some(refusal) => ResumeError::Refused(refusal),
            None => ResumeError::Transport(describe(&e)),
        })?;
    match response.status().as_u16() {
        206 => {
            let range = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let total = range
                .rsplit_once('/')
                .and_then(|(_, total)| total.parse::<u64>().ok());
            if !range.starts_with(&format!("bytes {offset}-")) {
                return Err(ResumeError::WrongRange {
                    asked: offset,
                    got: range.to_owned(),
                });
            }
            if total.is_some() && total != job.length {
                return Err(ResumeError::Changed {
                    now: total,
                    before: job.length,
                });
            }
            Ok((response, 0))
        }
        200 => {
            // The whole file: If-Range did not match (it changed), or
            // the source ignores ranges (then its validator must match).
            let same =
                job.source.validator.is_some() && Validator::of(&response) == job.source.validator;
            if !same || response.content_length() != job.length {
                return Err(ResumeError::Changed {
                    now: response.content_length(),
                    before: job.length,
                });
            }
            Ok((response, offset))
        }
        status => Err(ResumeError::Status(status)),
    }
}

/// `body` without its first `skip` bytes.
fn skip_bytes<E>(
    body: impl Stream<Item = Result<Bytes, E>>,
    skip: u64,
) -> impl Stream<Item = Result<Bytes, E>> {
    body.scan(skip, |left, chunk| {
        let chunk = chunk.map(|mut bytes| {
            let drop = usize::try_from(*left)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            *left -= drop as u64;
            bytes.split_off(drop)
        });
        std::future::ready(Some(chunk))
    })
    .filter(|chunk| std::future::ready(!matches!(chunk, Ok(bytes) if bytes.is_empty())))
}

impl Database {
    async fn insert_import(
        &self,
        id: &str,
        url: &str,
        media: Option<&pages::PageMedia>,
        validator: Option<&Validator>,
        node: &str,
    ) -> Result<(), DbError> {
        let headers = media.map(|m| {
            let object: serde_json::Map<String, serde_json::Value> = m
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                .collect();
            serde_json::Value::Object(object).to_string()
        });
        sqlx::query(
            "INSERT INTO imports (id, url, media_url, media_headers, validator, state, node, created_at)
             VALUES ($1, $2, $3, $4, $5, 'downloading', $6, $7)",
        )
        .bind(id)
        .bind(url)
        .bind(media.map(|m| m.url.as_str()))
        .bind(headers)
        .bind(validator.map(Validator::to_text))
        .bind(node)
        .bind(clock::now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn finish_import(
        &self,
        id: &str,
        state: ImportState,
        error: Option<&str>,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE imports SET state = $1, error = $2, finished_at = $3
             WHERE id = $4 AND state = 'downloading'",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(clock::now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        // `false`: it had ended already (a download that finished as it
        // was cancelled).
        Ok(done.rows_affected() == 1)
    }

    async fn import(&self, id: &str) -> Result<Option<ImportView>, DbError> {
        let row = sqlx::query("SELECT * FROM imports WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let state: String = row.try_get("state")?;
        Ok(Some(ImportView {
            id: row.try_get("id")?,
            url: row.try_get("url")?,
            state: ImportState::parse(&state).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown import state {state:?}").into())
            })?,
            error: row.try_get("error")?,
            created_at_ms: row.try_get("created_at")?,
            finished_at_ms: row.try_get("finished_at")?,
            offset: 0,
            length: None,
            asset_id: None,
        }))
    }

    /// Imports of `node` still downloading.
    async fn unfinished_imports(&self, node: &str) -> Result<Vec<Unfinished>, DbError> {
        type Row = (
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, url, media_url, media_headers, validator FROM imports
             WHERE state = 'downloading' AND node = $1 ORDER BY created_at",
        )
        .bind(node)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, url, media_url, headers, validator)| Unfinished {
                id,
                url: media_url.unwrap_or(url),
                headers: headers
                    .and_then(|h| serde_json::from_str::<HashMap<String, String>>(&h).ok())
                    .map(|h| h.into_iter().collect())
                    .unwrap_or_default(),
                validator: validator.as_deref().and_then(Validator::parse),
            })
            .collect())
    }
}

/// An import a stopped run left downloading.
struct Unfinished {
    id: String,
    /// The file's URL (the media's, for a page).
    url: String,
    /// The headers it is fetched with.
    headers: Vec<(String, String)>,
    validator: Option<Validator>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn skipping_drops_exactly_the_bytes_already_kept() {
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"defg")),
            Ok(Bytes::from_static(b"hi")),
        ];
        let kept: Vec<Bytes> = skip_bytes(futures::stream::iter(chunks), 5)
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(kept, [Bytes::from_static(b"fg"), Bytes::from_static(b"hi")]);
    }

    #[test]
    fn file_names_come_plain() {
        assert_eq!(
            disposition_name("attachment; filename=\"talk.mp4\"").as_deref(),
            Some("talk.mp4")
        );
        assert_eq!(plain_name("my%20clip.mp4"), "my clip.mp4");
        assert_eq!(plain_name("..%2F..%2Fetc%2Fpasswd"), "....etcpasswd");
        assert_eq!(plain_name(&"x".repeat(300)).len(), 255);
    }
}
