//! Typed RTMP messages (RTMP 1.0 §5.4 protocol control, §6.2 user control,
//! §7.1 command, data, audio, video and aggregate messages).
//!
//! [`Message::decode`] turns a reassembled message body into a value;
//! [`Message::encode`] gives the type id and body to hand to the chunk
//! encoder. Unknown type ids decode to [`Message::Unknown`] so that a
//! session can ignore them.

use bytes::{BufMut, Bytes};

use super::amf0::{self, Amf0Value};
use super::chunk::validate_chunk_size;
use super::error::{Reader, RtmpError};

/// Message type ids (RTMP 1.0 §5.4, §7.1).
pub mod type_id {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// The limit type of Set Peer Bandwidth (RTMP 1.0 §5.4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BandwidthLimit {
    Hard,
    Soft,
    Dynamic,
}

/// User control events (RTMP 1.0 §6.2, §7.1.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserControl {
    StreamBegin { stream_id: u32 },
    StreamEof { stream_id: u32 },
    StreamDry { stream_id: u32 },
    SetBufferLength { stream_id: u32, buffer_ms: u32 },
    StreamIsRecorded { stream_id: u32 },
    PingRequest { timestamp: u32 },
    PingResponse { timestamp: u32 },
    Other { event_type: u16, data: Bytes },
}

/// A command: name, transaction id, command object, then arguments
/// (RTMP 1.0 §7.1.1).
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    pub name: String,
    pub transaction_id: f64,
    /// The command object, `Null` when the command has none.
    pub object: Amf0Value,
    pub args: Vec<Amf0Value>,
}

impl Command {
    pub fn new(name: &str, transaction_id: f64, object: Amf0Value, args: Vec<Amf0Value>) -> Self {
        Self {
            name: name.to_owned(),
            transaction_id,
            object,
            args,
        }
    }
}

/// One RTMP message body, typed.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    SetChunkSize(u32),
    Abort {
        csid: u32,
    },
    Acknowledgement {
        sequence: u32,
    },
    UserControl(UserControl),
    WindowAckSize(u32),
    SetPeerBandwidth {
        size: u32,
        limit: BandwidthLimit,
    },
    /// An FLV audio tag body.
    Audio(Bytes),
    /// An FLV video tag body.
    Video(Bytes),
    /// A data message (type 18, or 15 with its AMF3 format byte removed):
    /// `@setDataFrame`, `onMetaData`, …
    Data(Vec<Amf0Value>),
    /// A command message (type 20, or 17 with its format byte removed).
    Command(Command),
    /// FLV tags back to back (RTMP 1.0 §7.1.6); see [`super::flv::split_aggregate`].
    Aggregate(Bytes),
    /// Any other type id (shared objects included); sessions ignore these.
    Unknown {
        type_id: u8,
        payload: Bytes,
    },
}

impl Message {
    /// Decodes a complete message body. Errors carry offsets within `payload`.
    pub fn decode(type_id: u8, payload: Bytes) -> Result<Self, RtmpError> {
        let mut r = Reader::new(&payload);
        Ok(match type_id {
            type_id::SET_CHUNK_SIZE => {
                let size = r.u32_be("set chunk size")?;
                // RTMP 1.0 §5.4.1: "The first bit of the payload MUST be zero."
                validate_chunk_size(size)
                    .map(Self::SetChunkSize)
                    .map_err(|reason| RtmpError::invalid(0, "set chunk size", reason))?
            }
            type_id::ABORT => Self::Abort {
                csid: r.u32_be("abort")?,
            },
            type_id::ACKNOWLEDGEMENT => Self::Acknowledgement {
                sequence: r.u32_be("acknowledgement")?,
            },
            type_id::WINDOW_ACK_SIZE => {
                Self::WindowAckSize(r.u32_be("window acknowledgement size")?)
            }
            type_id::SET_PEER_BANDWIDTH => {
                let size = r.u32_be("set peer bandwidth")?;
                let limit = match r.u8("set peer bandwidth > limit type")? {
                    0 => BandwidthLimit::Hard,
                    1 => BandwidthLimit::Soft,
                    2 => BandwidthLimit::Dynamic,
                    other => {
                        return Err(RtmpError::invalid(
                            4,
                            "set peer bandwidth > limit type",
                            format!("limit type {other}"),
                        ));
                    }
                };
                Self::SetPeerBandwidth { size, limit }
            }
            type_id::USER_CONTROL => Self::UserControl(decode_user_control(&mut r)?),
            type_id::AUDIO => Self::Audio(payload),
            type_id::VIDEO => Self::Video(payload),
            type_id::AGGREGATE => Self::Aggregate(payload),
            type_id::DATA_AMF0 => {
                Self::Data(amf0::decode_all(&payload).map_err(|e| e.within("data"))?)
            }
            type_id::COMMAND_AMF0 => Self::Command(decode_command(&payload)?),
            // Type 15/17 bodies start with a format byte; 0 means the values
            // are AMF0 (what Flash Player sends with objectEncoding 3).
            type_id::DATA_AMF3 | type_id::COMMAND_AMF3 => {
                match r.u8("amf3 format selector")? {
                    0 => {}
                    other => {
                        return Err(RtmpError::invalid(
                            0,
                            "amf3 format selector",
                            format!("format {other}; only AMF0 values are supported"),
                        ));
                    }
                }
                let body = r.rest();
                if type_id == type_id::DATA_AMF3 {
                    Self::Data(amf0::decode_all(body).map_err(|e| e.shifted(1).within("data"))?)
                } else {
                    Self::Command(decode_command(body).map_err(|e| e.shifted(1))?)
                }
            }
            other => Self::Unknown {
                type_id: other,
                payload,
            },
        })
    }

    /// The type id to send this message with (AMF0 for data and commands).
    pub fn type_id(&self) -> u8 {
        match self {
            Self::SetChunkSize(_) => type_id::SET_CHUNK_SIZE,
            Self::Abort { .. } => type_id::ABORT,
            Self::Acknowledgement { .. } => type_id::ACKNOWLEDGEMENT,
            Self::UserControl(_) => type_id::USER_CONTROL,
            Self::WindowAckSize(_) => type_id::WINDOW_ACK_SIZE,
            Self::SetPeerBandwidth { .. } => type_id::SET_PEER_BANDWIDTH,
            Self::Audio(_) => type_id::AUDIO,
            Self::Video(_) => type_id::VIDEO,
            Self::Data(_) => type_id::DATA_AMF0,
            Self::Command(_) => type_id::COMMAND_AMF0,
            Self::Aggregate(_) => type_id::AGGREGATE,
            Self::Unknown { type_id, .. } => *type_id,
        }
    }

    /// The message body.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::new();
        match self {
            Self::SetChunkSize(size) => out.put_u32(*size & 0x7fff_ffff),
            Self::Abort { csid } => out.put_u32(*csid),
            Self::Acknowledgement { sequence } => out.put_u32(*sequence),
            Self::WindowAckSize(size) => out.put_u32(*size),
            Self::SetPeerBandwidth { size, limit } => {
                out.put_u32(*size);
                out.put_u8(match limit {
                    BandwidthLimit::Hard => 0,
                    BandwidthLimit::Soft => 1,
                    BandwidthLimit::Dynamic => 2,
                });
            }
            Self::UserControl(event) => encode_user_control(event, &mut out),
            Self::Audio(b)
            | Self::Video(b)
            | Self::Aggregate(b)
            | Self::Unknown { payload: b, .. } => return b.clone(),
            Self::Data(values) => amf0::encode_all(values, &mut out),
            Self::Command(c) => {
                amf0::encode(&Amf0Value::String(c.name.clone()), &mut out);
                amf0::encode(&Amf0Value::Number(c.transaction_id), &mut out);
                amf0::encode(&c.object, &mut out);
                amf0::encode_all(&c.args, &mut out);
            }
        }
        Bytes::from(out)
    }
}

fn decode_command(body: &[u8]) -> Result<Command, RtmpError> {
    let mut values = amf0::decode_all(body)
        .map_err(|e| e.within("command"))?
        .into_iter();
    let name = match values.next() {
        Some(Amf0Value::String(name)) => name,
        other => {
            return Err(RtmpError::invalid(
                0,
                "command > name",
                format!("expected a string, found {other:?}"),
            ));
        }
    };
    // Policy: a missing transaction id or command object (seen from minimal
    // test clients on `publish`) reads as 0 / null.
    let transaction_id = match values.next() {
        Some(Amf0Value::Number(n)) => n,
        _ => 0.0,
    };
    let object = values.next().unwrap_or(Amf0Value::Null);
    Ok(Command {
        name,
        transaction_id,
        object,
        args: values.collect(),
    })
}

fn decode_user_control(r: &mut Reader<'_>) -> Result<UserControl, RtmpError> {
    let event_type = r.u16_be("user control > event type")?;
    let path = "user control > event data";
    Ok(match event_type {
        0 => UserControl::StreamBegin {
            stream_id: r.u32_be(path)?,
        },
        1 => UserControl::StreamEof {
            stream_id: r.u32_be(path)?,
        },
        2 => UserControl::StreamDry {
            stream_id: r.u32_be(path)?,
        },
        3 => UserControl::SetBufferLength {
            stream_id: r.u32_be(path)?,
            buffer_ms: r.u32_be(path)?,
        },
        4 => UserControl::StreamIsRecorded {
            stream_id: r.u32_be(path)?,
        },
        6 => UserControl::PingRequest {
            timestamp: r.u32_be(path)?,
        },
        7 => UserControl::PingResponse {
            timestamp: r.u32_be(path)?,
        },
        other => UserControl::Other {
            event_type: other,
            data: Bytes::copy_from_slice(r.rest()),
        },
    })
}

fn encode_user_control(event: &UserControl, out: &mut Vec<u8>) {
    let (event_type, a, b) = match event {
        UserControl::StreamBegin { stream_id } => (0, *stream_id, None),
        UserControl::StreamEof { stream_id } => (1, *stream_id, None),
        UserControl::StreamDry { stream_id } => (2, *stream_id, None),
        UserControl::SetBufferLength {
            stream_id,
            buffer_ms,
        } => (3, *stream_id, Some(*buffer_ms)),
        UserControl::StreamIsRecorded { stream_id } => (4, *stream_id, None),
        UserControl::PingRequest { timestamp } => (6, *timestamp, None),
        UserControl::PingResponse { timestamp } => (7, *timestamp, None),
        UserControl::Other { event_type, data } => {
            out.put_u16(*event_type);
            out.put_slice(data);
            return;
        }
    };
    out.put_u16(event_type);
    out.put_u32(a);
    if let Some(b) = b {
        out.put_u32(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: Message) {
        let decoded = Message::decode(m.type_id(), m.encode()).unwrap();
        assert_eq!(decoded, m);
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(Message::SetChunkSize(4096));
        round_trip(Message::Abort { csid: 4 });
        round_trip(Message::Acknowledgement {
            sequence: 2_500_000,
        });
        round_trip(Message::WindowAckSize(2_500_000));
        round_trip(Message::SetPeerBandwidth {
            size: 2_500_000,
            limit: BandwidthLimit::Dynamic,
        });
        for event in [
            UserControl::StreamBegin { stream_id: 1 },
            UserControl::StreamEof { stream_id: 1 },
            UserControl::StreamDry { stream_id: 1 },
            UserControl::SetBufferLength {
                stream_id: 1,
                buffer_ms: 3000,
            },
            UserControl::StreamIsRecorded { stream_id: 1 },
            UserControl::PingRequest { timestamp: 9 },
            UserControl::PingResponse { timestamp: 9 },
            UserControl::Other {
                event_type: 31,
                data: Bytes::from_static(&[1, 2]),
            },
        ] {
            round_trip(Message::UserControl(event));
        }
        round_trip(Message::Video(Bytes::from_static(&[0x17, 0, 0, 0, 0])));
        round_trip(Message::Audio(Bytes::from_static(&[0xaf, 1])));
        round_trip(Message::Data(vec![
            Amf0Value::string("@setDataFrame"),
            Amf0Value::string("onMetaData"),
            Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(320.0))]),
        ]));
        round_trip(Message::Command(Command::new(
            "publish",
            5.0,
            Amf0Value::Null,
            vec![Amf0Value::string("key"), Amf0Value::string("live")],
        )));
        round_trip(Message::Unknown {
            type_id: 19,
            payload: Bytes::from_static(b"so"),
        });
    }

    #[test]
    fn set_chunk_size_rejects_zero_and_top_bit() {
        for bad in [0u32, 1 << 31, u32::MAX] {
            let err = Message::decode(
                type_id::SET_CHUNK_SIZE,
                Bytes::copy_from_slice(&bad.to_be_bytes()),
            )
            .unwrap_err();
            assert_eq!(err.path(), Some("set chunk size"));
        }
    }

    #[test]
    fn amf3_command_with_amf0_body() {
        let body = Message::Command(Command::new("connect", 1.0, Amf0Value::Null, vec![])).encode();
        let mut amf3 = vec![0u8];
        amf3.extend_from_slice(&body);
        let m = Message::decode(type_id::COMMAND_AMF3, Bytes::from(amf3)).unwrap();
        assert!(matches!(m, Message::Command(c) if c.name == "connect"));
    }

    #[test]
    fn truncated_control_messages_are_invalid() {
        for t in [1, 2, 3, 4, 5, 6] {
            assert!(
                Message::decode(t, Bytes::from_static(&[0, 0])).is_err(),
                "type {t}"
            );
        }
        assert!(Message::decode(type_id::COMMAND_AMF0, Bytes::from_static(&[0x05])).is_err());
    }
}
