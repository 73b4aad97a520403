//! Topic configs: the Kafka names a topic may override, their validation, and how they turn
//! into a [`LogConfig`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::{parse_timestamp_type, LogDefaults};
use crate::storage::{LogConfig, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};

/// The topic configs StreamBus knows, in the order DescribeConfigs lists them.
pub const TOPIC_CONFIG_NAMES: [&str; 7] = [
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "message.timestamp.type",
];

/// A topic config that cannot be accepted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TopicConfigError {
    /// The name is not a topic config StreamBus knows.
    #[error("unknown topic config {name:?}")]
    Unknown {
        /// The name given.
        name: String,
    },
    /// The value is out of range or unparsable.
    #[error("invalid value {value:?} for topic config {name}: {reason}")]
    InvalidValue {
        /// The config.
        name: String,
        /// The value given.
        value: String,
        /// Why.
        reason: String,
    },
}

/// A topic's config overrides, by Kafka name, each validated on the way in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfigs {
    /// Name -> value, as Kafka spells both.
    pub overrides: BTreeMap<String, String>,
}

impl TopicConfigs {
    /// Validates and records one override.
    pub fn set(&mut self, name: &str, value: Option<&str>) -> Result<(), TopicConfigError> {
        let Some(value) = value else {
            // A null value means "use the default", as in Kafka.
            self.overrides.remove(name);
            return check_name(name);
        };
        check_value(name, value)?;
        self.overrides.insert(name.to_string(), value.to_string());
        Ok(())
    }

    /// The effective value of a config: the override, else the broker default.
    pub fn value(&self, name: &str, defaults: &LogDefaults) -> Option<String> {
        if let Some(value) = self.overrides.get(name) {
            return Some(value.clone());
        }
        Some(match name {
            "cleanup.policy" => "delete".into(),
            "retention.ms" => defaults.retention_ms.to_string(),
            "retention.bytes" => defaults.retention_bytes.to_string(),
            "segment.bytes" => defaults.segment_bytes.to_string(),
            "segment.ms" => defaults.segment_ms.to_string(),
            "max.message.bytes" => defaults.message_max_bytes.to_string(),
            "message.timestamp.type" => defaults.message_timestamp_type.clone(),
            _ => return None,
        })
    }

    /// The log config of a partition of this topic.
    pub fn log_config(&self, defaults: &LogDefaults) -> LogConfig {
        let mut config = defaults.log_config();
        let number = |name: &str| self.overrides.get(name).and_then(|v| v.parse::<i64>().ok());
        if let Some(value) = number("retention.ms") {
            config.retention_ms = u64::try_from(value).ok();
        }
        if let Some(value) = number("retention.bytes") {
            config.retention_bytes = u64::try_from(value).ok();
        }
        if let Some(value) = number("segment.bytes").and_then(|v| u64::try_from(v).ok()) {
            config.segment_bytes = value;
        }
        if let Some(value) = number("segment.ms").and_then(|v| u64::try_from(v).ok()) {
            config.segment_ms = value;
        }
        if let Some(value) = number("max.message.bytes").and_then(|v| usize::try_from(v).ok()) {
            config.batch_bytes_max = value;
        }
        if let Some(kind) = self
            .overrides
            .get("message.timestamp.type")
            .and_then(|v| parse_timestamp_type(v))
        {
            config.timestamp_type = kind;
        }
        // A batch can never be larger than a segment.
        config.batch_bytes_max = config
            .batch_bytes_max
            .min(usize::try_from(config.segment_bytes).unwrap_or(usize::MAX));
        config
    }
}

fn check_name(name: &str) -> Result<(), TopicConfigError> {
    if TOPIC_CONFIG_NAMES.contains(&name) {
        Ok(())
    } else {
        Err(TopicConfigError::Unknown { name: name.into() })
    }
}

fn check_value(name: &str, value: &str) -> Result<(), TopicConfigError> {
    check_name(name)?;
    let invalid = |reason: String| TopicConfigError::InvalidValue {
        name: name.into(),
        value: value.into(),
        reason,
    };
    let integer = || {
        value
            .trim()
            .parse::<i64>()
            .map_err(|e| invalid(e.to_string()))
    };
    match name {
        "cleanup.policy" => match value {
            "delete" => Ok(()),
            "compact" | "compact,delete" | "delete,compact" => Err(invalid(
                "compaction is not implemented yet; only \"delete\" is supported".into(),
            )),
            _ => Err(invalid("expected \"delete\"".into())),
        },
        "retention.ms" | "retention.bytes" => {
            if integer()? < -1 {
                return Err(invalid("must be -1 (no limit) or more".into()));
            }
            Ok(())
        }
        "segment.bytes" => {
            let bytes = integer()?;
            if !(SEGMENT_BYTES_MIN as i64..=SEGMENT_BYTES_MAX as i64).contains(&bytes) {
                return Err(invalid(format!(
                    "must be within {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}"
                )));
            }
            Ok(())
        }
        "segment.ms" | "max.message.bytes" => {
            if integer()? < 1 {
                return Err(invalid("must be positive".into()));
            }
            Ok(())
        }
        "message.timestamp.type" => parse_timestamp_type(value)
            .map(|_| ())
            .ok_or_else(|| invalid("expected CreateTime or LogAppendTime".into())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TimestampType;

    #[test]
    fn overrides_are_validated_and_applied() {
        let mut configs = TopicConfigs::default();
        configs.set("retention.ms", Some("60000")).unwrap();
        configs.set("retention.bytes", Some("-1")).unwrap();
        configs.set("segment.bytes", Some("1048576")).unwrap();
        configs.set("cleanup.policy", Some("delete")).unwrap();
        configs
            .set("message.timestamp.type", Some("LogAppendTime"))
            .unwrap();
        let log = configs.log_config(&LogDefaults::default());
        assert_eq!(log.retention_ms, Some(60_000));
        assert_eq!(log.retention_bytes, None);
        assert_eq!(log.segment_bytes, 1 << 20);
        assert_eq!(log.timestamp_type, TimestampType::LogAppendTime);
        log.validate().unwrap();
    }

    #[test]
    fn bad_overrides_are_refused_with_a_reason() {
        let mut configs = TopicConfigs::default();
        assert!(matches!(
            configs.set("retention.mss", Some("1")),
            Err(TopicConfigError::Unknown { .. })
        ));
        for (name, value) in [
            ("retention.ms", "soon"),
            ("retention.ms", "-2"),
            ("segment.bytes", "10"),
            ("cleanup.policy", "compact"),
            ("cleanup.policy", "shred"),
            ("max.message.bytes", "0"),
        ] {
            assert!(
                matches!(
                    configs.set(name, Some(value)),
                    Err(TopicConfigError::InvalidValue { .. })
                ),
                "{name}={value}"
            );
        }
        assert!(configs.overrides.is_empty());
    }
}
