//! Push-based fragmented MP4 reading (ISO/IEC 14496-12 §8.8).
//!
//! # Call order
//!
//! [`FragmentedReader::feed`] bytes as they arrive, then call
//! [`FragmentedReader::poll`] until it returns `Ok(None)` (more bytes
//! needed). Events come in stream order: [`ReaderEvent::Tracks`] once the
//! `moov` is complete, then [`ReaderEvent::Sample`]s once each `moof` and its
//! `mdat` are complete. After an error the reader is poisoned: the stream is
//! not resynchronised.
//!
//! At most one top-level box is buffered, capped at [`MAX_BOX_SIZE`]; sample
//! payloads are zero-copy slices of the buffered `mdat`.

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, Bytes, BytesMut};
use mp4_atom::{Decode, Moof, Moov, Trex};

use super::boxes::BoxHeader;
use super::track::track_from_trak;
use super::{Mp4Error, fourcc_string};
use crate::media::{Sample, Track, TrackId};

/// `sample_is_non_sync_sample` (ISO/IEC 14496-12 §8.8.3.1).
const NON_SYNC_FLAG: u32 = 0x0001_0000;

/// What the reader found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReaderEvent {
    /// The tracks of the `moov`, in `trak` order.
    Tracks(Vec<Track>),
    Sample(Sample),
}

#[derive(Debug)]
struct TrackState {
    trex: Trex,
    next_dts: u64,
}

/// Reads fragmented MP4 from a byte stream.
#[derive(Debug, Default)]
pub struct FragmentedReader {
    buf: BytesMut,
    /// Stream offset of `buf[0]`.
    offset: u64,
    tracks: HashMap<TrackId, TrackState>,
    moof: Option<(Moof, u64)>,
    events: VecDeque<ReaderEvent>,
    failed: bool,
}

impl FragmentedReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes from the stream.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes fed but not yet consumed; at most one incomplete top-level box.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next event, `Ok(None)` when more bytes are needed.
    pub fn poll(&mut self) -> Result<Option<ReaderEvent>, Mp4Error> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            if self.failed {
                return Err(Mp4Error::Invalid {
                    offset: self.offset,
                    context: "fragmented mp4",
                    reason: "reader failed earlier",
                });
            }
            match self.next_box() {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
    }

    /// Handles one complete top-level box; `Ok(false)` when none is buffered yet.
    fn next_box(&mut self) -> Result<bool, Mp4Error> {
        let offset = self.offset;
        let Some(header) = BoxHeader::parse(&self.buf, offset)? else {
            return Ok(false);
        };
        let Some(len) = header.checked_len(offset)? else {
            return Err(Mp4Error::Invalid {
                offset,
                context: "fragmented mp4",
                reason: "box of unknown size (0) in a stream",
            });
        };
        if self.buf.len() < len {
            self.buf.reserve(len - self.buf.len());
            return Ok(false);
        }
        let bytes = self.buf.split_to(len).freeze();
        self.offset += len as u64;
        let decode_err = |source| Mp4Error::Decode {
            kind: fourcc_string(&header.kind),
            offset,
            source,
        };
        match &header.kind {
            b"moov" => {
                let moov = Moov::decode(&mut bytes.as_ref()).map_err(decode_err)?;
                let trex = moov
                    .mvex
                    .as_ref()
                    .map(|m| m.trex.clone())
                    .unwrap_or_default();
                let mut tracks = Vec::with_capacity(moov.trak.len());
                for trak in &moov.trak {
                    let track = track_from_trak(trak)?;
                    let trex = trex
                        .iter()
                        .find(|t| t.track_id == track.id)
                        .cloned()
                        .unwrap_or(Trex {
                            track_id: track.id,
                            default_sample_description_index: 1,
                            default_sample_duration: 0,
                            default_sample_size: 0,
                            default_sample_flags: 0,
                        });
                    self.tracks
                        .insert(track.id, TrackState { trex, next_dts: 0 });
                    tracks.push(track);
                }
                self.events.push_back(ReaderEvent::Tracks(tracks));
            }
            b"moof" => {
                let moof = Moof::decode(&mut bytes.as_ref()).map_err(decode_err)?;
                self.moof = Some((moof, offset));
            }
            b"mdat" => {
                if let Some((moof, moof_offset)) = self.moof.take() {
                    let mut payload = bytes;
                    payload.advance(header.header_len);
                    self.read_samples(
                        &moof,
                        moof_offset,
                        offset + header.header_len as u64,
                        payload,
                    )?;
                }
            }
            _ => {}
        }
        Ok(true)
    }

    fn read_samples(
        &mut self,
        moof: &Moof,
        moof_offset: u64,
        payload_offset: u64,
        payload: Bytes,
    ) -> Result<(), Mp4Error> {
        let invalid = |reason| Mp4Error::Invalid {
            offset: moof_offset,
            context: "moof > traf",
            reason,
        };
        let mut previous_traf_end = moof_offset;
        for traf in &moof.traf {
            let tfhd = &traf.tfhd;
            let track = tfhd.track_id;
            let state = self
                .tracks
                .get_mut(&track)
                .ok_or(invalid("tfhd names a track the moov does not have"))?;
            // ISO/IEC 14496-12 §8.8.7.1: explicit base, else the moof start when
            // default-base-is-moof (or for the first traf), else the previous traf's end.
            let base = match tfhd.base_data_offset {
                Some(base) => base,
                None if tfhd.default_base_is_moof => moof_offset,
                None => previous_traf_end,
            };
            let mut dts = traf
                .tfdt
                .as_ref()
                .map_or(state.next_dts, |t| t.base_media_decode_time);
            let mut pos = base;
            for trun in &traf.trun {
                if let Some(offset) = trun.data_offset {
                    pos = base
                        .checked_add_signed(i64::from(offset))
                        .ok_or(invalid("trun data offset before the stream start"))?;
                }
                for entry in trun.samples.iter() {
                    let duration = entry
                        .duration
                        .or(tfhd.default_sample_duration)
                        .unwrap_or(state.trex.default_sample_duration);
                    let size = entry
                        .size
                        .or(tfhd.default_sample_size)
                        .unwrap_or(state.trex.default_sample_size);
                    let flags = entry
                        .flags
                        .or(tfhd.default_sample_flags)
                        .unwrap_or(state.trex.default_sample_flags);
                    let cts_offset = i32::try_from(entry.cts.unwrap_or(0))
                        .map_err(|_| invalid("composition offset exceeds i32"))?;
                    let range = pos
                        .checked_sub(payload_offset)
                        .and_then(|start| usize::try_from(start).ok())
                        .and_then(|start| Some(start..start.checked_add(size as usize)?))
                        .filter(|r| r.end <= payload.len())
                        .ok_or(invalid("sample data lies outside the following mdat"))?;
                    self.events.push_back(ReaderEvent::Sample(Sample {
                        track,
                        dts: i64::try_from(dts).map_err(|_| invalid("decode time exceeds i64"))?,
                        cts_offset,
                        duration,
                        keyframe: flags & NON_SYNC_FLAG == 0,
                        data: payload.slice(range),
                    }));
                    pos += u64::from(size);
                    dts = dts
                        .checked_add(u64::from(duration))
                        .ok_or(invalid("decode time overflows"))?;
                }
            }
            state.next_dts = dts;
            previous_traf_end = pos;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmaf::{Event, Fragmenter, FragmenterConfig, TargetDuration, init_segment};
    use crate::codec::h264::tests::{PPS_720P_HIGH, SPS_720P_HIGH};
    use crate::codec::{AvcConfig, CodecConfig};

    /// Our own CMAF output read back, fed in every chunk size from 1 byte up.
    #[test]
    fn reads_back_cmaf_output_at_any_split() {
        let avc = AvcConfig::from_parameter_sets(&[SPS_720P_HIGH], &[PPS_720P_HIGH]).unwrap();
        let track = Track::new(1, 90_000, CodecConfig::H264(avc));
        let mut f = Fragmenter::new(FragmenterConfig {
            segment_duration: TargetDuration::from_millis(100),
            part_duration: Some(TargetDuration::from_millis(50)),
            first_segment_seq: 1,
        });
        f.add_track(&track).unwrap();
        let mut stream = init_segment(&track).unwrap().to_vec();
        let mut input = Vec::new();
        for i in 0..20u8 {
            let sample = Sample {
                track: 1,
                dts: i64::from(i) * 3000,
                cts_offset: if i % 3 == 1 { 6000 } else { -1500 },
                duration: 3000,
                keyframe: i % 4 == 0,
                data: Bytes::from(vec![i; 7 + usize::from(i)]),
            };
            input.push(sample.clone());
            f.push(sample).unwrap();
        }
        f.flush().unwrap();
        while let Some(event) = f.poll_event() {
            if let Event::Segment(s) = event {
                stream.extend_from_slice(&s.data.to_bytes());
            }
        }
        for chunk in [1, 2, 3, 7, 64, 1000, stream.len()] {
            let mut reader = FragmentedReader::new();
            let mut tracks = Vec::new();
            let mut samples = Vec::new();
            for piece in stream.chunks(chunk) {
                reader.feed(piece);
                while let Some(event) = reader.poll().unwrap() {
                    match event {
                        ReaderEvent::Tracks(t) => tracks = t,
                        ReaderEvent::Sample(s) => samples.push(s),
                    }
                }
                assert!(reader.buffered() <= stream.len());
            }
            assert_eq!(tracks, std::slice::from_ref(&track));
            assert_eq!(samples, input, "chunk size {chunk}");
            assert_eq!(reader.buffered(), 0);
        }
    }

    #[test]
    fn refuses_oversized_and_unsized_boxes() {
        let mut reader = FragmentedReader::new();
        reader.feed(&[0x10, 0, 0, 0]);
        reader.feed(b"mdat");
        assert!(matches!(reader.poll(), Err(Mp4Error::BoxTooLarge { .. })));
        assert!(reader.poll().is_err());

        let mut reader = FragmentedReader::new();
        reader.feed(b"\0\0\0\0mdat");
        assert!(matches!(reader.poll(), Err(Mp4Error::Invalid { .. })));

        let mut reader = FragmentedReader::new();
        reader.feed(b"\0\0\0\x10moov\0\0\0\x08");
        assert!(reader.poll().unwrap().is_none());
        reader.feed(b"junk");
        assert!(matches!(reader.poll(), Err(Mp4Error::Decode { .. })));
    }

    #[test]
    fn mdat_before_tracks_and_unknown_boxes_are_skipped() {
        let mut reader = FragmentedReader::new();
        reader.feed(b"\0\0\0\x0cfree1234\0\0\0\x09mdatx");
        assert_eq!(reader.poll().unwrap(), None);
        assert_eq!(reader.buffered(), 0);
    }
}
