use bytes::{BufMut, BytesMut};

use super::varint::{put_varint, put_varlong, varint_len, varlong_len};
use super::*;

/// A record header: a non-null key and an optional value.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    /// Header key.
    pub key: &'a [u8],
    /// Header value, or `None` for null.
    pub value: Option<&'a [u8]>,
}

/// A record to encode.
#[derive(Debug, Clone, Copy, Default)]
pub struct Record<'a> {
    /// Key, or `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Value, or `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// Headers.
    pub headers: &'a [Header<'a>],
    /// CreateTime timestamp in milliseconds since the epoch.
    pub timestamp_ms: i64,
}

/// Encodes records into an uncompressed RecordBatch v2, as a producer would.
///
/// Tests, benches and the client SDK use it; the broker itself never re-encodes a batch.
#[derive(Debug)]
pub struct RecordBatchBuilder {
    bytes: BytesMut,
    record_count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
}

impl Default for RecordBatchBuilder {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl RecordBatchBuilder {
    /// An empty builder whose buffer holds `capacity` bytes of records before growing.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut bytes = BytesMut::with_capacity(BATCH_HEADER_BYTES + capacity);
        bytes.put_bytes(0, BATCH_HEADER_BYTES);
        Self {
            bytes,
            record_count: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
        }
    }

    /// Marks the batch as part of its producer's transaction (the transactional bit).
    pub fn transactional(mut self) -> Self {
        self.transactional = true;
        self
    }

    /// Marks the batch as sent by an idempotent producer.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Records added so far.
    pub fn record_count(&self) -> usize {
        self.record_count as usize
    }

    /// Bytes the batch would take if built now.
    pub fn encoded_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Appends one record.
    pub fn push(&mut self, record: Record<'_>) {
        if self.record_count == 0 {
            self.base_timestamp = record.timestamp_ms;
            self.max_timestamp = record.timestamp_ms;
        }
        self.max_timestamp = self.max_timestamp.max(record.timestamp_ms);
        let timestamp_delta = record.timestamp_ms.wrapping_sub(self.base_timestamp);
        let offset_delta = self.record_count;
        let body_len = 1
            + varlong_len(timestamp_delta)
            + varint_len(offset_delta)
            + bytes_field_len(record.key)
            + bytes_field_len(record.value)
            + varint_len(record.headers.len() as i32)
            + record
                .headers
                .iter()
                .map(|header| bytes_field_len(Some(header.key)) + bytes_field_len(header.value))
                .sum::<usize>();
        self.bytes.reserve(varint_len(body_len as i32) + body_len);
        put_varint(&mut self.bytes, body_len as i32);
        self.bytes.put_i8(0);
        put_varlong(&mut self.bytes, timestamp_delta);
        put_varint(&mut self.bytes, offset_delta);
        put_bytes_field(&mut self.bytes, record.key);
        put_bytes_field(&mut self.bytes, record.value);
        put_varint(&mut self.bytes, record.headers.len() as i32);
        for header in record.headers {
            put_bytes_field(&mut self.bytes, Some(header.key));
            put_bytes_field(&mut self.bytes, header.value);
        }
        self.record_count += 1;
    }

    /// Finishes the batch with its records compressed by `codec` (as a producer does); the
    /// header stays plain and names the codec.
    pub fn build_compressed(self, codec: Compression) -> Result<RecordBatch, BatchError> {
        if codec == Compression::None {
            return Ok(self.build());
        }
        let mut compressed = Vec::with_capacity(BATCH_HEADER_BYTES + self.bytes.len() / 2);
        compressed.extend_from_slice(&self.bytes[..BATCH_HEADER_BYTES]);
        super::compression::compress(codec, &self.bytes[BATCH_HEADER_BYTES..], &mut compressed)?;
        let attributes = match codec {
            Compression::None => 0i16,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        };
        let mut plain = self;
        plain.bytes = BytesMut::from(&compressed[..]);
        Ok(plain.finish(attributes))
    }

    /// Finishes the batch: fills the header and the CRC. The base offset is 0 until the log
    /// assigns one.
    pub fn build(self) -> RecordBatch {
        self.finish(0)
    }

    /// A control batch holding one transaction marker (KIP-98), as the broker writes it into a
    /// partition of a transaction: transactional and control bits set, no sequence, the key
    /// (version 0, `control_type`: 0 abort, 1 commit) and the value (version 0, the
    /// coordinator's epoch).
    pub fn control_marker(
        producer_id: i64,
        producer_epoch: i16,
        control_type: i16,
        coordinator_epoch: i32,
        timestamp_ms: i64,
    ) -> RecordBatch {
        let mut key = [0u8; 4];
        key[2..].copy_from_slice(&control_type.to_be_bytes());
        let mut value = [0u8; 6];
        value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
        let mut builder = Self::with_capacity(32).producer(producer_id, producer_epoch, -1);
        builder.push(Record {
            key: Some(&key),
            value: Some(&value),
            headers: &[],
            timestamp_ms,
        });
        builder.finish(super::ATTRIBUTE_TRANSACTIONAL_BIT | super::ATTRIBUTE_CONTROL_BIT)
    }

    fn finish(mut self, attributes: i16) -> RecordBatch {
        let attributes = if self.transactional {
            attributes | super::ATTRIBUTE_TRANSACTIONAL_BIT
        } else {
            attributes
        };
        let batch_length = (self.bytes.len() - BATCH_LENGTH_PREFIX_BYTES) as i32;
        let header = &mut self.bytes[..BATCH_HEADER_BYTES];
        put_at(header, BASE_OFFSET_AT, &0i64.to_be_bytes());
        put_at(header, BATCH_LENGTH_AT, &batch_length.to_be_bytes());
        put_at(header, LEADER_EPOCH_AT, &(-1i32).to_be_bytes());
        put_at(header, MAGIC_AT, &[BATCH_MAGIC_V2 as u8]);
        put_at(header, ATTRIBUTES_AT, &attributes.to_be_bytes());
        let last_offset_delta = (self.record_count - 1).max(0);
        put_at(
            header,
            LAST_OFFSET_DELTA_AT,
            &last_offset_delta.to_be_bytes(),
        );
        put_at(
            header,
            BASE_TIMESTAMP_AT,
            &self.base_timestamp.to_be_bytes(),
        );
        put_at(header, MAX_TIMESTAMP_AT, &self.max_timestamp.to_be_bytes());
        put_at(header, PRODUCER_ID_AT, &self.producer_id.to_be_bytes());
        put_at(
            header,
            PRODUCER_EPOCH_AT,
            &self.producer_epoch.to_be_bytes(),
        );
        put_at(header, BASE_SEQUENCE_AT, &self.base_sequence.to_be_bytes());
        put_at(header, RECORD_COUNT_AT, &self.record_count.to_be_bytes());
        let crc = batch_crc(&self.bytes);
        put_at(&mut self.bytes, CRC_AT, &crc.to_be_bytes());
        let header = BatchHeader {
            base_offset: 0,
            batch_length: batch_length as u32,
            partition_leader_epoch: -1,
            crc,
            attributes,
            last_offset_delta: last_offset_delta as u32,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            record_count: self.record_count as u32,
        };
        RecordBatch::from_parts(self.bytes, header)
    }
}

fn put_at(out: &mut [u8], at: usize, value: &[u8]) {
    out[at..at + value.len()].copy_from_slice(value);
}

fn bytes_field_len(field: Option<&[u8]>) -> usize {
    match field {
        None => varint_len(-1),
        Some(bytes) => varint_len(bytes.len() as i32) + bytes.len(),
    }
}

fn put_bytes_field(out: &mut BytesMut, field: Option<&[u8]>) {
    match field {
        None => put_varint(out, -1),
        Some(bytes) => {
            put_varint(out, bytes.len() as i32);
            out.put_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(records: usize) -> RecordBatch {
        let mut builder = RecordBatchBuilder::default();
        for index in 0..records {
            let key = format!("key-{index}");
            let value = vec![index as u8; index * 3];
            let headers = [Header {
                key: b"h",
                value: Some(b"v"),
            }];
            builder.push(Record {
                key: (index % 2 == 0).then_some(key.as_bytes()),
                value: Some(&value),
                headers: &headers,
                timestamp_ms: 1_700_000_000_000 + index as i64 * 10,
            });
        }
        builder.build()
    }

    #[test]
    fn built_batch_parses_and_iterates() {
        let batch = sample(5);
        let reparsed =
            RecordBatch::parse(BytesMut::from(batch.as_bytes())).expect("builder output parses");
        assert_eq!(reparsed.record_count(), 5);
        assert_eq!(reparsed.last_offset(), 4);
        assert_eq!(reparsed.max_timestamp(), 1_700_000_000_040);
        reparsed.validate_for_append().expect("producer-valid");
        let records: Vec<_> = reparsed
            .records()
            .expect("uncompressed")
            .collect::<Result<_, _>>()
            .expect("records decode");
        assert_eq!(records.len(), 5);
        for (index, record) in records.iter().enumerate() {
            assert_eq!(record.offset_delta, index as i32);
            assert_eq!(record.timestamp, 1_700_000_000_000 + index as i64 * 10);
            let expected_key = format!("key-{index}");
            assert_eq!(
                record.key,
                (index % 2 == 0).then_some(expected_key.as_bytes())
            );
            assert_eq!(record.value, Some(&vec![index as u8; index * 3][..]));
            let headers: Vec<_> = record
                .headers
                .clone()
                .collect::<Result<_, _>>()
                .expect("hdr");
            assert_eq!(headers, vec![(&b"h"[..], Some(&b"v"[..]))]);
        }
    }

    #[test]
    fn base_offset_stamp_keeps_crc_and_log_append_time_recomputes_it() {
        let mut batch = sample(3);
        batch.set_base_offset(1234);
        let reparsed = RecordBatch::parse(BytesMut::from(batch.as_bytes())).expect("still valid");
        assert_eq!(reparsed.base_offset(), 1234);
        assert_eq!(reparsed.last_offset(), 1236);

        batch.set_log_append_time(42);
        let reparsed = RecordBatch::parse(BytesMut::from(batch.as_bytes())).expect("crc redone");
        assert_eq!(
            reparsed.header().timestamp_type(),
            TimestampType::LogAppendTime
        );
        assert_eq!(reparsed.max_timestamp(), 42);
        for record in reparsed.records().expect("uncompressed") {
            assert_eq!(record.expect("decodes").timestamp, 42);
        }
    }

    #[test]
    fn every_single_byte_flip_is_rejected() {
        let batch = sample(4);
        let original = batch.as_bytes().to_vec();
        for position in 0..original.len() {
            if position < CRC_AT && position != MAGIC_AT && !(8..12).contains(&position) {
                // base offset and leader epoch are outside the CRC by design.
                continue;
            }
            let mut damaged = original.clone();
            damaged[position] ^= 0x5a;
            let result = RecordBatch::parse(BytesMut::from(&damaged[..]));
            assert!(result.is_err(), "flip at {position} went unnoticed");
        }
    }

    #[test]
    fn truncations_and_garbage_are_errors_not_panics() {
        let batch = sample(2);
        let bytes = batch.as_bytes();
        for cut in 0..bytes.len() {
            assert!(RecordBatch::parse(BytesMut::from(&bytes[..cut])).is_err());
            assert!(BatchHeader::parse_verified(&bytes[..cut]).is_err());
        }
        let mut garbage = vec![0xffu8; 200];
        garbage[16] = 2;
        assert!(BatchHeader::parse(&garbage).is_err());
    }

    #[test]
    fn split_first_walks_concatenated_batches() {
        let mut joined = BytesMut::new();
        joined.extend_from_slice(sample(1).as_bytes());
        joined.extend_from_slice(sample(3).as_bytes());
        let first = RecordBatch::split_first(&mut joined).expect("first");
        let second = RecordBatch::split_first(&mut joined).expect("second");
        assert_eq!(first.record_count(), 1);
        assert_eq!(second.record_count(), 3);
        assert!(joined.is_empty());
    }

    #[test]
    fn producer_rules_reject_empty_and_gapped_batches() {
        let empty = RecordBatchBuilder::default().build();
        assert!(empty.validate_for_append().is_err());
    }
}
