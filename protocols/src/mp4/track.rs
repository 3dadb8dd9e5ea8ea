//! From a `trak` to a [`Track`]: timescale, language, edit list and the codec
//! configuration, re-read from the sample entry's configuration record with
//! this crate's own parsers so the bitstream decides the codec.

use mp4_atom::{Atom, Codec, Trak};

use super::{Mp4Error, fourcc_string};
use crate::codec::{AudioSpecificConfig, AvcConfig, CodecConfig, HevcConfig, OpusConfig};
use crate::media::{Track, TrackId};

/// `objectTypeIndication` of MPEG-4 Audio (ISO/IEC 14496-1 Table 5).
const OTI_MPEG4_AUDIO: u8 = 0x40;

/// Reads the description of one track; the first sample entry is used.
pub fn track_from_trak(trak: &Trak) -> Result<Track, Mp4Error> {
    let id = trak.tkhd.track_id;
    let mdia = &trak.mdia;
    let entry = mdia
        .minf
        .stbl
        .stsd
        .codecs
        .first()
        .ok_or(Mp4Error::Invalid {
            offset: 0,
            context: "stsd",
            reason: "no sample entry",
        })?;
    let codec = codec_config(id, entry)?;
    let mut track = Track::new(id, mdia.mdhd.timescale, codec);
    if track.timescale == 0 {
        return Err(Mp4Error::Invalid {
            offset: 0,
            context: "mdhd",
            reason: "timescale is 0",
        });
    }
    if mdia.mdhd.language.len() == 3 {
        track.language = mdia.mdhd.language.clone();
    }
    // A single edit (or an empty edit followed by one) shifts presentation;
    // other edit lists are not represented.
    if let Some(elst) = trak.edts.as_ref().and_then(|e| e.elst.as_ref()) {
        track.presentation_offset = elst.entries.iter().find_map(|e| e.media_time).unwrap_or(0);
    }
    Ok(track)
}

fn record<A: Atom>(atom: &A) -> Vec<u8> {
    let mut out = Vec::new();
    // Encoding into a Vec only fails on values that decoding cannot produce.
    let _ = atom.encode_body(&mut out);
    out
}

fn codec_config(track: TrackId, entry: &Codec) -> Result<CodecConfig, Mp4Error> {
    let codec_err = |source| Mp4Error::Codec { track, source };
    Ok(match entry {
        Codec::Avc1(e) => CodecConfig::H264(AvcConfig::parse(&record(&e.avcc)).map_err(codec_err)?),
        Codec::Avc3(e) => CodecConfig::H264(AvcConfig::parse(&record(&e.avcc)).map_err(codec_err)?),
        Codec::Hvc1(e) => {
            CodecConfig::H265(HevcConfig::parse(&record(&e.hvcc)).map_err(codec_err)?)
        }
        Codec::Hev1(e) => {
            CodecConfig::H265(HevcConfig::parse(&record(&e.hvcc)).map_err(codec_err)?)
        }
        Codec::Mp4a(e) => {
            // ISO/IEC 14496-1 Table 5: 0x40 is MPEG-4 Audio (AAC); MP3 (0x6B),
            // MPEG-2 AAC (0x66–0x68) and others share the `mp4a` entry.
            let oti = e.esds.es_desc.dec_config.object_type_indication;
            if oti != OTI_MPEG4_AUDIO {
                return Err(Mp4Error::UnsupportedCodec {
                    track,
                    entry: format!("mp4a with objectTypeIndication 0x{oti:02x}"),
                });
            }
            let dsi = e
                .esds
                .es_desc
                .dec_config
                .dec_specific
                .as_ref()
                .ok_or(Mp4Error::Invalid {
                    offset: 0,
                    context: "esds",
                    reason: "no DecoderSpecificInfo",
                })?;
            CodecConfig::Aac(AudioSpecificConfig::parse(&dsi.raw).map_err(codec_err)?)
        }
        Codec::Opus(e) => {
            CodecConfig::Opus(OpusConfig::parse_dops(&record(&e.dops)).map_err(codec_err)?)
        }
        other => {
            let mut kind = Vec::new();
            let _ = mp4_atom::Encode::encode(other, &mut kind);
            let fourcc = kind
                .get(4..8)
                .and_then(|k| <[u8; 4]>::try_from(k).ok())
                .map_or_else(|| "?".to_owned(), |k| fourcc_string(&k));
            return Err(Mp4Error::UnsupportedCodec {
                track,
                entry: fourcc,
            });
        }
    })
}
