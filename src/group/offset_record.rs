//! The records of the committed-offsets log: key (group, topic, partition) and value (offset,
//! leader epoch, metadata, commit time), each starting with a format version. A record with
//! no value is a tombstone: the offset was deleted or expired.
//!
//! Layout, big-endian: key = `u16 version | u16 len | group | u16 len | topic | i32 partition`;
//! value = `u16 version | i64 offset | i32 leader epoch | i64 commit time ms | i32 len (-1:
//! null) | metadata`.

use thiserror::Error;

/// The format version written today.
pub const OFFSET_RECORD_VERSION: u16 = 1;

/// Why a stored record could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OffsetRecordError {
    /// The bytes end before the field.
    #[error("offset record truncated at {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A version this build does not know.
    #[error("offset record version {0} is unknown")]
    UnknownVersion(u16),
    /// A name that is not UTF-8.
    #[error("offset record {field} is not UTF-8")]
    NotUtf8 {
        /// The field.
        field: &'static str,
    },
}

/// What a commit stored for one partition of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset the group will read.
    pub offset: i64,
    /// The leader epoch the client saw, -1 if none.
    pub leader_epoch: i32,
    /// The client's metadata string, round-tripped.
    pub metadata: Option<String>,
    /// When the commit was stored.
    pub commit_timestamp_ms: i64,
}

/// The key of an offset record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetKey {
    /// The group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

/// Bytes `encode_key` makes for these names.
pub fn encoded_key_bytes(group: &str, topic: &str) -> usize {
    2 + 2 + group.len() + 2 + topic.len() + 4
}

/// Bytes `encode_value` makes for this commit.
pub fn encoded_value_bytes(committed: &CommittedOffset) -> usize {
    2 + 8 + 4 + 8 + 4 + committed.metadata.as_deref().map_or(0, str::len)
}

/// Encodes a key. Names longer than `u16::MAX` bytes cannot reach here: the protocol's
/// strings are at most `i16::MAX` bytes.
pub fn encode_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(encoded_key_bytes(group, topic));
    bytes.extend_from_slice(&OFFSET_RECORD_VERSION.to_be_bytes());
    push_name(&mut bytes, group);
    push_name(&mut bytes, topic);
    bytes.extend_from_slice(&partition.to_be_bytes());
    bytes
}

fn push_name(bytes: &mut Vec<u8>, name: &str) {
    assert!(
        name.len() <= usize::from(u16::MAX),
        "name of {} bytes",
        name.len()
    );
    bytes.extend_from_slice(&(name.len() as u16).to_be_bytes());
    bytes.extend_from_slice(name.as_bytes());
}

/// Encodes a value.
pub fn encode_value(committed: &CommittedOffset) -> Vec<u8> {
    let metadata = committed.metadata.as_deref();
    let mut bytes = Vec::with_capacity(encoded_value_bytes(committed));
    bytes.extend_from_slice(&OFFSET_RECORD_VERSION.to_be_bytes());
    bytes.extend_from_slice(&committed.offset.to_be_bytes());
    bytes.extend_from_slice(&committed.leader_epoch.to_be_bytes());
    bytes.extend_from_slice(&committed.commit_timestamp_ms.to_be_bytes());
    match metadata {
        None => bytes.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(text) => {
            bytes.extend_from_slice(&(text.len() as i32).to_be_bytes());
            bytes.extend_from_slice(text.as_bytes());
        }
    }
    bytes
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize, field: &'static str) -> Result<&'a [u8], OffsetRecordError> {
        if self.rest.len() < length {
            return Err(OffsetRecordError::Truncated { field });
        }
        let (taken, rest) = self.rest.split_at(length);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], OffsetRecordError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N, field)?);
        Ok(array)
    }

    fn version(&mut self) -> Result<(), OffsetRecordError> {
        match u16::from_be_bytes(self.array("version")?) {
            OFFSET_RECORD_VERSION => Ok(()),
            other => Err(OffsetRecordError::UnknownVersion(other)),
        }
    }

    fn text(&mut self, length: usize, field: &'static str) -> Result<String, OffsetRecordError> {
        let bytes = self.take(length, field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| OffsetRecordError::NotUtf8 { field })
    }

    fn name(&mut self, field: &'static str) -> Result<String, OffsetRecordError> {
        let length = usize::from(u16::from_be_bytes(self.array(field)?));
        self.text(length, field)
    }
}

/// Decodes a key.
pub fn decode_key(bytes: &[u8]) -> Result<OffsetKey, OffsetRecordError> {
    let mut reader = Reader { rest: bytes };
    reader.version()?;
    Ok(OffsetKey {
        group: reader.name("group")?,
        topic: reader.name("topic")?,
        partition: i32::from_be_bytes(reader.array("partition")?),
    })
}

/// Decodes a value.
pub fn decode_value(bytes: &[u8]) -> Result<CommittedOffset, OffsetRecordError> {
    let mut reader = Reader { rest: bytes };
    reader.version()?;
    let offset = i64::from_be_bytes(reader.array("offset")?);
    let leader_epoch = i32::from_be_bytes(reader.array("leader epoch")?);
    let commit_timestamp_ms = i64::from_be_bytes(reader.array("commit time")?);
    let length = i32::from_be_bytes(reader.array("metadata length")?);
    let metadata = match usize::try_from(length) {
        Ok(length) => Some(reader.text(length, "metadata")?),
        Err(_) => None,
    };
    Ok(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_an_error() {
        let committed = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: Some("näive meta".into()),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        let value = encode_value(&committed);
        assert_eq!(value.len(), encoded_value_bytes(&committed));
        assert_eq!(decode_value(&value), Ok(committed.clone()));
        let null = CommittedOffset {
            metadata: None,
            ..committed
        };
        assert_eq!(decode_value(&encode_value(&null)), Ok(null));
        let key = encode_key("group", "topic", 7);
        assert_eq!(key.len(), encoded_key_bytes("group", "topic"));
        assert_eq!(
            decode_key(&key),
            Ok(OffsetKey {
                group: "group".into(),
                topic: "topic".into(),
                partition: 7
            })
        );
        for cut in 0..key.len() {
            assert!(decode_key(&key[..cut]).is_err(), "key cut at {cut}");
        }
        for cut in 0..value.len() {
            assert!(decode_value(&value[..cut]).is_err(), "value cut at {cut}");
        }
        let mut future = key.clone();
        future[1] = 9;
        assert_eq!(
            decode_key(&future),
            Err(OffsetRecordError::UnknownVersion(9))
        );
    }
}
