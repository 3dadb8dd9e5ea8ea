//! CMAF headers: `ftyp` + `moov` with empty sample tables and `mvex`
//! (ISO/IEC 23000-19 §7.3.1, ISO/IEC 14496-12 §8.8.1). One track per header
//! is a CMAF track file, the primary mode; [`init_segment_multi`] writes
//! several tracks into one header for muxed outputs.

use bytes::Bytes;
use mp4_atom::esds::{DecoderConfig, DecoderSpecific, EsDescriptor, SLConfig};
use mp4_atom::{
    Atom, Audio, Avc1, Avcc, Codec, Dinf, Dops, Dref, DrefEntry, Edts, Elst, ElstEntry, Encode,
    Esds, FixedPoint, Ftyp, Hdlr, Hvc1, Hvcc, Mdhd, Mdia, Minf, Moov, Mp4a, Mvex, Mvhd, Opus, Smhd,
    Stbl, Stco, Stsd, Tkhd, Trak, Trex, Url, Visual, Vmhd,
};

use super::CmafError;
use crate::codec::CodecConfig;
use crate::media::{MediaKind, Track};

/// `mvhd` timescale; only the (zero) movie duration and edit durations use it.
const MOVIE_TIMESCALE: u32 = 1000;
/// MPEG-4 Systems `objectTypeIndication` for Audio ISO/IEC 14496-3 (ISO/IEC 14496-1 Table 5).
const OTI_MPEG4_AUDIO: u8 = 0x40;
/// `streamType` AudioStream (ISO/IEC 14496-1 Table 6).
const STREAM_TYPE_AUDIO: u8 = 0x05;

/// Writes the CMAF header of one track.
pub fn init_segment(track: &Track) -> Result<Bytes, CmafError> {
    init_segment_multi(std::slice::from_ref(track))
}

/// Writes one header holding several tracks, in the given order.
pub fn init_segment_multi(tracks: &[Track]) -> Result<Bytes, CmafError> {
    let first = tracks.first().ok_or(CmafError::InvalidTrack {
        track: 0,
        reason: "no tracks",
    })?;
    let mut out = Vec::with_capacity(1024);
    // ISO/IEC 23000-19 §7.2: a CMAF header carries the `cmfc` brand; `iso6`
    // covers tfdt v1 and default-base-is-moof.
    Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: vec![
            b"iso6".into(),
            b"cmfc".into(),
            b"dash".into(),
            b"mp41".into(),
        ],
    }
    .encode(&mut out)
    .map_err(|source| CmafError::Encode {
        track: first.id,
        what: "ftyp",
        source,
    })?;

    let mut trak = Vec::with_capacity(tracks.len());
    let mut trex = Vec::with_capacity(tracks.len());
    for track in tracks {
        if tracks.iter().filter(|t| t.id == track.id).count() > 1 {
            return Err(CmafError::DuplicateTrack { track: track.id });
        }
        trak.push(build_trak(track)?);
        trex.push(Trex {
            track_id: track.id,
            default_sample_description_index: 1,
            default_sample_duration: 0,
            default_sample_size: 0,
            default_sample_flags: 0,
        });
    }
    let next_track_id = tracks
        .iter()
        .map(|t| t.id)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    Moov {
        mvhd: Mvhd {
            timescale: MOVIE_TIMESCALE,
            rate: FixedPoint::from(1),
            volume: FixedPoint::from(1),
            next_track_id,
            ..Default::default()
        },
        mvex: Some(Mvex { mehd: None, trex }),
        trak,
        ..Default::default()
    }
    .encode(&mut out)
    .map_err(|source| CmafError::Encode {
        track: first.id,
        what: "moov",
        source,
    })?;
    Ok(out.into())
}

fn build_trak(track: &Track) -> Result<Trak, CmafError> {
    let invalid = |reason| CmafError::InvalidTrack {
        track: track.id,
        reason,
    };
    if track.id == 0 {
        return Err(invalid("track_ID 0 is reserved"));
    }
    if track.timescale == 0 {
        return Err(invalid("timescale is 0"));
    }
    if track.language.len() != 3 || !track.language.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(invalid("language is not a three-letter ISO 639-2/T code"));
    }
    let kind = track.kind();
    let (width, height) = (track.width().unwrap_or(0), track.height().unwrap_or(0));
    let (width, height) = match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) => (w, h),
        _ => return Err(invalid("picture larger than 65535 pixels")),
    };
    let edts = (track.presentation_offset > 0).then(|| Edts {
        elst: Some(Elst {
            entries: vec![ElstEntry {
                // ISO/IEC 14496-12 §8.6.6.3: in a fragmented file whose duration is
                // not known, a segment_duration of 0 means the edit runs to the end.
                segment_duration: 0,
                media_time: Some(track.presentation_offset),
                media_rate: FixedPoint::from(1),
            }],
        }),
    });
    let (handler, name, vmhd, smhd) = match kind {
        MediaKind::Video => (b"vide", "VideoHandler", Some(Vmhd::default()), None),
        MediaKind::Audio => (b"soun", "SoundHandler", None, Some(Smhd::default())),
    };
    Ok(Trak {
        tkhd: Tkhd {
            track_id: track.id,
            enabled: true,
            in_movie: true,
            volume: FixedPoint::from(u8::from(kind == MediaKind::Audio)),
            width: FixedPoint::from(width),
            height: FixedPoint::from(height),
            alternate_group: u16::from(kind == MediaKind::Audio),
            ..Default::default()
        },
        edts,
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: track.timescale,
                language: track.language.clone(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: handler.into(),
                name: name.to_owned(),
            },
            minf: Minf {
                vmhd,
                smhd,
                dinf: Dinf {
                    dref: Dref {
                        entries: vec![DrefEntry::Url(Url::default())],
                    },
                },
                stbl: Stbl {
                    stsd: Stsd {
                        codecs: vec![sample_entry(track, width, height)?],
                    },
                    stco: Some(Stco::default()),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        ..Default::default()
    })
}

fn sample_entry(track: &Track, width: u16, height: u16) -> Result<Codec, CmafError> {
    let encode_error = |what| {
        move |source| CmafError::Encode {
            track: track.id,
            what,
            source,
        }
    };
    let visual = Visual {
        data_reference_index: 1,
        width,
        height,
        ..Default::default()
    };
    let audio = |channels: u16, rate: u32| Audio {
        data_reference_index: 1,
        channel_count: channels,
        sample_size: 16,
        // ISO/IEC 14496-12 §12.2.3: 16.16 rate; rates above 65535 Hz do not fit and are written as 0.
        sample_rate: FixedPoint::from(u16::try_from(rate).unwrap_or(0)),
    };
    Ok(match &track.codec {
        CodecConfig::H264(config) => {
            let record = config.to_record();
            let avcc = Avcc::decode_body(&mut record.as_slice()).map_err(encode_error("avcC"))?;
            Avc1 {
                visual,
                avcc,
                ..Default::default()
            }
            .into()
        }
        CodecConfig::H265(config) => {
            let record = config.to_record();
            let hvcc = Hvcc::decode_body(&mut record.as_slice()).map_err(encode_error("hvcC"))?;
            Hvc1 {
                visual,
                hvcc,
                ..Default::default()
            }
            .into()
        }
        CodecConfig::Aac(config) => {
            let channels = match config.channel_count() {
                0 => 2,
                n => n,
            };
            Mp4a {
                audio: audio(channels, config.output_sample_rate()),
                esds: Esds {
                    es_desc: EsDescriptor {
                        es_id: u16::try_from(track.id).unwrap_or(0),
                        dec_config: DecoderConfig {
                            object_type_indication: OTI_MPEG4_AUDIO,
                            stream_type: STREAM_TYPE_AUDIO,
                            dec_specific: Some(DecoderSpecific {
                                profile: config.object_type,
                                freq_index: config.sampling_frequency_index.unwrap_or(0x0f),
                                chan_conf: config.channel_config,
                                raw: config.raw.to_vec(),
                            }),
                            ..Default::default()
                        },
                        sl_config: SLConfig::default(),
                        ..Default::default()
                    },
                },
                btrt: None,
                taic: None,
            }
            .into()
        }
        CodecConfig::Opus(config) => {
            let record = config.to_dops();
            let dops = Dops::decode_body(&mut record.as_slice()).map_err(encode_error("dOps"))?;
            Opus {
                // "Opus in ISOBMFF" §4.3.1: samplerate is 48000 and samplesize 16.
                audio: audio(
                    u16::from(config.channels),
                    crate::codec::opus::OPUS_SAMPLE_RATE,
                ),
                dops,
                btrt: None,
            }
            .into()
        }
    })
}
