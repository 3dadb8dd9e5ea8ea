//! Read-only mappings of local files, so that serving a stored segment costs
//! one copy (from the page cache into the socket, made by the kernel) instead
//! of a read into a buffer and a copy out of it.
//!
//! Stored objects never change in place: a write lands in a temporary file
//! that is renamed over the key (a new inode), and the server's own writes
//! and deletes drop the key's mapping here. A mapping that was checked more
//! than [`REVALIDATE_AFTER`] ago is checked again (size, modification time,
//! inode) before it is served, which catches changes made by other programs.
//!
//! The hazard of any mapping is a file shrunk underneath it: reading a page
//! past its new end raises SIGBUS, which would end the process. A copy made
//! by the kernel (`writev` to a socket) fails with `EFAULT` instead, and the
//! connection ends with an error; a read in user space (TLS encryption, the
//! first bytes of an HTTP/2 DATA frame) would fault. [`guard`] catches those
//! faults for the pages of the mappings made here and maps a page of zeros
//! in place, so the read completes (with zeros where the file was cut off),
//! the response is the one that suffers, and the server keeps running.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use memmap2::Advice;
use quick_cache::sync::Cache;

use super::{ObjectInfo, ObjectKey};

/// How long a mapping is served before its file is looked at again.
pub(super) const REVALIDATE_AFTER: Duration = Duration::from_secs(10);

/// Files larger than this are read, not mapped (originals, long downloads):
/// a mapping is for the segments players ask for again and again.
pub(super) const MAX_MAPPED_BYTES: u64 = 64 * 1024 * 1024;

/// Mappings kept at most. Each costs an entry in the kernel's map table
/// (`vm.max_map_count`, 65,530 by default) and page tables, not memory of
/// its own: the pages are the page cache's, which the kernel reclaims under
/// memory pressure whatever we hold.
const MAX_MAPPINGS: usize = 8192;

/// Set when `MADV_POPULATE_READ` turns out to be unknown to the kernel:
/// non-resident ranges are then read from the file instead.
static POPULATE_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// A mapped file, whole.
#[derive(Clone)]
pub(super) struct MappedFile {
    map: Arc<guard::GuardedMap>,
    /// The whole file, over the mapping.
    pub bytes: Bytes,
    pub info: ObjectInfo,
    checked: Instant,
}

impl MappedFile {
    /// Bytes `range` of the file, when every page of it is in the page
    /// cache (so sending them never waits for the disk); `None` otherwise.
    pub fn resident(&self, range: &Range<usize>) -> Option<Bytes> {
        if self.map.poisoned() {
            return None;
        }
        let bytes = self.bytes.slice(range.clone());
        guard::resident(&bytes).then_some(bytes)
    }

    /// Reads `range` into the page cache and maps it (`MADV_POPULATE_READ`,
    /// which fails instead of faulting on pages past the file's end). For
    /// the blocking pool: it waits for the disk.
    /// `Unsupported` on kernels without it (before 5.14), once found out.
    pub fn populate(&self, range: &Range<usize>) -> std::io::Result<Bytes> {
        if POPULATE_UNSUPPORTED.load(Ordering::Relaxed) {
            return Err(std::io::ErrorKind::Unsupported.into());
        }
        if !range.is_empty() {
            let populated =
                self.map
                    .mmap()
                    .advise_range(Advice::PopulateRead, range.start, range.len());
            if let Err(err) = populated {
                if err.raw_os_error() == Some(libc::EINVAL) {
                    POPULATE_UNSUPPORTED.store(true, Ordering::Relaxed);
                    return Err(std::io::ErrorKind::Unsupported.into());
                }
                return Err(err);
            }
        }
        if self.map.poisoned() {
            return Err(std::io::Error::other("the file was cut short underneath"));
        }
        Ok(self.bytes.slice(range.clone()))
    }
}

/// The mappings of one local store, by key.
pub(super) struct MappedFiles {
    cache: Cache<ObjectKey, MappedFile>,
    /// Bumped by every [`MappedFiles::remove`]: a file opened before a
    /// write or delete finished is not mapped into the cache after it.
    generation: AtomicU64,
}

impl MappedFiles {
    pub fn new() -> Self {
        MappedFiles {
            cache: Cache::new(MAX_MAPPINGS),
            generation: AtomicU64::new(0),
        }
    }

    /// Read before opening a file that [`MappedFiles::map`] may then map.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The mapping of `key`, if it was checked recently enough to serve and
    /// none of its pages was found cut short.
    pub fn fresh(&self, key: &ObjectKey) -> Option<MappedFile> {
        self.cache
            .get(key)
            .filter(|mapped| mapped.checked.elapsed() < REVALIDATE_AFTER && !mapped.map.poisoned())
    }

    /// Maps `file`, opened after [`MappedFiles::generation`] returned
    /// `generation` and described by `info`, for `key`: the mapping already
    /// held when it is of the same file version, else a new one. `None`
    /// when the file is empty, too large, shorter than described, cannot be
    /// mapped, or was written or deleted through the server since it was
    /// opened (the caller reads it instead).
    pub fn map(
        &self,
        key: &ObjectKey,
        file: &std::fs::File,
        info: &ObjectInfo,
        generation: u64,
    ) -> Option<MappedFile> {
        if info.size == 0 || info.size > MAX_MAPPED_BYTES || self.generation() != generation {
            return None;
        }
        if let Some(held) = self.cache.get(key)
            && held.info == *info
            && !held.map.poisoned()
        {
            let renewed = MappedFile {
                checked: Instant::now(),
                ..held
            };
            self.cache.insert(key.clone(), renewed.clone());
            return Some(renewed);
        }
        let map = match guard::GuardedMap::new(file) {
            Ok(map) => Arc::new(map),
            Err(err) => {
                tracing::debug!(%key, %err, "cannot map; reading instead");
                return None;
            }
        };
        // Shrunk since it was described: the described bytes are not there.
        // (Grown: serve what was described.)
        let len = usize::try_from(info.size).ok()?;
        if map.mmap().len() < len {
            return None;
        }
        let mapped = MappedFile {
            bytes: Bytes::from_owner(guard::Owner(map.clone())).slice(..len),
            map,
            info: info.clone(),
            checked: Instant::now(),
        };
        if self.generation() != generation {
            return None;
        }
        self.cache.insert(key.clone(), mapped.clone());
        Some(mapped)
    }

    /// Forgets `key`'s mapping (the server wrote or deleted it).
    pub fn remove(&self, key: &ObjectKey) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.remove(key);
    }

    /// Forgets the mappings of every key under `prefix`.
    pub fn remove_prefix(&self, prefix: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache
            .retain(|key, _| !key.as_str().starts_with(prefix));
    }
}

/// Mappings registered with a SIGBUS handler that replaces a faulting page
/// (past the end of a file shrunk underneath us) with a page of zeros.
pub mod guard {
    use std::ffi::c_void;
    use std::sync::Once;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

    use memmap2::Mmap;

    /// Mappings alive at once, at most (held ones and those still being
    /// sent after leaving the cache). A file that finds no free slot is
    /// read instead of mapped.
    const SLOTS: usize = 16384;

    struct Slot {
        start: AtomicUsize,
        end: AtomicUsize,
        /// A page of this mapping was found past its file's end.
        poisoned: AtomicBool,
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const FREE: Slot = Slot {
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        poisoned: AtomicBool::new(false),
    };
    static REGISTERED: [Slot; SLOTS] = [FREE; SLOTS];
    /// Where the search for a free slot starts (the last one taken).
    static HINT: AtomicUsize = AtomicUsize::new(0);
    static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
    static FAULTS: AtomicU64 = AtomicU64::new(0);
    static INSTALL: Once = Once::new();
    static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

    /// Pages of truncated files replaced by zeros since the process started.
    pub fn faults() -> u64 {
        FAULTS.load(Ordering::Relaxed)
    }

    /// A read-only mapping of a whole file, registered with the handler
    /// for as long as it exists.
    pub(in crate::storage) struct GuardedMap {
        slot: usize,
        mmap: Mmap,
    }

    impl GuardedMap {
        pub fn new(file: &std::fs::File) -> std::io::Result<Self> {
            install();
            // SAFETY: a read-only private mapping. Its one hazard, the file
            // shrinking underneath it, is handled by the SIGBUS handler
            // installed above, which covers the range registered below
            // before any byte of it is read.
            let mmap = unsafe { Mmap::map(file)? };
            let start = mmap.as_ptr() as usize;
            let end = start + mmap.len();
            let slot = register(start, end).ok_or_else(|| {
                std::io::Error::other("too many mapped files (no guard slot free)")
            })?;
            Ok(GuardedMap { slot, mmap })
        }

        pub fn mmap(&self) -> &Mmap {
            &self.mmap
        }

        /// Whether a read found a page of it past its file's end (and got
        /// zeros): it is not to be served again.
        pub fn poisoned(&self) -> bool {
            REGISTERED[self.slot].poisoned.load(Ordering::Acquire)
        }
    }

    impl Drop for GuardedMap {
        fn drop(&mut self) {
            // Unregistered before the mapping goes (when the field drops):
            // nothing reads it any more, since this is its last owner.
            let slot = &REGISTERED[self.slot];
            slot.end.store(0, Ordering::Release);
            slot.start.store(0, Ordering::Release);
        }
    }

    /// The owner of a mapping's `Bytes`.
    pub(in crate::storage) struct Owner(pub std::sync::Arc<GuardedMap>);

    impl AsRef<[u8]> for Owner {
        fn as_ref(&self) -> &[u8] {
            &self.0.mmap
        }
    }

    fn register(start: usize, end: usize) -> Option<usize> {
        let hint = HINT.load(Ordering::Relaxed);
        for offset in 0..SLOTS {
            let index = (hint + offset) % SLOTS;
            let slot = &REGISTERED[index];
            if slot
                .start
                .compare_exchange(0, start, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                slot.poisoned.store(false, Ordering::Release);
                slot.end.store(end, Ordering::Release);
                HINT.store(index + 1, Ordering::Relaxed);
                return Some(index);
            }
        }
        None
    }

    /// The registered mapping `address` lies in. Signal-safe: atomic loads
    /// only.
    fn registered(address: usize) -> Option<&'static Slot> {
        REGISTERED.iter().find(|slot| {
            let start = slot.start.load(Ordering::Acquire);
            start != 0 && address >= start && address < slot.end.load(Ordering::Acquire)
        })
    }

    /// Whether every page under `bytes` is in the page cache (`mincore`).
    pub(in crate::storage) fn resident(bytes: &[u8]) -> bool {
        let page = PAGE_SIZE.load(Ordering::Relaxed);
        let end = bytes.as_ptr() as usize + bytes.len();
        let mut at = bytes.as_ptr() as usize & !(page - 1);
        let mut pages = [0u8; 256];
        while at < end {
            let len = (end - at).min(pages.len() * page);
            // SAFETY: `at..at + len` lies within the mapping behind `bytes`
            // (page-aligned down from its start); `pages` has room for one
            // byte per page of it.
            let rc = unsafe { libc::mincore(at as *mut c_void, len, pages.as_mut_ptr()) };
            if rc != 0 || pages[..len.div_ceil(page)].iter().any(|p| p & 1 == 0) {
                return false;
            }
            at += len;
        }
        true
    }

    fn install() {
        INSTALL.call_once(|| {
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            if let Ok(page) = usize::try_from(page)
                && page.is_power_of_two()
            {
                PAGE_SIZE.store(page, Ordering::Relaxed);
            }
            // SAFETY: a zeroed sigaction is a valid "no action" value; the
            // handler is signal-safe (atomics, mmap, and the previous
            // handler, which was installed to run in a signal context).
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_sigbus as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                let mut previous: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(libc::SIGBUS, &action, &mut previous) == 0 {
                    let _ = PREVIOUS.set(previous);
                }
            }
        });
    }

    extern "C" fn on_sigbus(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
        // SAFETY: the kernel passes a valid siginfo with SA_SIGINFO.
        let (code, address) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
        // Only an access past the end of a mapped file (BUS_ADRERR); not a
        // disk or memory error, nor a SIGBUS sent by another process.
        let ours = if code == libc::BUS_ADRERR {
            registered(address)
        } else {
            None
        };
        if let Some(slot) = ours {
            let page = PAGE_SIZE.load(Ordering::Relaxed);
            // SAFETY: replaces one page of a mapping of ours, past the end
            // of its file, with zeros; nothing else lives at that address.
            let zeros = unsafe {
                libc::mmap(
                    (address & !(page - 1)) as *mut c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if zeros != libc::MAP_FAILED {
                slot.poisoned.store(true, Ordering::Release);
                FAULTS.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        // Not ours: what would have happened without this handler.
        match PREVIOUS.get() {
            Some(previous)
                if previous.sa_sigaction != libc::SIG_DFL
                    && previous.sa_sigaction != libc::SIG_IGN =>
            {
                // SAFETY: the previous handler was installed for SIGBUS with
                // these flags, so it has the matching signature.
                unsafe {
                    if previous.sa_flags & libc::SA_SIGINFO != 0 {
                        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
                            std::mem::transmute(previous.sa_sigaction);
                        handler(signal, info, context);
                    } else {
                        let handler: extern "C" fn(libc::c_int) =
                            std::mem::transmute(previous.sa_sigaction);
                        handler(signal);
                    }
                }
            }
            _ => {
                // Back to the default action; returning repeats the fault,
                // which now ends the process as it would have.
                // SAFETY: signal() is async-signal-safe.
                unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use std::io::Write;
        use std::sync::Arc;

        use bytes::Bytes;

        use super::{GuardedMap, Owner, faults};

        #[test]
        fn a_file_cut_short_underneath_its_mapping_reads_as_zeros() {
            let mut file = tempfile::tempfile().unwrap();
            let page = super::PAGE_SIZE
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(4096);
            file.write_all(&vec![7u8; page * 4]).unwrap();
            let map = Arc::new(GuardedMap::new(&file).unwrap());
            let bytes = Bytes::from_owner(Owner(map.clone()));
            assert!(super::resident(&bytes));
            assert!(!map.poisoned());
            file.set_len(page as u64).unwrap();
            let before = faults();
            // Reads in user space, past the new end: the handler maps zeros.
            let sum: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
            assert_eq!(sum, 7 * page as u64, "the first page, then zeros");
            assert!(faults() >= before + 3, "three pages were past the end");
            assert!(map.poisoned(), "the mapping is not served again");
        }
    }
}
