//! Zigzag varints as the Kafka record format uses them (protobuf-style, little-endian groups).

use bytes::BufMut;

/// Longest valid encoding of a 32-bit varint.
pub(crate) const VARINT_BYTES_MAX: usize = 5;
/// Longest valid encoding of a 64-bit varlong.
pub(crate) const VARLONG_BYTES_MAX: usize = 10;

pub(crate) fn put_varint(out: &mut impl BufMut, value: i32) {
    put_unsigned(out, ((value << 1) ^ (value >> 31)) as u32 as u64);
}

pub(crate) fn put_varlong(out: &mut impl BufMut, value: i64) {
    put_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_unsigned(out: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// Bytes `put_varint` writes for `value`.
pub(crate) fn varint_len(value: i32) -> usize {
    unsigned_len(((value << 1) ^ (value >> 31)) as u32 as u64)
}

/// Bytes `put_varlong` writes for `value`.
pub(crate) fn varlong_len(value: i64) -> usize {
    unsigned_len(((value << 1) ^ (value >> 63)) as u64)
}

fn unsigned_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Decodes a zigzag varint from the front of `input`, returning it and the bytes it used.
pub(crate) fn get_varint(input: &[u8]) -> Option<(i32, usize)> {
    let (raw, used) = get_unsigned(input, VARINT_BYTES_MAX)?;
    let raw = u32::try_from(raw).ok()?;
    Some((((raw >> 1) as i32) ^ -((raw & 1) as i32), used))
}

/// Decodes a zigzag varlong from the front of `input`, returning it and the bytes it used.
pub(crate) fn get_varlong(input: &[u8]) -> Option<(i64, usize)> {
    let (raw, used) = get_unsigned(input, VARLONG_BYTES_MAX)?;
    Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), used))
}

fn get_unsigned(input: &[u8], bytes_max: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (index, byte) in input.iter().take(bytes_max).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, index + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_edges() {
        for value in [0, 1, -1, 63, -64, 64, i32::MAX, i32::MIN, 300, -300] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value));
            assert_eq!(get_varint(&out), Some((value, out.len())));
        }
        for value in [0, 1, -1, i64::MAX, i64::MIN, 1 << 40, -(1 << 40)] {
            let mut out = Vec::new();
            put_varlong(&mut out, value);
            assert_eq!(out.len(), varlong_len(value));
            assert_eq!(get_varlong(&out), Some((value, out.len())));
        }
    }

    #[test]
    fn rejects_unterminated_and_overlong() {
        assert_eq!(get_varint(&[0x80, 0x80]), None);
        assert_eq!(get_varint(&[0xff; 6]), None);
        assert_eq!(get_varlong(&[0xff; 11]), None);
        // Kafka's spec examples: zigzag 1 -> 2, -1 -> 1.
        assert_eq!(get_varint(&[0x02]), Some((1, 1)));
        assert_eq!(get_varint(&[0x01]), Some((-1, 1)));
    }
}
