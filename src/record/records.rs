use super::varint::{get_varint, get_varlong};
use super::*;

/// One record of an uncompressed batch, borrowed from the batch's bytes.
#[derive(Debug, Clone)]
pub struct RecordView<'a> {
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Timestamp: the batch's base timestamp plus the record's delta (CreateTime), or the batch's
    /// max timestamp (LogAppendTime).
    pub timestamp: i64,
    /// The key, or `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The value, or `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// The record's headers.
    pub headers: RecordHeaderIter<'a>,
}

/// Iterates a record's headers as `(key, value)`.
#[derive(Debug, Clone)]
pub struct RecordHeaderIter<'a> {
    rest: &'a [u8],
    remaining: u32,
}

impl<'a> Iterator for RecordHeaderIter<'a> {
    type Item = Result<(&'a [u8], Option<&'a [u8]>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let mut cursor = Cursor { rest: self.rest };
        let item = (|| {
            let key = cursor
                .bytes()?
                .ok_or(BatchError::MalformedRecord("null header key"))?;
            let value = cursor.bytes()?;
            Ok((key, value))
        })();
        self.rest = cursor.rest;
        if item.is_err() {
            self.remaining = 0;
        }
        Some(item)
    }
}

/// Iterates the records of an uncompressed batch; stops at the first malformed record.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    rest: &'a [u8],
    remaining: u32,
    base_timestamp: i64,
    log_append_time: Option<i64>,
}

impl<'a> RecordIter<'a> {
    /// Records of `batch` (its whole bytes), whose header is `header`.
    pub fn new(header: &BatchHeader, batch: &'a [u8]) -> Result<Self, BatchError> {
        match header.compression() {
            Compression::None => {}
            other => return Err(BatchError::Compressed(other)),
        }
        let rest =
            batch
                .get(BATCH_HEADER_BYTES..header.total_bytes())
                .ok_or(BatchError::Truncated {
                    need: header.total_bytes(),
                    have: batch.len(),
                })?;
        Ok(Self {
            rest,
            remaining: header.record_count,
            base_timestamp: header.base_timestamp,
            log_append_time: (header.timestamp_type() == TimestampType::LogAppendTime)
                .then_some(header.max_timestamp),
        })
    }
}

impl<'a> RecordIter<'a> {
    /// Records held in `records` (a batch's records section, decompressed where the batch is
    /// compressed), with the batch's header for the count and timestamps.
    pub fn over(header: &BatchHeader, records: &'a [u8]) -> Self {
        Self {
            rest: records,
            remaining: header.record_count,
            base_timestamp: header.base_timestamp,
            log_append_time: (header.timestamp_type() == TimestampType::LogAppendTime)
                .then_some(header.max_timestamp),
        }
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let item = self.decode_one();
        if item.is_err() {
            self.remaining = 0;
        }
        Some(item)
    }
}

impl<'a> RecordIter<'a> {
    fn decode_one(&mut self) -> Result<RecordView<'a>, BatchError> {
        let mut outer = Cursor { rest: self.rest };
        let length = outer.varint()?;
        let length =
            usize::try_from(length).map_err(|_| BatchError::MalformedRecord("negative length"))?;
        let body = outer
            .rest
            .get(..length)
            .ok_or(BatchError::MalformedRecord("record longer than batch"))?;
        self.rest = &outer.rest[length..];
        let mut cursor = Cursor { rest: body };
        let _attributes = cursor.take(1)?;
        let timestamp_delta = cursor.varlong()?;
        let offset_delta = cursor.varint()?;
        let key = cursor.bytes()?;
        let value = cursor.bytes()?;
        let header_count = cursor.varint()?;
        let header_count = u32::try_from(header_count)
            .map_err(|_| BatchError::MalformedRecord("negative header count"))?;
        Ok(RecordView {
            offset_delta,
            timestamp: self
                .log_append_time
                .unwrap_or(self.base_timestamp.wrapping_add(timestamp_delta)),
            key,
            value,
            headers: RecordHeaderIter {
                rest: cursor.rest,
                remaining: header_count,
            },
        })
    }
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], BatchError> {
        if self.rest.len() < count {
            return Err(BatchError::MalformedRecord("field past end of record"));
        }
        let (head, tail) = self.rest.split_at(count);
        self.rest = tail;
        Ok(head)
    }

    fn varint(&mut self) -> Result<i32, BatchError> {
        let (value, used) =
            get_varint(self.rest).ok_or(BatchError::MalformedRecord("bad varint"))?;
        self.rest = &self.rest[used..];
        Ok(value)
    }

    fn varlong(&mut self) -> Result<i64, BatchError> {
        let (value, used) =
            get_varlong(self.rest).ok_or(BatchError::MalformedRecord("bad varlong"))?;
        self.rest = &self.rest[used..];
        Ok(value)
    }

    /// A length-prefixed byte string; length -1 is null.
    fn bytes(&mut self) -> Result<Option<&'a [u8]>, BatchError> {
        match self.varint()? {
            -1 => Ok(None),
            length if length < 0 => Err(BatchError::MalformedRecord("negative length")),
            length => self.take(length as usize).map(Some),
        }
    }
}
