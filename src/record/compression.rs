//! Record compression as Kafka frames it: the records section of a batch (everything after the
//! 61-byte header) is compressed as one unit; the header stays plain and names the codec.
//!
//! | codec | framing |
//! | --- | --- |
//! | gzip | a gzip member (flate2) |
//! | snappy | xerial framing (`\x82SNAPPY\0`, then length-prefixed raw blocks), as the Java client writes it; raw snappy, as librdkafka may write it, is read too |
//! | lz4 | an LZ4 frame (lz4_flex), as Kafka's `KafkaLZ4BlockOutputStream` writes it |
//! | zstd | a zstd frame |
//!
//! Decompression is bounded: a batch that inflates beyond `bytes_max` is refused, so a small
//! hostile batch cannot exhaust memory.

use std::io::{Read, Write};

use super::{BatchError, Compression};

/// zstd level producers use unless told otherwise (Kafka's default is 3).
pub const ZSTD_LEVEL_DEFAULT: i32 = 3;
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// Size of the xerial framing header: magic, version, compatible version.
const XERIAL_HEADER_BYTES: usize = 16;

fn failed(codec: Compression, reason: impl std::fmt::Display) -> BatchError {
    BatchError::Codec {
        codec,
        reason: reason.to_string(),
    }
}

/// Compresses `records` with `codec` and appends the result to `out`.
pub fn compress(codec: Compression, records: &[u8], out: &mut Vec<u8>) -> Result<(), BatchError> {
    match codec {
        Compression::None => out.extend_from_slice(records),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            encoder.write_all(records).map_err(|e| failed(codec, e))?;
            encoder.finish().map_err(|e| failed(codec, e))?;
        }
        Compression::Snappy => {
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let block = snap::raw::Encoder::new()
                .compress_vec(records)
                .map_err(|e| failed(codec, e))?;
            out.extend_from_slice(&(block.len() as i32).to_be_bytes());
            out.extend_from_slice(&block);
        }
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(out);
            encoder.write_all(records).map_err(|e| failed(codec, e))?;
            encoder.finish().map_err(|e| failed(codec, e))?;
        }
        Compression::Zstd => {
            let compressed =
                zstd::bulk::compress(records, ZSTD_LEVEL_DEFAULT).map_err(|e| failed(codec, e))?;
            out.extend_from_slice(&compressed);
        }
    }
    Ok(())
}

/// Decompresses a records section, refusing output above `bytes_max`.
pub fn decompress(
    codec: Compression,
    data: &[u8],
    bytes_max: usize,
) -> Result<Vec<u8>, BatchError> {
    let bounded = |reader: &mut dyn Read| -> Result<Vec<u8>, BatchError> {
        let mut out = Vec::new();
        reader
            .take(bytes_max as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| failed(codec, e))?;
        if out.len() > bytes_max {
            return Err(failed(codec, format!("inflates beyond {bytes_max} bytes")));
        }
        Ok(out)
    };
    match codec {
        Compression::None => bounded(&mut &data[..]),
        Compression::Gzip => bounded(&mut flate2::read::GzDecoder::new(data)),
        Compression::Lz4 => bounded(&mut lz4_flex::frame::FrameDecoder::new(data)),
        Compression::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::new(data).map_err(|e| failed(codec, e))?;
            bounded(&mut decoder)
        }
        Compression::Snappy => {
            let raw = |block: &[u8], out: &mut Vec<u8>| -> Result<(), BatchError> {
                let length = snap::raw::decompress_len(block).map_err(|e| failed(codec, e))?;
                if out.len() + length > bytes_max {
                    return Err(failed(codec, format!("inflates beyond {bytes_max} bytes")));
                }
                let start = out.len();
                out.resize(start + length, 0);
                snap::raw::Decoder::new()
                    .decompress(block, &mut out[start..])
                    .map_err(|e| failed(codec, e))?;
                Ok(())
            };
            let mut out = Vec::new();
            if data.len() >= XERIAL_HEADER_BYTES && data.starts_with(XERIAL_MAGIC) {
                let mut rest = &data[XERIAL_HEADER_BYTES..];
                while !rest.is_empty() {
                    let (length, tail) = rest
                        .split_first_chunk::<4>()
                        .ok_or_else(|| failed(codec, "truncated xerial block length"))?;
                    let length = u32::from_be_bytes(*length) as usize;
                    let block = tail
                        .get(..length)
                        .ok_or_else(|| failed(codec, "truncated xerial block"))?;
                    raw(block, &mut out)?;
                    rest = &tail[length..];
                }
            } else {
                raw(data, &mut out)?;
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips_and_inflation_is_bounded() {
        let records: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 97).to_be_bytes())
            .collect();
        for codec in Compression::ALL {
            let mut compressed = Vec::new();
            compress(codec, &records, &mut compressed).unwrap();
            if codec != Compression::None {
                assert!(compressed.len() < records.len() / 2, "{codec:?}");
            }
            assert_eq!(
                decompress(codec, &compressed, records.len()).unwrap(),
                records
            );
            assert!(
                decompress(codec, &compressed, records.len() - 1).is_err(),
                "{codec:?}"
            );
            assert!(
                decompress(codec, &compressed[..compressed.len() / 2], 1 << 20).is_err()
                    || codec == Compression::None
            );
        }
    }
}
