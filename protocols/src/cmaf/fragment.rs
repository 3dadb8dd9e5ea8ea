//! CMAF chunks: one `moof` + `mdat` pair for a run of samples of one track
//! (ISO/IEC 23000-19 §7.3.2.3), and the `styp` that opens a CMAF segment.
//!
//! Each `moof` holds one `traf` with `tfhd` (default-base-is-moof, no base
//! data offset, ISO/IEC 23000-19 §7.5.16), `tfdt` version 1 carrying the
//! first sample's decode time, and one `trun` whose data offset points at
//! the first byte of the `mdat` payload.

use bytes::Bytes;
use mp4_atom::{Encode, Mfhd, Moof, Styp, Tfdt, Tfhd, Traf, Trun, TrunEntry};

use super::CmafError;
use crate::media::TrackId;

/// `sample_flags` of a sync sample: `sample_depends_on` = 2 (depends on no
/// other sample), `sample_is_non_sync_sample` = 0 (ISO/IEC 14496-12 §8.8.3.1).
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: `sample_depends_on` = 1,
/// `sample_is_non_sync_sample` = 1.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

const MDAT_HEADER_LEN: usize = 8;

/// One sample as a chunk stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkSample {
    pub duration: u32,
    /// `pts - dts`; written with a version 1 `trun`, which allows negative offsets.
    pub cts_offset: i32,
    pub keyframe: bool,
    pub data: Bytes,
}

/// Appends a `styp` for a CMAF segment (ISO/IEC 23000-19 §7.3.3.2: the
/// `cmfs` brand; `msdh` lets DASH clients treat it as a media segment).
pub fn write_styp(out: &mut Vec<u8>) -> Result<(), mp4_atom::Error> {
    Styp {
        major_brand: b"cmfs".into(),
        minor_version: 0,
        compatible_brands: vec![b"cmfs".into(), b"cmff".into(), b"msdh".into()],
    }
    .encode(out)
}

/// Appends `moof` and the `mdat` header for `samples` of `track`, the first
/// decoded at `base_dts`; the samples' data, in order, must follow right
/// after them (the fragmenter keeps them as their own [`Rope`](crate::rope::Rope)
/// pieces instead of copying them here). Returns the number of bytes written.
///
/// Durations, sizes and flags are factored into `tfhd` defaults when every
/// sample shares them (all audio, constant-rate video); otherwise each sample
/// carries its own.
pub fn write_chunk_header(
    out: &mut Vec<u8>,
    sequence_number: u32,
    track: TrackId,
    base_dts: u64,
    samples: &[ChunkSample],
) -> Result<usize, CmafError> {
    let payload: usize = samples.iter().map(|s| s.data.len()).sum();
    let Some(mdat_len) = payload
        .checked_add(MDAT_HEADER_LEN)
        .filter(|&len| u32::try_from(len).is_ok())
    else {
        return Err(CmafError::ChunkTooLarge {
            track,
            size: payload,
        });
    };
    let flags = |s: &ChunkSample| match s.keyframe {
        true => SYNC_SAMPLE_FLAGS,
        false => NON_SYNC_SAMPLE_FLAGS,
    };

    let first_duration = samples.first().map(|s| s.duration);
    let same_duration = samples.iter().all(|s| Some(s.duration) == first_duration);
    // The flags shared by every sample after the first, which go to `tfhd`; the
    // first sample may then differ through `first_sample_flags` alone.
    let rest_flags = samples.get(1).map(flags);
    let rest_same = samples.iter().skip(1).all(|s| Some(flags(s)) == rest_flags);
    let default_flags = match (rest_flags, samples.first()) {
        (Some(f), _) if rest_same => Some(f),
        (None, Some(first)) => Some(flags(first)),
        _ => None,
    };
    let any_cts = samples.iter().any(|s| s.cts_offset != 0);

    let entries: Vec<TrunEntry> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| TrunEntry {
            duration: (!same_duration).then_some(s.duration),
            size: Some(s.data.len() as u32),
            // mp4-atom writes `first_sample_flags` when only the first entry has
            // flags, and per-sample flags (None read as 0) otherwise: so either
            // only the first differs, or every entry carries its own.
            flags: match default_flags {
                Some(d) if i == 0 && flags(s) != d => Some(flags(s)),
                Some(_) => None,
                None => Some(flags(s)),
            },
            cts: any_cts.then_some(i64::from(s.cts_offset)),
        })
        .collect();

    let mut moof = Moof {
        mfhd: Mfhd { sequence_number },
        traf: vec![Traf {
            tfhd: Tfhd {
                track_id: track,
                default_sample_duration: if same_duration { first_duration } else { None },
                default_sample_flags: default_flags,
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: base_dts,
            }),
            trun: vec![Trun {
                data_offset: Some(0),
                samples: entries.into(),
            }],
            ..Default::default()
        }],
    };
    let encode_error = |source| CmafError::Encode {
        track,
        what: "moof",
        source,
    };
    let start = out.len();
    moof.encode(out).map_err(encode_error)?;
    let moof_len = out.len() - start;
    // The data offset is relative to the moof (default-base-is-moof) and its
    // field has a fixed width, so re-encoding with the real value keeps the size.
    let data_offset =
        i32::try_from(moof_len + MDAT_HEADER_LEN).map_err(|_| CmafError::ChunkTooLarge {
            track,
            size: moof_len,
        })?;
    if let Some(trun) = moof.traf.first_mut().and_then(|t| t.trun.first_mut()) {
        trun.data_offset = Some(data_offset);
    }
    out.truncate(start);
    moof.encode(out).map_err(encode_error)?;
    debug_assert_eq!(out.len() - start, moof_len);

    out.extend_from_slice(&(mdat_len as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    Ok(out.len() - start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Any, Decode, DecodeMaybe, Mdat};

    fn sample(duration: u32, cts_offset: i32, keyframe: bool, len: usize) -> ChunkSample {
        ChunkSample {
            duration,
            cts_offset,
            keyframe,
            data: Bytes::from(vec![len as u8; len]),
        }
    }

    /// The whole chunk: header, then the samples' data.
    fn write_chunk(
        out: &mut Vec<u8>,
        sequence_number: u32,
        track: TrackId,
        base_dts: u64,
        samples: &[ChunkSample],
    ) -> Result<usize, CmafError> {
        let start = out.len();
        write_chunk_header(out, sequence_number, track, base_dts, samples)?;
        for s in samples {
            out.extend_from_slice(&s.data);
        }
        Ok(out.len() - start)
    }

    fn decode(buf: &[u8]) -> (Moof, Vec<u8>) {
        let mut rest = buf;
        let moof = Moof::decode(&mut rest).unwrap();
        let mdat = Mdat::decode(&mut rest).unwrap();
        assert!(rest.is_empty());
        (moof, mdat.data)
    }

    #[test]
    fn video_chunk_with_b_frames() {
        let samples = [
            sample(3000, 6000, true, 10),
            sample(3000, -3000, false, 3),
            sample(3000, 0, false, 4),
        ];
        let mut out = Vec::new();
        let len = write_chunk(&mut out, 7, 1, 90_000, &samples).unwrap();
        assert_eq!(len, out.len());
        let (moof, mdat) = decode(&out);
        assert_eq!(moof.mfhd.sequence_number, 7);
        let traf = &moof.traf[0];
        assert!(traf.tfhd.default_base_is_moof);
        assert_eq!(traf.tfhd.base_data_offset, None);
        assert_eq!(traf.tfhd.default_sample_duration, Some(3000));
        assert_eq!(traf.tfhd.default_sample_flags, Some(NON_SYNC_SAMPLE_FLAGS));
        assert_eq!(traf.tfdt.as_ref().unwrap().base_media_decode_time, 90_000);
        let trun = &traf.trun[0];
        let moof_len = out.len() - 8 - 17;
        assert_eq!(trun.data_offset, Some(moof_len as i32 + 8));
        let entries: Vec<_> = trun.samples.iter().collect();
        assert_eq!(entries[0].flags, Some(SYNC_SAMPLE_FLAGS));
        assert_eq!(entries[1].flags, None);
        let cts: Vec<_> = entries.iter().map(|e| e.cts.unwrap()).collect();
        assert_eq!(cts, [6000, -3000, 0]);
        let sizes: Vec<_> = entries.iter().map(|e| e.size.unwrap()).collect();
        assert_eq!(sizes, [10, 3, 4]);
        assert_eq!(mdat.len(), 17);
        // trun version 1 carries the negative offset (byte 8 of the box is the version).
        let trun_at = out.windows(4).position(|w| w == b"trun").unwrap();
        assert_eq!(out[trun_at + 4], 1);
    }

    #[test]
    fn keyframe_in_the_middle_uses_per_sample_flags() {
        let samples = [
            sample(1000, 0, true, 1),
            sample(1001, 0, false, 1),
            sample(1000, 0, true, 1),
        ];
        let mut out = Vec::new();
        write_chunk(&mut out, 1, 2, 0, &samples).unwrap();
        let (moof, _) = decode(&out);
        let traf = &moof.traf[0];
        assert_eq!(traf.tfhd.default_sample_duration, None);
        let flags: Vec<_> = traf.trun[0].samples.iter().map(|e| e.flags).collect();
        assert_eq!(
            flags,
            [
                Some(SYNC_SAMPLE_FLAGS),
                Some(NON_SYNC_SAMPLE_FLAGS),
                Some(SYNC_SAMPLE_FLAGS)
            ]
        );
        let durations: Vec<_> = traf.trun[0].samples.iter().map(|e| e.duration).collect();
        assert_eq!(durations, [Some(1000), Some(1001), Some(1000)]);
        assert!(traf.trun[0].samples.iter().all(|e| e.cts.is_none()));
    }

    #[test]
    fn audio_chunk_factors_defaults() {
        let samples: Vec<_> = (0..4).map(|i| sample(1024, 0, true, 5 + i)).collect();
        let mut out = Vec::new();
        write_chunk(&mut out, 3, 2, 48_000, &samples).unwrap();
        let (moof, mdat) = decode(&out);
        let traf = &moof.traf[0];
        assert_eq!(traf.tfhd.default_sample_flags, Some(SYNC_SAMPLE_FLAGS));
        assert_eq!(traf.tfhd.default_sample_duration, Some(1024));
        assert!(traf.trun[0].samples.iter().all(|e| e.flags.is_none()));
        assert_eq!(mdat.len(), 5 + 6 + 7 + 8);
    }

    #[test]
    fn styp_decodes() {
        let mut out = Vec::new();
        write_styp(&mut out).unwrap();
        let Some(Any::Styp(styp)) = Any::decode_maybe(&mut out.as_slice()).unwrap() else {
            panic!("not a styp");
        };
        assert_eq!(styp.major_brand, b"cmfs".into());
    }
}
