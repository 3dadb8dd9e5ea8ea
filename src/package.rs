//! `streamforge package`: an MP4/MOV file to HLS + DASH on disk (CMAF
//! segments both manifests share), the offline counterpart of
//! shaka-packager or `ffmpeg -c copy -f hls`.
//!
//! [`run`] maps the input read-only and scans its top-level boxes by their
//! headers alone:
//!
//! - a progressive file's samples are slices of the mapping, taken by offset
//!   from the `moov`'s tables;
//! - a fragmented file is fed to [`FragmentedReader`] in [`FEED_CHUNK`]
//!   pieces.
//!
//! Samples go to the sans-IO [`Packager`], whose segments keep each sample's
//! bytes as a piece of a [`Rope`](streamforge_protocols::rope::Rope); each
//! output is written with one vectored write as soon as it comes out. Sample
//! data is therefore copied once, by the kernel, from the input's pages into
//! the output's (no read buffer, no user-space concatenation), and resident
//! memory stays at about one segment per track whatever the file size.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use memmap2::{Advice, Mmap};
use streamforge_protocols::cmaf::TargetDuration;
use streamforge_protocols::mp4::{
    BoxHeader, FragmentedReader, MAX_BOX_SIZE, Mp4Error, ProgressiveMp4, ReaderEvent,
};
use streamforge_protocols::package::{
    Output, PackageError, Packager, PackagerConfig, RenditionSummary, Summary,
};

/// Piece size fed to the fragmented reader.
pub const FEED_CHUNK: usize = 1 << 20;

/// Top-level boxes a file may open with (ISO/IEC 14496-12 §4.3, §8.1,
/// §8.16.2, QuickTime `wide`); anything else is not an MP4.
const OPENING_BOXES: [&[u8; 4]; 11] = [
    b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pdin", b"uuid", b"sidx",
    b"moof",
];

/// Package an MP4 or MOV file as HLS and DASH (CMAF segments shared by both).
#[derive(Debug, Args)]
pub struct PackageArgs {
    /// The MP4 or MOV file (progressive or fragmented; H.264, H.265, AAC, Opus).
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,

    /// Output directory, created if missing: master.m3u8, manifest.mpd and one
    /// directory per rendition (v1/, a1/ …) with init.mp4, seg-NNNNN.m4s and
    /// media.m3u8 (plus iframes.m3u8 for video).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Target segment duration, e.g. 4s or 2s; each segment ends at the first
    /// keyframe at least this long after its start.
    #[arg(long, value_name = "DURATION", default_value = "4s", value_parser = humantime::parse_duration)]
    pub segment_duration: Duration,

    /// Also cut segments into CMAF chunks of this duration, e.g. 500ms.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub part_duration: Option<Duration>,
}

/// Why `streamforge package` failed; each names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum PackageCommandError {
    #[error("invalid option: {0}")]
    InvalidOption(&'static str),
    #[error("{}: cannot open: {source}", .path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("{}: not an MP4/MOV file: {reason}", .path.display())]
    NotMp4 { path: PathBuf, reason: String },
    #[error("{}: truncated or damaged: {reason}", .path.display())]
    Truncated { path: PathBuf, reason: String },
    #[error("{}: {source}", .path.display())]
    Mp4 { path: PathBuf, source: Mp4Error },
    #[error("{}: {source}", .path.display())]
    Package { path: PathBuf, source: PackageError },
    #[error("{}: cannot write: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// What one run did.
#[derive(Debug)]
pub struct Report {
    pub input: PathBuf,
    pub out: PathBuf,
    pub input_bytes: u64,
    pub summary: Summary,
    pub elapsed: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let describe = |r: &RenditionSummary| format!("{} {}", r.name, r.codecs);
        let renditions: Vec<String> = self.summary.renditions.iter().map(describe).collect();
        let segments: usize = self.summary.renditions.iter().map(|r| r.segments).sum();
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "packaged {} -> {}: {} tracks ({}), {segments} segments, {} s of media, {secs:.3} s wall ({:.0} MB/s)",
            self.input.display(),
            self.out.display(),
            renditions.len(),
            renditions.join(", "),
            self.summary.duration.decimal(),
            self.input_bytes as f64 / 1e6 / secs.max(1e-9),
        )?;
        let dropped: u64 = self
            .summary
            .renditions
            .iter()
            .map(|r| r.dropped_leading)
            .sum();
        if dropped > 0 {
            write!(f, "; {dropped} samples before the first keyframe dropped")?;
        }
        Ok(())
    }
}

/// Packages `args.input` into `args.out`.
pub fn run(args: &PackageArgs) -> Result<Report, PackageCommandError> {
    let started = Instant::now();
    let config = packager_config(args)?;
    let path = args.input.clone();
    let open_error = |source| PackageCommandError::Open {
        path: path.clone(),
        source,
    };
    let file = File::open(&path).map_err(open_error)?;
    let len = file.metadata().map_err(open_error)?.len();
    if len == 0 {
        return Err(PackageCommandError::NotMp4 {
            path,
            reason: "the file is empty".to_owned(),
        });
    }
    let (input, mapping) = map(&file).map_err(open_error)?;
    let layout = scan(&input, &path)?;
    let mut sink = Sink::new(&args.out, Prefetch::new(mapping));
    let summary = if layout.fragmented {
        package_fragmented(&input, &path, config, &mut sink)?
    } else {
        package_progressive(&input, &path, &layout, config, &mut sink)?
    };
    Ok(Report {
        input: path,
        out: args.out.clone(),
        input_bytes: len,
        summary,
        elapsed: started.elapsed(),
    })
}

/// The whole file, mapped read-only, as shared bytes samples are sliced from.
///
/// Reading through a mapping skips the copy into a read buffer (and the
/// zeroing of fresh buffer pages, which cost more than the copy). The file
/// is expected to stay as it is while it is packaged: as with any program
/// that maps its input, truncating it meanwhile ends the process with
/// SIGBUS rather than with an error.
fn map(file: &File) -> io::Result<(Bytes, Arc<Mmap>)> {
    // SAFETY: the mapping is read-only and private to this process; the
    // only hazard is another process shrinking the file, documented above.
    let mmap = Arc::new(unsafe { Mmap::map(file)? });
    // Samples are read front to back: let the kernel read ahead and drop
    // pages behind. Advice is a hint; a kernel that refuses it changes nothing.
    let _ = mmap.advise(Advice::Sequential);
    Ok((Bytes::from_owner(Mapped(mmap.clone())), mmap))
}

/// The mapping, as the owner of the input's [`Bytes`].
struct Mapped(Arc<Mmap>);

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// How far ahead of the outputs being written the input's page table
/// entries are made ([`Prefetch`]).
const PREFETCH_WINDOW: usize = 64 << 20;

/// Maps the input's pages into the process ahead of the writes that read
/// them (`MADV_POPULATE_READ`, a window at a time). Samples are written to
/// the outputs straight from the mapping, and the kernel copies them with
/// page faults disabled: a page not yet mapped makes the copy stop short,
/// zero the rest of the output page, fault the page in and retry. That
/// zeroing was a third of the time on a 1.2 GB input. A window at a time,
/// not the whole file at once: an input larger than memory is not read
/// in full before the first write.
struct Prefetch {
    mmap: Arc<Mmap>,
    /// Entries are made up to here.
    done: usize,
    /// The kernel takes the advice (Linux 5.14 and later).
    works: bool,
}

impl Prefetch {
    fn new(mmap: Arc<Mmap>) -> Self {
        Self {
            mmap,
            done: 0,
            works: true,
        }
    }

    /// Makes the entries of the input up to `end`, and a window beyond.
    fn reach(&mut self, end: usize) {
        while self.works && self.done < end.saturating_add(PREFETCH_WINDOW) {
            let len = PREFETCH_WINDOW.min(self.mmap.len() - self.done);
            if len == 0 {
                return;
            }
            self.works = self
                .mmap
                .advise_range(Advice::PopulateRead, self.done, len)
                .is_ok();
            self.done += len;
        }
    }

    /// The end of the input's bytes among `pieces`, if any is.
    fn end_of(&self, pieces: &[Bytes]) -> Option<usize> {
        let base = self.mmap.as_ptr() as usize;
        pieces
            .iter()
            .filter_map(|p| {
                let start = (p.as_ptr() as usize).checked_sub(base)?;
                let end = start + p.len();
                (end <= self.mmap.len()).then_some(end)
            })
            .max()
    }
}

fn packager_config(args: &PackageArgs) -> Result<PackagerConfig, PackageCommandError> {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if millis(args.segment_duration) == 0 {
        return Err(PackageCommandError::InvalidOption(
            "--segment-duration must be at least 1ms",
        ));
    }
    if let Some(part) = args.part_duration
        && (millis(part) == 0 || part > args.segment_duration)
    {
        return Err(PackageCommandError::InvalidOption(
            "--part-duration must be between 1ms and --segment-duration",
        ));
    }
    let stem = args
        .input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty() && !s.chars().any(char::is_control));
    Ok(PackagerConfig {
        segment_duration: TargetDuration::from_millis(millis(args.segment_duration)),
        part_duration: args
            .part_duration
            .map(|d| TargetDuration::from_millis(millis(d))),
        presentation_id: stem.unwrap_or_else(|| PackagerConfig::default().presentation_id),
        ..PackagerConfig::default()
    })
}

/// Where the top-level boxes are.
struct Layout {
    /// Offset and size of the `moov`.
    moov: (u64, u64),
    fragmented: bool,
}

/// Walks the top-level boxes by their headers.
fn scan(input: &[u8], path: &Path) -> Result<Layout, PackageCommandError> {
    let not_mp4 = |reason: String| PackageCommandError::NotMp4 {
        path: path.to_owned(),
        reason,
    };
    let truncated = |reason: String| PackageCommandError::Truncated {
        path: path.to_owned(),
        reason,
    };
    let len = input.len() as u64;
    let (mut moov, mut fragmented, mut pos) = (None, false, 0u64);
    while pos < len {
        let head = &input[pos as usize..input.len().min(pos as usize + 16)];
        let header = match BoxHeader::parse(head, pos) {
            Ok(Some(h)) => h,
            Ok(None) if pos == 0 => return Err(not_mp4("shorter than one box header".into())),
            Ok(None) => return Err(truncated(format!("box header at byte {pos} is cut off"))),
            Err(e) if pos == 0 => return Err(not_mp4(e.to_string())),
            Err(e) => return Err(truncated(e.to_string())),
        };
        let kind = String::from_utf8_lossy(&header.kind).into_owned();
        if pos == 0 && !OPENING_BOXES.contains(&&header.kind) {
            return Err(not_mp4(format!(
                "it does not open with an ISO BMFF box (found {:?})",
                kind.escape_debug().to_string()
            )));
        }
        let size = header.size.unwrap_or(len - pos);
        let end = pos.checked_add(size).filter(|&end| end <= len);
        let Some(end) = end else {
            return Err(truncated(format!(
                "box '{kind}' at byte {pos} declares {size} bytes but the file ends at byte {len}"
            )));
        };
        match &header.kind {
            b"moov" => moov = Some((pos, size)),
            b"moof" => fragmented = true,
            _ => {}
        }
        pos = end;
    }
    let Some(moov) = moov else {
        return Err(truncated(
            "no 'moov' box (the index a player needs); the file may be cut short".to_owned(),
        ));
    };
    Ok(Layout { moov, fragmented })
}

fn package_progressive(
    input: &Bytes,
    path: &Path,
    layout: &Layout,
    config: PackagerConfig,
    sink: &mut Sink<'_>,
) -> Result<Summary, PackageCommandError> {
    let (moov_offset, moov_size) = layout.moov;
    if moov_size > MAX_BOX_SIZE {
        return Err(PackageCommandError::Mp4 {
            path: path.to_owned(),
            source: Mp4Error::BoxTooLarge {
                kind: "moov".to_owned(),
                offset: moov_offset,
                size: moov_size,
                max: MAX_BOX_SIZE,
            },
        });
    }
    // `scan` checked that the box lies within the file.
    let moov = &input[moov_offset as usize..(moov_offset + moov_size) as usize];
    let len = input.len() as u64;
    let mp4 =
        ProgressiveMp4::parse_for_file(moov, len).map_err(|source| PackageCommandError::Mp4 {
            path: path.to_owned(),
            source,
        })?;
    let mut packager = new_packager(path, config, mp4.tracks(), sink)?;
    for sample in mp4.sample_refs() {
        let (offset, size) = (sample.offset, sample.size);
        let end = offset.checked_add(u64::from(size)).filter(|&e| e <= len);
        let Some(end) = end else {
            return Err(PackageCommandError::Truncated {
                path: path.to_owned(),
                reason: format!(
                    "a sample of {size} bytes at byte {offset} lies past the end of the file ({len} bytes)"
                ),
            });
        };
        let data = input.slice(offset as usize..end as usize);
        packager
            .push(sample.with_data(data))
            .map_err(|source| PackageCommandError::Package {
                path: path.to_owned(),
                source,
            })?;
        sink.drain(&mut packager)?;
    }
    finish(path, packager, sink)
}

fn package_fragmented(
    input: &[u8],
    path: &Path,
    config: PackagerConfig,
    sink: &mut Sink<'_>,
) -> Result<Summary, PackageCommandError> {
    let mp4_error = |source| PackageCommandError::Mp4 {
        path: path.to_owned(),
        source,
    };
    let package_error = |source| PackageCommandError::Package {
        path: path.to_owned(),
        source,
    };
    let mut reader = FragmentedReader::new();
    let mut packager = None;
    let mut config = Some(config);
    for piece in input.chunks(FEED_CHUNK) {
        reader.feed(piece);
        while let Some(event) = reader.poll().map_err(mp4_error)? {
            match event {
                ReaderEvent::Tracks(tracks) => {
                    let Some(config) = config.take() else {
                        return Err(PackageCommandError::NotMp4 {
                            path: path.to_owned(),
                            reason: "more than one 'moov' box".to_owned(),
                        });
                    };
                    packager = Some(new_packager(path, config, &tracks, sink)?);
                }
                ReaderEvent::Sample(sample) => {
                    if let Some(p) = packager.as_mut() {
                        p.push(sample).map_err(package_error)?;
                        sink.drain(p)?;
                    }
                }
            }
        }
    }
    let Some(packager) = packager else {
        return Err(PackageCommandError::Truncated {
            path: path.to_owned(),
            reason: "no 'moov' box before the fragments".to_owned(),
        });
    };
    finish(path, packager, sink)
}

fn new_packager(
    path: &Path,
    config: PackagerConfig,
    tracks: &[streamforge_protocols::media::Track],
    sink: &mut Sink<'_>,
) -> Result<Packager, PackageCommandError> {
    if tracks.is_empty() {
        return Err(PackageCommandError::NotMp4 {
            path: path.to_owned(),
            reason: "no audio or video track".to_owned(),
        });
    }
    let mut packager =
        Packager::new(config, tracks).map_err(|source| PackageCommandError::Package {
            path: path.to_owned(),
            source,
        })?;
    sink.drain(&mut packager)?;
    Ok(packager)
}

fn finish(
    path: &Path,
    mut packager: Packager,
    sink: &mut Sink<'_>,
) -> Result<Summary, PackageCommandError> {
    let now = streamforge_actors::clock::now();
    let summary = packager
        .finish(now)
        .map_err(|source| PackageCommandError::Package {
            path: path.to_owned(),
            source,
        })?;
    sink.drain(&mut packager)?;
    Ok(summary)
}

/// Writes outputs under the output directory.
struct Sink<'a> {
    dir: &'a Path,
    /// Directories already created.
    made: HashSet<PathBuf>,
    prefetch: Prefetch,
}

impl<'a> Sink<'a> {
    fn new(dir: &'a Path, prefetch: Prefetch) -> Self {
        Self {
            dir,
            made: HashSet::new(),
            prefetch,
        }
    }

    fn drain(&mut self, packager: &mut Packager) -> Result<(), PackageCommandError> {
        while let Some(output) = packager.poll_output() {
            self.write(&output)?;
        }
        Ok(())
    }

    fn write(&mut self, output: &Output) -> Result<(), PackageCommandError> {
        // Output paths are relative `name/file` strings the packager made
        // from validated rendition names.
        let path = self.dir.join(&output.path);
        let write_error = |source| PackageCommandError::Write {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent()
            && !self.made.contains(parent)
        {
            std::fs::create_dir_all(parent).map_err(write_error)?;
            self.made.insert(parent.to_owned());
        }
        let pieces = output.data.pieces();
        if let Some(end) = self.prefetch.end_of(pieces) {
            self.prefetch.reach(end);
        }
        let mut file = File::create(&path).map_err(write_error)?;
        write_all_vectored(&mut file, pieces).map_err(write_error)
    }
}

/// Writes every piece, in order, with as few `writev` calls as the kernel
/// allows (std caps each call at `IOV_MAX` slices).
fn write_all_vectored(out: &mut impl Write, pieces: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = pieces.iter().map(|p| IoSlice::new(p)).collect();
    let mut rest = slices.as_mut_slice();
    while !rest.is_empty() {
        match out.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `max` bytes per call and fails with
    /// `Interrupted` every other call, as a signal-interrupted writev may.
    struct Stingy {
        out: Vec<u8>,
        max: usize,
        calls: usize,
    }

    impl Write for Stingy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(2) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(self.max);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn vectored_writes_resume_after_short_and_interrupted_writes() {
        let pieces: Vec<Bytes> = ["moof", "mdat", "", "sample-one", "s2"]
            .into_iter()
            .map(|s| Bytes::from_static(s.as_bytes()))
            .collect();
        for max in [1, 3, 7, 100] {
            let mut w = Stingy {
                out: Vec::new(),
                max,
                calls: 0,
            };
            write_all_vectored(&mut w, &pieces).unwrap();
            assert_eq!(w.out, b"moofmdatsample-ones2", "max {max}");
        }
    }
}

#[cfg(test)]
mod prefetch_tests {
    use super::*;

    #[test]
    fn the_prefetch_finds_the_inputs_bytes_and_stays_a_window_ahead() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&vec![7u8; 3 << 20]).unwrap();
        let (input, mapping) = map(&file).unwrap();
        let mut prefetch = Prefetch::new(mapping);
        let made_here = Bytes::from_static(b"moof");
        assert_eq!(prefetch.end_of(std::slice::from_ref(&made_here)), None);
        let pieces = [made_here, input.slice(100..200), input.slice(1000..5000)];
        assert_eq!(prefetch.end_of(&pieces), Some(5000));
        prefetch.reach(5000);
        // The whole file is within the first window.
        assert_eq!(prefetch.done, 3 << 20);
        prefetch.reach(3 << 20);
        assert_eq!(prefetch.done, 3 << 20);
        assert_eq!(&input[..4], &[7, 7, 7, 7]);
    }
}
