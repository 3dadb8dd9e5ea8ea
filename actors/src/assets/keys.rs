//! Every storage key of an asset, in one place:
//!
//! ```text
//! assets/{asset}/original            the upload (or recording source) byte for byte
//! assets/{asset}/media/              what processing made: manifests, posters,
//!   master.m3u8, manifest.mpd        storyboards, and one directory per rendition
//!   {rendition}/init.mp4, seg-…      (`360p-v1/`, `audio-a1/`, …)
//! assets/{asset}/work/               what processing keeps between workers
//!                                    until it is done (storyboard tiles)
//! uploads/{upload}/{start}.{writer}  an upload arriving into a remote store:
//!                                    its pieces, until it is stored as an original
//! ```
//!
//! Deleting an asset deletes everything under [`asset`]; storing or deleting
//! an upload, everything under [`upload`].

use crate::storage::{ObjectKey, StorageError};

/// Everything an asset stores is under this key.
pub fn asset(asset: &str) -> Result<ObjectKey, StorageError> {
    ObjectKey::new(format!("assets/{asset}"))
}

/// The original, byte for byte.
pub fn original(asset: &str) -> Result<ObjectKey, StorageError> {
    self::asset(asset)?.join("original")
}

/// The directory of everything processing made.
pub fn media_dir(asset: &str) -> Result<ObjectKey, StorageError> {
    self::asset(asset)?.join("media")
}

/// A file processing made, `path` relative to [`media_dir`] (for example
/// `360p-v1/seg-00001.m4s` or `poster.webp`); `path` is validated like any
/// key, so a request path cannot leave the asset's media.
pub fn media(asset: &str, path: &str) -> Result<ObjectKey, StorageError> {
    media_dir(asset)?.join(path)
}

/// What processing keeps between its steps, which may run on different
/// workers (the storyboard tiles of each span of a cut ladder), until the
/// step that needs them is done: never served.
pub fn work(asset: &str, name: &str) -> Result<ObjectKey, StorageError> {
    self::asset(asset)?.join("work")?.join(name)
}

/// Everything an upload in progress keeps in a remote store.
pub fn upload(upload: &str) -> Result<ObjectKey, StorageError> {
    ObjectKey::new(format!("uploads/{upload}"))
}

/// One piece of an upload in progress: its bytes from `start`, written by
/// the session `writer` (each session writes its own objects, so a session
/// that lost the upload to another node cannot overwrite what that node
/// wrote).
pub fn upload_piece(upload: &str, start: u64, writer: &str) -> Result<ObjectKey, StorageError> {
    self::upload(upload)?.join(&format!("{start:020}.{writer}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_an_asset() {
        assert_eq!(original("a1").unwrap().as_str(), "assets/a1/original");
        assert_eq!(
            media("a1", "360p-v1/init.mp4").unwrap().as_str(),
            "assets/a1/media/360p-v1/init.mp4"
        );
        assert!(media("a1", "../a2/original").is_err());
        assert!(original("a/../b").is_err());
        assert_eq!(
            upload_piece("u1", 5 << 20, "w1").unwrap().as_str(),
            "uploads/u1/00000000000005242880.w1"
        );
    }
}
