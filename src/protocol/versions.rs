//! The APIs StreamBus implements and the version range of each: exactly what ApiVersions
//! advertises. Clients pick the highest version both sides know, so every version listed here
//! is decoded and answered by a handler and exercised by the tests; nothing else is listed.
//!
//! Produce starts at v3 and Fetch at v4: older versions carry pre-0.11 message sets, which
//! StreamBus (like Kafka 4.0) does not store, and an old client gets a clean
//! UNSUPPORTED_VERSION instead of a misparsed batch.

use kafka_protocol::messages::ApiKey;

/// One supported API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersionRange {
    /// The API.
    pub api_key: ApiKey,
    /// Lowest version handled.
    pub min_version: i16,
    /// Highest version handled.
    pub max_version: i16,
}

const fn range(api_key: ApiKey, min_version: i16, max_version: i16) -> ApiVersionRange {
    ApiVersionRange {
        api_key,
        min_version,
        max_version,
    }
}

/// Every API StreamBus answers, in API-key order.
pub const SUPPORTED_APIS: [ApiVersionRange; 24] = [
    range(ApiKey::Produce, 3, 9),
    range(ApiKey::Fetch, 4, 12),
    range(ApiKey::ListOffsets, 1, 6),
    range(ApiKey::Metadata, 0, 12),
    range(ApiKey::OffsetCommit, 2, 9),
    range(ApiKey::OffsetFetch, 1, 9),
    // Names the coordinator shard of groups and of transactional ids (whose APIs do not exist
    // yet: see its handler).
    range(ApiKey::FindCoordinator, 0, 4),
    range(ApiKey::JoinGroup, 0, 9),
    range(ApiKey::Heartbeat, 0, 4),
    range(ApiKey::LeaveGroup, 0, 5),
    range(ApiKey::SyncGroup, 0, 5),
    range(ApiKey::DescribeGroups, 0, 6),
    range(ApiKey::ListGroups, 0, 5),
    range(ApiKey::ApiVersions, 0, 3),
    range(ApiKey::CreateTopics, 2, 7),
    range(ApiKey::DeleteTopics, 1, 6),
    // Idempotent producers; v5 (KIP-890's transaction version 2) is not implemented.
    range(ApiKey::InitProducerId, 0, 4),
    range(ApiKey::DescribeConfigs, 1, 4),
    range(ApiKey::CreatePartitions, 0, 3),
    range(ApiKey::DeleteGroups, 0, 2),
    range(ApiKey::OffsetDelete, 0, 0),
    range(ApiKey::DescribeCluster, 0, 1),
    // The consumer group protocol (KIP-848).
    range(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    range(ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// The supported range of an API, if StreamBus implements it.
pub fn supported_range(api_key: i16) -> Option<ApiVersionRange> {
    SUPPORTED_APIS
        .iter()
        .copied()
        .find(|range| range.api_key as i16 == api_key)
}

/// Whether `version` of `api_key` is handled.
pub fn is_supported(api_key: i16, version: i16) -> bool {
    supported_range(api_key)
        .is_some_and(|range| (range.min_version..=range.max_version).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Message;

    #[test]
    fn every_advertised_range_is_one_the_codec_knows() {
        let codec = |key: ApiKey| key.valid_versions();
        for range in SUPPORTED_APIS {
            let valid = codec(range.api_key);
            assert!(
                valid.min <= range.min_version && range.max_version <= valid.max,
                "{:?} {}..={} outside the codec's {}..={}",
                range.api_key,
                range.min_version,
                range.max_version,
                valid.min,
                valid.max
            );
        }
        assert_eq!(ProduceRequest::VERSIONS.min, 3);
        assert!(!is_supported(ApiKey::Produce as i16, 2));
        assert!(is_supported(ApiKey::Fetch as i16, 12));
        assert!(is_supported(ApiKey::JoinGroup as i16, 0));
        assert!(is_supported(ApiKey::ConsumerGroupDescribe as i16, 1));
        assert!(!is_supported(ApiKey::ShareGroupHeartbeat as i16, 0));
        assert!(!is_supported(999, 0));
    }
}
