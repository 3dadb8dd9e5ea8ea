//! AMF0 (Action Message Format version 0), the encoding of RTMP command and
//! data messages.
//!
//! [`decode_all`] reads every value of one complete message body; [`encode`]
//! writes one value. Decoding is bounded: nesting deeper than [`MAX_DEPTH`]
//! or more than [`MAX_VALUES`] values in one body is refused, and no count or
//! length read from the input allocates more than the bytes that remain.
//!
//! Supported markers (AMF0 spec §2): number, boolean, string, object, null,
//! undefined, ECMA array, object end, strict array, date, long string, XML
//! document and typed object. References (§2.9), movieclip and recordset
//! (reserved) and the AVM+ switch (§3.1, AMF3) are refused.

use super::error::{Reader, RtmpError};

/// Deepest nesting of objects and arrays a body may use.
pub const MAX_DEPTH: usize = 32;
/// Most values (counting nested ones) one body may hold; each decoded value
/// costs far more memory than its one-byte minimum on the wire.
pub const MAX_VALUES: usize = 65_536;

mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const MOVIECLIP: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const REFERENCE: u8 = 0x07;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0a;
    pub const DATE: u8 = 0x0b;
    pub const LONG_STRING: u8 = 0x0c;
    pub const UNSUPPORTED: u8 = 0x0d;
    pub const RECORDSET: u8 = 0x0e;
    pub const XML_DOCUMENT: u8 = 0x0f;
    pub const TYPED_OBJECT: u8 = 0x10;
    pub const AVMPLUS: u8 = 0x11;
}

/// Ordered key–value pairs of an object or ECMA array (order is kept so that
/// metadata round-trips byte for byte).
pub type Properties = Vec<(String, Amf0Value)>;

/// One AMF0 value.
#[derive(Clone, Debug, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    /// A string or long string; encoded as a long string when longer than
    /// 65 535 bytes.
    String(String),
    Object(Properties),
    Null,
    Undefined,
    /// An associative array (`onMetaData` uses one).
    EcmaArray(Properties),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the Unix epoch; the time zone field is reserved
    /// and should be 0 (AMF0 §2.13).
    Date {
        millis: f64,
        time_zone: i16,
    },
    XmlDocument(String),
    TypedObject {
        class_name: String,
        properties: Properties,
    },
}

impl Amf0Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Self::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The properties of an object, ECMA array or typed object.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Self::Object(p) | Self::EcmaArray(p) | Self::TypedObject { properties: p, .. } => {
                Some(p)
            }
            _ => None,
        }
    }

    /// The first property named `key` of an object, ECMA array or typed object.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    /// Builds an object from `(key, value)` pairs.
    pub fn object<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Amf0Value)>) -> Self {
        Self::Object(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn string(s: impl Into<String>) -> Self {
        Self::String(s.into())
    }
}

/// Decodes every value of a complete body, in order.
pub fn decode_all(data: &[u8]) -> Result<Vec<Amf0Value>, RtmpError> {
    let mut decoder = Decoder {
        r: Reader::new(data),
        values: 0,
    };
    let mut out = Vec::new();
    while decoder.r.remaining() > 0 {
        let value = decoder
            .value(0)
            .map_err(|e| e.within(format_args!("amf0 value {}", out.len())))?;
        out.push(value);
    }
    Ok(out)
}

/// Writes one value.
pub fn encode(value: &Amf0Value, out: &mut Vec<u8>) {
    match value {
        Amf0Value::Number(n) => {
            out.push(marker::NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Amf0Value::Boolean(b) => out.extend_from_slice(&[marker::BOOLEAN, u8::from(*b)]),
        Amf0Value::String(s) => match u16::try_from(s.len()) {
            Ok(_) => {
                out.push(marker::STRING);
                write_utf8(s, out);
            }
            Err(_) => {
                out.push(marker::LONG_STRING);
                write_utf8_long(s, out);
            }
        },
        Amf0Value::Object(props) => {
            out.push(marker::OBJECT);
            write_properties(props, out);
        }
        Amf0Value::Null => out.push(marker::NULL),
        Amf0Value::Undefined => out.push(marker::UNDEFINED),
        Amf0Value::EcmaArray(props) => {
            out.push(marker::ECMA_ARRAY);
            out.extend_from_slice(&saturating_u32(props.len()).to_be_bytes());
            write_properties(props, out);
        }
        Amf0Value::StrictArray(values) => {
            out.push(marker::STRICT_ARRAY);
            out.extend_from_slice(&saturating_u32(values.len()).to_be_bytes());
            for v in values {
                encode(v, out);
            }
        }
        Amf0Value::Date { millis, time_zone } => {
            out.push(marker::DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&time_zone.to_be_bytes());
        }
        Amf0Value::XmlDocument(s) => {
            out.push(marker::XML_DOCUMENT);
            write_utf8_long(s, out);
        }
        Amf0Value::TypedObject {
            class_name,
            properties,
        } => {
            out.push(marker::TYPED_OBJECT);
            write_utf8(class_name, out);
            write_properties(properties, out);
        }
    }
}

/// Writes values one after another (a command or data message body).
pub fn encode_all<'a>(values: impl IntoIterator<Item = &'a Amf0Value>, out: &mut Vec<u8>) {
    for v in values {
        encode(v, out);
    }
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// UTF-8 with a 16-bit length (AMF0 §1.3 `UTF-8`); longer text is cut at
/// 65 535 bytes, which only our own over-long keys could reach.
fn write_utf8(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes.get(..usize::from(len)).unwrap_or(bytes));
}

fn write_utf8_long(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    let len = saturating_u32(bytes.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes.get(..len as usize).unwrap_or(bytes));
}

fn write_properties(props: &[(String, Amf0Value)], out: &mut Vec<u8>) {
    for (k, v) in props {
        write_utf8(k, out);
        encode(v, out);
    }
    out.extend_from_slice(&[0, 0, marker::OBJECT_END]);
}

struct Decoder<'a> {
    r: Reader<'a>,
    values: usize,
}

impl Decoder<'_> {
    fn value(&mut self, depth: usize) -> Result<Amf0Value, RtmpError> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(RtmpError::limit(
                self.r.pos(),
                "amf0",
                "value count",
                self.values as u64,
                MAX_VALUES as u64,
            ));
        }
        let start = self.r.pos();
        let m = self.r.u8("marker")?;
        Ok(match m {
            marker::NUMBER => Amf0Value::Number(f64::from_be_bytes(self.r.array("number")?)),
            marker::BOOLEAN => Amf0Value::Boolean(self.r.u8("boolean")? != 0),
            marker::STRING => Amf0Value::String(self.utf8().map_err(|e| e.within("string"))?),
            marker::LONG_STRING => {
                Amf0Value::String(self.utf8_long().map_err(|e| e.within("long string"))?)
            }
            marker::XML_DOCUMENT => {
                Amf0Value::XmlDocument(self.utf8_long().map_err(|e| e.within("xml document"))?)
            }
            marker::OBJECT => {
                self.check_depth(depth, start)?;
                Amf0Value::Object(self.properties(depth, 0).map_err(|e| e.within("object"))?)
            }
            marker::TYPED_OBJECT => {
                self.check_depth(depth, start)?;
                let class_name = self
                    .utf8()
                    .map_err(|e| e.within("typed object > class name"))?;
                let properties = self
                    .properties(depth, 0)
                    .map_err(|e| e.within("typed object"))?;
                Amf0Value::TypedObject {
                    class_name,
                    properties,
                }
            }
            marker::ECMA_ARRAY => {
                self.check_depth(depth, start)?;
                let count = self.r.u32_be("ecma array > count")?;
                Amf0Value::EcmaArray(
                    self.properties(depth, count)
                        .map_err(|e| e.within("ecma array"))?,
                )
            }
            marker::STRICT_ARRAY => {
                self.check_depth(depth, start)?;
                let count = self.r.u32_be("strict array > count")?;
                // Every value takes at least its marker byte.
                if count as usize > self.r.remaining() {
                    return Err(RtmpError::limit(
                        self.r.pos(),
                        "strict array > count",
                        "count",
                        u64::from(count),
                        self.r.remaining() as u64,
                    ));
                }
                let mut values = Vec::with_capacity(count as usize);
                for i in 0..count {
                    let v = self
                        .value(depth + 1)
                        .map_err(|e| e.within(format_args!("strict array > item {i}")))?;
                    values.push(v);
                }
                Amf0Value::StrictArray(values)
            }
            marker::DATE => {
                let millis = f64::from_be_bytes(self.r.array("date")?);
                let time_zone = i16::from_be_bytes(self.r.array("date > time zone")?);
                Amf0Value::Date { millis, time_zone }
            }
            marker::NULL => Amf0Value::Null,
            marker::UNDEFINED | marker::UNSUPPORTED => Amf0Value::Undefined,
            marker::OBJECT_END => {
                return Err(RtmpError::invalid(
                    start,
                    "marker",
                    "object end outside an object",
                ));
            }
            marker::REFERENCE => {
                return Err(RtmpError::invalid(
                    start,
                    "marker",
                    "references are not supported",
                ));
            }
            marker::MOVIECLIP | marker::RECORDSET => {
                return Err(RtmpError::invalid(
                    start,
                    "marker",
                    format!("reserved marker {m:#04x}"),
                ));
            }
            marker::AVMPLUS => {
                return Err(RtmpError::invalid(
                    start,
                    "marker",
                    "AVM+ (AMF3) values are not supported",
                ));
            }
            other => {
                return Err(RtmpError::invalid(
                    start,
                    "marker",
                    format!("unknown marker {other:#04x}"),
                ));
            }
        })
    }

    fn check_depth(&self, depth: usize, start: u64) -> Result<(), RtmpError> {
        if depth >= MAX_DEPTH {
            return Err(RtmpError::limit(
                start,
                "amf0",
                "nesting depth",
                depth as u64 + 1,
                MAX_DEPTH as u64,
            ));
        }
        Ok(())
    }

    /// Key–value pairs up to the empty key and object-end marker.
    ///
    /// `ecma_count` is the ECMA array's associative count, a hint only.
    /// Policy: some muxers (old Flash Media Live Encoder builds) end an ECMA
    /// array at the end of the body without the end marker; that is
    /// accepted once at least `ecma_count` pairs have been read.
    fn properties(&mut self, depth: usize, ecma_count: u32) -> Result<Properties, RtmpError> {
        let mut props = Properties::new();
        loop {
            if self.r.remaining() == 0 && ecma_count > 0 && props.len() >= ecma_count as usize {
                return Ok(props);
            }
            let key = self.utf8().map_err(|e| e.within("key"))?;
            if key.is_empty() {
                let end_pos = self.r.pos();
                return match self.r.u8("object end")? {
                    marker::OBJECT_END => Ok(props),
                    other => Err(RtmpError::invalid(
                        end_pos,
                        "object end",
                        format!("empty key followed by marker {other:#04x}, not object end"),
                    )),
                };
            }
            let value = self
                .value(depth + 1)
                .map_err(|e| e.within(format_args!("value of {key:?}")))?;
            props.push((key, value));
        }
    }

    fn utf8(&mut self) -> Result<String, RtmpError> {
        let len = self.r.u16_be("length")?;
        let bytes = self.r.bytes(usize::from(len), "bytes")?;
        Ok(text(bytes))
    }

    fn utf8_long(&mut self) -> Result<String, RtmpError> {
        let len = self.r.u32_be("length")?;
        if len as usize > self.r.remaining() {
            return Err(self.r.invalid(
                "length",
                format!(
                    "{len} bytes announced, {} left in the message",
                    self.r.remaining()
                ),
            ));
        }
        let bytes = self.r.bytes(len as usize, "bytes")?;
        Ok(text(bytes))
    }
}

/// AMF0 strings are UTF-8 (§1.3). Policy: encoders that write Latin-1 into
/// metadata (seen in `encoder`/`title` fields) get replacement characters
/// instead of a dropped session.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(v: &Amf0Value) {
        let mut buf = Vec::new();
        encode(v, &mut buf);
        assert_eq!(decode_all(&buf).unwrap(), vec![v.clone()]);
    }

    #[test]
    fn every_marker_round_trips() {
        let values = [
            Amf0Value::Number(1935.5),
            Amf0Value::Boolean(true),
            Amf0Value::string("live"),
            Amf0Value::String("x".repeat(70_000)),
            Amf0Value::Null,
            Amf0Value::Undefined,
            Amf0Value::object([
                ("app", Amf0Value::string("live")),
                ("n", Amf0Value::Number(3.0)),
            ]),
            Amf0Value::EcmaArray(vec![("duration".into(), Amf0Value::Number(0.0))]),
            Amf0Value::StrictArray(vec![Amf0Value::Null, Amf0Value::Boolean(false)]),
            Amf0Value::Date {
                millis: 1.7e12,
                time_zone: 0,
            },
            Amf0Value::XmlDocument("<a/>".into()),
            Amf0Value::TypedObject {
                class_name: "flash.Thing".into(),
                properties: vec![("k".into(), Amf0Value::Null)],
            },
        ];
        for v in &values {
            round_trip(v);
        }
    }

    #[test]
    fn long_strings_use_the_long_marker() {
        let mut buf = Vec::new();
        encode(&Amf0Value::String("x".repeat(70_000)), &mut buf);
        assert_eq!(buf[0], marker::LONG_STRING);
    }

    #[test]
    fn connect_command_from_ffmpeg() {
        // ffmpeg 5.1 `connect` body, first values: "connect", 1.0, {app: "live", type: "nonprivate"...}
        let mut body = Vec::new();
        encode_all(
            &[
                Amf0Value::string("connect"),
                Amf0Value::Number(1.0),
                Amf0Value::object([
                    ("app", Amf0Value::string("live")),
                    ("type", Amf0Value::string("nonprivate")),
                    (
                        "flashVer",
                        Amf0Value::string("FMLE/3.0 (compatible; Lavf59.27.100)"),
                    ),
                    ("tcUrl", Amf0Value::string("rtmp://127.0.0.1:1935/live")),
                ]),
            ],
            &mut body,
        );
        let values = decode_all(&body).unwrap();
        assert_eq!(
            values[2].get("tcUrl").and_then(Amf0Value::as_str),
            Some("rtmp://127.0.0.1:1935/live")
        );
    }

    #[test]
    fn string_longer_than_message_is_invalid() {
        let err = decode_all(&[marker::STRING, 0x00, 0x10, b'a', b'b']).unwrap_err();
        assert_eq!(err.path(), Some("amf0 value 0 > string > bytes"));
        let err = decode_all(&[marker::LONG_STRING, 0xff, 0xff, 0xff, 0xff, b'a']).unwrap_err();
        assert_eq!(err.path(), Some("amf0 value 0 > long string > length"));
        assert_eq!(err.offset(), Some(5));
    }

    #[test]
    fn nested_key_errors_name_the_path() {
        let body = [
            marker::OBJECT,
            0x00,
            0x03,
            b'a',
            b'p',
            b'p',
            marker::OBJECT,
            0x00,
            0x09,
            b'k',
        ];
        let err = decode_all(&body).unwrap_err();
        assert_eq!(
            err.path(),
            Some("amf0 value 0 > object > value of \"app\" > object > key > bytes")
        );
    }

    #[test]
    fn depth_and_counts_are_capped() {
        let deep = [marker::STRICT_ARRAY, 0, 0, 0, 1].repeat(MAX_DEPTH + 2);
        assert!(matches!(
            decode_all(&deep).unwrap_err(),
            RtmpError::LimitExceeded {
                what: "nesting depth",
                ..
            }
        ));
        let huge_count = [marker::STRICT_ARRAY, 0xff, 0xff, 0xff, 0xff, marker::NULL];
        assert!(matches!(
            decode_all(&huge_count).unwrap_err(),
            RtmpError::LimitExceeded { .. }
        ));
        let many_nulls = vec![marker::NULL; MAX_VALUES + 1];
        assert!(decode_all(&many_nulls).is_err());
    }

    #[test]
    fn ecma_array_without_end_marker_is_accepted() {
        let mut body = vec![marker::ECMA_ARRAY, 0, 0, 0, 1, 0, 1, b'w'];
        encode(&Amf0Value::Number(320.0), &mut body);
        let v = decode_all(&body).unwrap();
        assert_eq!(v[0].get("w"), Some(&Amf0Value::Number(320.0)));
    }

    #[test]
    fn stray_markers_are_invalid() {
        for m in [
            marker::OBJECT_END,
            marker::REFERENCE,
            marker::MOVIECLIP,
            marker::AVMPLUS,
            0x42,
        ] {
            assert!(decode_all(&[m, 0, 0]).is_err(), "marker {m:#x}");
        }
    }

    fn arb_value() -> impl Strategy<Value = Amf0Value> {
        let leaf = prop_oneof![
            (-1e15f64..1e15).prop_map(Amf0Value::Number),
            any::<bool>().prop_map(Amf0Value::Boolean),
            ".{0,12}".prop_map(Amf0Value::String),
            Just(Amf0Value::Null),
            Just(Amf0Value::Undefined),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(("[a-z]{1,6}", inner.clone()), 0..6)
                    .prop_map(Amf0Value::Object),
                prop::collection::vec(("[a-z]{1,6}", inner.clone()), 0..6)
                    .prop_map(Amf0Value::EcmaArray),
                prop::collection::vec(inner, 0..6).prop_map(Amf0Value::StrictArray),
            ]
        })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(values in prop::collection::vec(arb_value(), 0..5)) {
            let mut buf = Vec::new();
            encode_all(&values, &mut buf);
            prop_assert_eq!(decode_all(&buf).unwrap(), values);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_all(&data);
        }
    }
}
