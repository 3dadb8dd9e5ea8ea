//! Plain (non-fragmented) MP4: the sample tables of `stbl` (ISO/IEC
//! 14496-12 §8.6–8.7: `stts`, `ctts`, `stss`, `stsz`, `stsc`, `stco`/`co64`)
//! expanded into samples.
//!
//! Call order: [`ProgressiveMp4::parse`] with the whole `moov` box, then
//! either [`ProgressiveMp4::samples`] with the `mdat` box and its file
//! offset, or [`ProgressiveMp4::sample_refs`] to read each payload from the
//! file by offset (a file of many gigabytes need not be held in memory).
//! Samples come out in file order; within a track that is decode order.

use bytes::Bytes;
use mp4_atom::{Decode, Moov, StszSamples, Trak};

use super::track::track_from_trak;
use super::{MAX_BOX_SIZE, Mp4Error};
use crate::media::{Sample, Track, TrackId};

/// Most samples accepted per track (about 55 hours at 30 fps); caps the index.
pub const MAX_SAMPLES_PER_TRACK: u32 = 6_000_000;

/// Where one sample lies in the file and how it is timed: a [`Sample`]
/// without its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleRef {
    pub track: TrackId,
    /// File offset of the first payload byte.
    pub offset: u64,
    pub size: u32,
    /// Decode timestamp, in the track's timescale.
    pub dts: i64,
    /// `pts - dts`, in the track's timescale.
    pub cts_offset: i32,
    pub duration: u32,
    pub keyframe: bool,
}

impl SampleRef {
    /// The sample with `data`, which the caller read from `offset..offset + size`.
    pub fn with_data(&self, data: Bytes) -> Sample {
        Sample {
            track: self.track,
            dts: self.dts,
            cts_offset: self.cts_offset,
            duration: self.duration,
            keyframe: self.keyframe,
            data,
        }
    }
}

/// The tracks and sample index of a plain MP4.
#[derive(Debug)]
pub struct ProgressiveMp4 {
    tracks: Vec<Track>,
    index: Vec<SampleRef>,
}

impl ProgressiveMp4 {
    /// Parses a complete `moov` box (header included).
    pub fn parse(moov: &[u8]) -> Result<Self, Mp4Error> {
        Self::parse_for_file(moov, u64::MAX)
    }

    /// [`parse`](Self::parse) for a file of `file_size` bytes: sample
    /// tables that claim more sample bytes than the file holds are refused
    /// before anything is allocated for them (a `moov` of a few bytes can
    /// claim millions of equal-sized samples).
    pub fn parse_for_file(moov: &[u8], file_size: u64) -> Result<Self, Mp4Error> {
        if moov.len() as u64 > MAX_BOX_SIZE {
            return Err(Mp4Error::BoxTooLarge {
                kind: "moov".to_owned(),
                offset: 0,
                size: moov.len() as u64,
                max: MAX_BOX_SIZE,
            });
        }
        check_tables(moov, 0)?;
        let moov = Moov::decode(&mut &moov[..]).map_err(|source| Mp4Error::Decode {
            kind: "moov".to_owned(),
            offset: 0,
            source,
        })?;
        let mut tracks = Vec::with_capacity(moov.trak.len());
        let mut index = Vec::new();
        for trak in &moov.trak {
            let track = track_from_trak(trak)?;
            index_track(trak, track.id, &mut index, file_size)?;
            tracks.push(track);
        }
        index.sort_by_key(|e| e.offset);
        Ok(Self { tracks, index })
    }

    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Number of samples over all tracks.
    pub fn sample_count(&self) -> usize {
        self.index.len()
    }

    /// The samples stored in `mdat`, a whole box that starts at file offset
    /// `mdat_offset`. A sample outside it yields [`Mp4Error::Invalid`].
    pub fn samples(
        &self,
        mdat: Bytes,
        mdat_offset: u64,
    ) -> impl Iterator<Item = Result<Sample, Mp4Error>> + '_ {
        self.index.iter().map(move |e| {
            let start = e.offset.checked_sub(mdat_offset);
            let range = start.and_then(|s| {
                let s = usize::try_from(s).ok()?;
                let end = s.checked_add(e.size as usize)?;
                (end <= mdat.len()).then_some(s..end)
            });
            let Some(range) = range else {
                return Err(Mp4Error::Invalid {
                    offset: e.offset,
                    context: "sample",
                    reason: "sample data lies outside the mdat",
                });
            };
            Ok(e.with_data(mdat.slice(range)))
        })
    }

    /// Every sample's place and timing, in file order, without payloads.
    pub fn sample_refs(&self) -> &[SampleRef] {
        &self.index
    }
}

/// Boxes whose children are boxes, on the way to the sample tables.
const CONTAINERS: [&[u8; 4]; 8] = [
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"mvex", b"udta",
];

/// Checks, before the box decoder allocates for them, that every table's
/// entry count fits in its box: a box of a few bytes can state a count of
/// a billion entries (found by fuzzing: `sgpd`).
fn check_tables(data: &[u8], depth: u32) -> Result<(), Mp4Error> {
    if depth > 16 {
        return Err(invalid("moov", "boxes nested too deep"));
    }
    let mut at = 0usize;
    // The outermost call gets the moov box itself.
    while at + 8 <= data.len() {
        let size =
            u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let kind: &[u8; 4] = data[at + 4..at + 8].try_into().unwrap_or(&[0; 4]);
        let (header, size) = match size {
            1 if at + 16 <= data.len() => {
                let large = u64::from_be_bytes(data[at + 8..at + 16].try_into().unwrap_or([0; 8]));
                (16, usize::try_from(large).unwrap_or(usize::MAX))
            }
            0 => (8, data.len() - at),
            n => (8, n),
        };
        if size < header || at.saturating_add(size) > data.len() {
            // The decoder reports a truncated box with its own error.
            return Ok(());
        }
        let body = &data[at + header..at + size];
        if CONTAINERS.contains(&kind) {
            check_tables(body, depth + 1)?;
        } else if let Some((offset, entry)) = table_layout(kind, body) {
            let count = body
                .get(offset..offset + 4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
            let room = body.len().saturating_sub(offset + 4);
            if count.saturating_mul(entry) > room {
                return Err(invalid(
                    "sample table",
                    "a table states more entries than its box holds",
                ));
            }
        }
        at += size;
    }
    Ok(())
}

/// Where a table box's entry count is (bytes into its body) and the
/// smallest size of one entry.
fn table_layout(kind: &[u8; 4], body: &[u8]) -> Option<(usize, usize)> {
    let version = *body.first()?;
    Some(match kind {
        b"stts" | b"ctts" | b"co64" => (4, 8),
        b"stsc" => (4, 12),
        b"stco" | b"stss" => (4, 4),
        // sample_size, then sample_count; 4 bytes each only when sizes differ.
        b"stsz" => {
            let size = body.get(4..8)?;
            if size != [0, 0, 0, 0] {
                return None;
            }
            (8, 4)
        }
        b"elst" => (4, if version == 1 { 20 } else { 12 }),
        b"sbgp" => (if version == 1 { 12 } else { 8 }, 8),
        b"sgpd" => (if version >= 1 { 12 } else { 8 }, 1),
        _ => return None,
    })
}

fn invalid(context: &'static str, reason: &'static str) -> Mp4Error {
    Mp4Error::Invalid {
        offset: 0,
        context,
        reason,
    }
}

fn index_track(
    trak: &Trak,
    track: TrackId,
    index: &mut Vec<SampleRef>,
    file_size: u64,
) -> Result<(), Mp4Error> {
    let stbl = &trak.mdia.minf.stbl;
    let sizes = |i: usize| match &stbl.stsz.samples {
        StszSamples::Identical { size, .. } => *size,
        StszSamples::Different { sizes } => sizes.get(i).copied().unwrap_or(0),
    };
    let count = match &stbl.stsz.samples {
        StszSamples::Identical { count, .. } => *count,
        StszSamples::Different { sizes } => {
            u32::try_from(sizes.len()).map_err(|_| invalid("stsz", "too many samples"))?
        }
    };
    if count > MAX_SAMPLES_PER_TRACK {
        return Err(invalid("stsz", "more samples than MAX_SAMPLES_PER_TRACK"));
    }
    if let StszSamples::Identical { size, count } = &stbl.stsz.samples {
        if *size == 0 && *count > 0 {
            return Err(invalid("stsz", "samples of size 0"));
        }
        if u64::from(*size) * u64::from(*count) > file_size {
            return Err(invalid("stsz", "the samples are larger than the file"));
        }
    }
    let count = count as usize;
    // Grown as samples are indexed, not reserved from a count the file states.
    index.reserve(count.min(1 << 16));

    // stts: decode deltas, run-length coded.
    let mut durations = stbl
        .stts
        .entries
        .iter()
        .flat_map(|e| std::iter::repeat_n(e.sample_delta, e.sample_count as usize));
    // ctts: composition offsets, run-length coded; absent means zero.
    let mut cts = stbl.ctts.iter().flat_map(|c| {
        c.entries
            .iter()
            .flat_map(|e| std::iter::repeat_n(e.sample_offset, e.sample_count as usize))
    });
    // stss: 1-based sync sample numbers, ascending; absent means every sample is sync.
    let mut sync = stbl
        .stss
        .as_ref()
        .map(|s| s.entries.iter().copied().peekable());

    let chunk_offsets: Vec<u64> = match (&stbl.co64, &stbl.stco) {
        (Some(co64), _) => co64.entries.clone(),
        (None, Some(stco)) => stco.entries.iter().map(|&o| u64::from(o)).collect(),
        (None, None) => return Err(invalid("stbl", "no stco or co64")),
    };

    // stsc: runs of chunks with the same samples-per-chunk (first_chunk is 1-based).
    let stsc = &stbl.stsc.entries;
    let mut sample = 0usize;
    let mut dts: i64 = 0;
    for (run, entry) in stsc.iter().enumerate() {
        let first = (entry.first_chunk as usize)
            .checked_sub(1)
            .ok_or(invalid("stsc", "first_chunk is 0"))?;
        let last = stsc.get(run + 1).map_or(chunk_offsets.len(), |next| {
            (next.first_chunk as usize).saturating_sub(1)
        });
        if last < first || last > chunk_offsets.len() {
            return Err(invalid("stsc", "chunk runs out of order or past stco"));
        }
        for chunk_offset in &chunk_offsets[first..last] {
            let mut offset = *chunk_offset;
            for _ in 0..entry.samples_per_chunk {
                if sample >= count {
                    break;
                }
                let size = sizes(sample);
                let duration = durations
                    .next()
                    .ok_or(invalid("stts", "fewer durations than samples"))?;
                let cts_offset = i32::try_from(cts.next().unwrap_or(0))
                    .map_err(|_| invalid("ctts", "offset exceeds i32"))?;
                let number = sample as u32 + 1;
                let keyframe = match sync.as_mut() {
                    None => true,
                    Some(s) => {
                        while s.next_if(|&n| n < number).is_some() {}
                        s.next_if_eq(&number).is_some()
                    }
                };
                index.push(SampleRef {
                    track,
                    offset,
                    size,
                    dts,
                    cts_offset,
                    duration,
                    keyframe,
                });
                offset = offset
                    .checked_add(u64::from(size))
                    .ok_or(invalid("stsz", "sample offsets overflow"))?;
                dts += i64::from(duration);
                sample += 1;
            }
        }
    }
    if sample != count {
        return Err(invalid("stsc", "chunks hold fewer samples than stsz"));
    }
    Ok(())
}

#[cfg(test)]
mod fuzz_regressions {
    use super::ProgressiveMp4;

    /// Found by `benches/fuzz.sh` (mp4_moov): a 1.5 KB moov whose tracks
    /// claim millions of equal-sized samples made the indexer reserve
    /// 2.6 GB. It is refused now, allocating nothing for the claim.
    #[test]
    fn a_moov_claiming_more_samples_than_the_file_holds_is_refused() {
        let moov = include_bytes!("../../fuzz/regressions/mp4_moov-oom-huge-stsz.bin");
        assert!(ProgressiveMp4::parse_for_file(moov, 64 << 20).is_err());
    }
}
