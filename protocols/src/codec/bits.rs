//! Bit-level reading of H.264/H.265 RBSP: emulation-prevention removal,
//! fixed-width fields and Exp-Golomb codes (ITU-T H.264 §7.2, §9.1;
//! ITU-T H.265 §7.2, §9.2).
//!
//! Readers never panic: every read checks what is left and reports
//! [`CodecError::Truncated`] with the byte position in the RBSP.

use super::CodecError;

/// Longest Exp-Golomb prefix we accept: 31 leading zeros still fits `u32`.
const MAX_EXP_GOLOMB_ZEROS: u32 = 31;

/// Removes `emulation_prevention_three_byte`s: every `00 00 03` becomes `00 00`
/// (H.264 §7.4.1, H.265 §7.4.2).
pub fn nal_to_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &byte in nal {
        if zeros >= 2 && byte == 0x03 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

/// Reads an RBSP most-significant bit first.
#[derive(Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
    context: &'static str,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8], context: &'static str) -> Self {
        Self {
            data,
            bit: 0,
            context,
        }
    }

    /// Names the structure being read, for error messages ("sps > vui").
    pub fn set_context(&mut self, context: &'static str) {
        self.context = context;
    }

    pub fn byte_pos(&self) -> usize {
        self.bit / 8
    }

    pub fn bits_left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.bit)
    }

    fn truncated(&self) -> CodecError {
        CodecError::Truncated {
            pos: self.byte_pos(),
            context: self.context,
        }
    }

    /// An [`CodecError::Invalid`] at the current position.
    pub fn invalid(&self, reason: &'static str) -> CodecError {
        CodecError::Invalid {
            pos: self.byte_pos(),
            context: self.context,
            reason,
        }
    }

    pub fn read_bit(&mut self) -> Result<bool, CodecError> {
        let byte = *self
            .data
            .get(self.bit / 8)
            .ok_or_else(|| self.truncated())?;
        let value = (byte >> (7 - (self.bit % 8))) & 1;
        self.bit += 1;
        Ok(value == 1)
    }

    pub fn read_flag(&mut self) -> Result<bool, CodecError> {
        self.read_bit()
    }

    /// Reads `n <= 32` bits as an unsigned integer.
    pub fn read_bits(&mut self, n: u32) -> Result<u32, CodecError> {
        debug_assert!(n <= 32);
        if self.bits_left() < n as usize {
            return Err(self.truncated());
        }
        let mut value: u64 = 0;
        for _ in 0..n {
            value = (value << 1) | u64::from(self.read_bit()?);
        }
        u32::try_from(value).map_err(|_| self.invalid("field wider than 32 bits"))
    }

    pub fn read_u8(&mut self, n: u32) -> Result<u8, CodecError> {
        debug_assert!(n <= 8);
        u8::try_from(self.read_bits(n)?).map_err(|_| self.invalid("field wider than 8 bits"))
    }

    pub fn skip_bits(&mut self, n: usize) -> Result<(), CodecError> {
        if self.bits_left() < n {
            return Err(self.truncated());
        }
        self.bit += n;
        Ok(())
    }

    /// `ue(v)`: unsigned Exp-Golomb.
    pub fn read_ue(&mut self) -> Result<u32, CodecError> {
        let mut zeros = 0u32;
        while !self.read_bit()? {
            zeros += 1;
            if zeros > MAX_EXP_GOLOMB_ZEROS {
                return Err(self.invalid("exp-golomb code longer than 32 bits"));
            }
        }
        if zeros == 0 {
            return Ok(0);
        }
        let suffix = u64::from(self.read_bits(zeros)?);
        u32::try_from((1u64 << zeros) - 1 + suffix)
            .map_err(|_| self.invalid("exp-golomb value exceeds u32"))
    }

    /// `ue(v)` with an inclusive upper bound from the spec's semantics.
    pub fn read_ue_max(&mut self, max: u32, reason: &'static str) -> Result<u32, CodecError> {
        let value = self.read_ue()?;
        if value > max {
            return Err(self.invalid(reason));
        }
        Ok(value)
    }

    /// `se(v)`: signed Exp-Golomb.
    pub fn read_se(&mut self) -> Result<i32, CodecError> {
        let k = i64::from(self.read_ue()?);
        let value = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(value).map_err(|_| self.invalid("signed exp-golomb value exceeds i32"))
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    /// Writes bit fields and Exp-Golomb codes, for building synthetic parameter sets in tests.
    #[derive(Default)]
    pub struct BitWriter {
        bytes: Vec<u8>,
        bit: usize,
    }

    impl BitWriter {
        pub fn bit(&mut self, value: bool) -> &mut Self {
            if self.bit.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if value {
                let last = self.bytes.len() - 1;
                self.bytes[last] |= 0x80 >> (self.bit % 8);
            }
            self.bit += 1;
            self
        }

        pub fn bits(&mut self, n: u32, value: u64) -> &mut Self {
            for i in (0..n).rev() {
                self.bit((value >> i) & 1 == 1);
            }
            self
        }

        pub fn ue(&mut self, value: u32) -> &mut Self {
            let v = u64::from(value) + 1;
            let len = 64 - v.leading_zeros();
            self.bits(len - 1, 0).bits(len, v)
        }

        pub fn se(&mut self, value: i32) -> &mut Self {
            let k = if value > 0 {
                (2 * i64::from(value) - 1) as u32
            } else {
                (-2 * i64::from(value)) as u32
            };
            self.ue(k)
        }

        /// Appends `rbsp_trailing_bits` and returns the RBSP.
        pub fn finish(mut self) -> Vec<u8> {
            self.bit(true);
            while !self.bit.is_multiple_of(8) {
                self.bit(false);
            }
            self.bytes
        }
    }

    /// Inserts emulation-prevention bytes, turning an RBSP into a NAL payload.
    pub fn rbsp_to_nal(rbsp: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut zeros = 0;
        for &b in rbsp {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            out.push(b);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::{BitWriter, rbsp_to_nal};
    use super::*;

    #[test]
    fn exp_golomb_round_trip() {
        let values = [0u32, 1, 2, 3, 7, 8, 255, 65_535, u32::MAX - 1];
        let signed = [0i32, 1, -1, 2, -2, 1000, -1000, i32::MAX];
        let mut w = BitWriter::default();
        for v in values {
            w.ue(v);
        }
        for v in signed {
            w.se(v);
        }
        let data = w.finish();
        let mut r = BitReader::new(&data, "test");
        for v in values {
            assert_eq!(r.read_ue().unwrap(), v);
        }
        for v in signed {
            assert_eq!(r.read_se().unwrap(), v);
        }
    }

    #[test]
    fn truncation_is_not_invalid() {
        let mut r = BitReader::new(&[0x00], "x");
        assert!(matches!(
            r.read_ue(),
            Err(CodecError::Truncated { pos: 1, .. })
        ));
        let mut r = BitReader::new(&[0xff], "x");
        assert_eq!(r.read_bits(8).unwrap(), 0xff);
        assert!(matches!(r.read_bit(), Err(CodecError::Truncated { .. })));
    }

    #[test]
    fn overlong_exp_golomb_is_invalid() {
        let mut r = BitReader::new(&[0, 0, 0, 0, 0, 0x80], "x");
        assert!(matches!(r.read_ue(), Err(CodecError::Invalid { .. })));
    }

    #[test]
    fn emulation_prevention_round_trip() {
        let rbsp = [0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x03, 0x42, 0x00, 0x00];
        let nal = rbsp_to_nal(&rbsp);
        assert_eq!(nal, [0, 0, 3, 0, 1, 0, 0, 3, 3, 0x42, 0, 0]);
        assert_eq!(nal_to_rbsp(&nal), rbsp);
    }
}
