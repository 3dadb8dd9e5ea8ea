use std::fmt;

/// Why the RTMP byte stream from a peer cannot be processed.
///
/// "Need more bytes" is never an error: decoders return `Ok(None)` (or
/// simply wait) until the rest of a chunk or handshake packet arrives.
///
/// `offset` is a byte position. For handshake and chunk errors it counts from
/// the first byte the peer sent; for errors inside a message body (the path
/// then starts with the message, e.g. `command (csid 3, stream 0) > amf0 >
/// object > key`) it counts from the first byte of that body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RtmpError {
    /// The input violates the specification; more bytes will not help.
    #[error("{path}: invalid at byte {offset}: {reason}")]
    Invalid {
        offset: u64,
        path: Path,
        reason: String,
    },
    /// A length or count read from the input exceeds a configured cap.
    #[error("{path}: {what} {value} at byte {offset} exceeds the limit of {max}")]
    LimitExceeded {
        offset: u64,
        path: Path,
        what: &'static str,
        value: u64,
        max: u64,
    },
    /// C0 asks for a protocol version other than 3 (RTMP 1.0 §5.2.2).
    #[error("handshake > C0: version {version} at byte 0 is not supported{}", if *.version == 6 { " (RTMPE encryption)" } else { "" })]
    UnsupportedVersion { version: u8 },
    /// `accept_publish`/`reject_publish` named a request that is not pending.
    #[error("no pending publish request {request_id}")]
    UnknownRequest { request_id: u64 },
}

impl RtmpError {
    pub(crate) fn invalid(offset: u64, path: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            offset,
            path: Path::from(path),
            reason: reason.into(),
        }
    }

    pub(crate) fn limit(
        offset: u64,
        path: &'static str,
        what: &'static str,
        value: u64,
        max: u64,
    ) -> Self {
        Self::LimitExceeded {
            offset,
            path: Path::from(path),
            what,
            value,
            max,
        }
    }

    /// Prefixes the context path with an outer element (`outer > inner`).
    pub(crate) fn within(mut self, outer: impl fmt::Display) -> Self {
        if let Self::Invalid { path, .. } | Self::LimitExceeded { path, .. } = &mut self {
            path.0 = format!("{outer} > {}", path.0);
        }
        self
    }

    /// Adds `base` to the byte offset (an error found inside a sub-slice).
    pub(crate) fn shifted(mut self, base: u64) -> Self {
        if let Self::Invalid { offset, .. } | Self::LimitExceeded { offset, .. } = &mut self {
            *offset = offset.saturating_add(base);
        }
        self
    }

    /// The byte position the error refers to, when it has one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Self::Invalid { offset, .. } | Self::LimitExceeded { offset, .. } => Some(*offset),
            Self::UnsupportedVersion { .. } => Some(0),
            Self::UnknownRequest { .. } => None,
        }
    }

    /// The context path, e.g. `chunk header > extended timestamp`.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Invalid { path, .. } | Self::LimitExceeded { path, .. } => Some(&path.0),
            Self::UnsupportedVersion { .. } => Some("handshake > C0"),
            Self::UnknownRequest { .. } => None,
        }
    }
}

/// Where in the protocol structure an error was found, outermost first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path(String);

impl From<&str> for Path {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A cursor over one complete, untrusted buffer whose reads never panic.
/// Running off the end is [`RtmpError::Invalid`]: callers only parse
/// buffers that are already complete (a reassembled message, a tag body).
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub(crate) fn pos(&self) -> u64 {
        self.pos as u64
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn invalid(&self, path: &'static str, reason: impl Into<String>) -> RtmpError {
        RtmpError::invalid(self.pos(), path, reason)
    }

    pub(crate) fn bytes(&mut self, n: usize, path: &'static str) -> Result<&'a [u8], RtmpError> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.data.get(self.pos..end))
            .ok_or_else(|| {
                self.invalid(
                    path,
                    format!("needs {n} bytes, the buffer has {} left", self.remaining()),
                )
            })?;
        self.pos += n;
        Ok(slice)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        path: &'static str,
    ) -> Result<[u8; N], RtmpError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, path)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, path: &'static str) -> Result<u8, RtmpError> {
        Ok(self.array::<1>(path)?[0])
    }

    pub(crate) fn u16_be(&mut self, path: &'static str) -> Result<u16, RtmpError> {
        Ok(u16::from_be_bytes(self.array(path)?))
    }

    pub(crate) fn u24_be(&mut self, path: &'static str) -> Result<u32, RtmpError> {
        let [a, b, c] = self.array(path)?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    pub(crate) fn u32_be(&mut self, path: &'static str) -> Result<u32, RtmpError> {
        Ok(u32::from_be_bytes(self.array(path)?))
    }
}
