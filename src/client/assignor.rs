//! Client-side partition assignment for the classic group protocol: the leader decodes every
//! member's subscription, assigns with the protocol the group chose, and encodes each
//! member's share. The formats are Kafka's `ConsumerProtocolSubscription` and
//! `ConsumerProtocolAssignment` (a version, then the body), so librdkafka and Java members
//! and this SDK's members can share one group.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::admin::topic_name;
use super::error::{ClientError, ClientResult};

/// The consumer protocol version this SDK writes (v0: topics and user data).
pub const CONSUMER_PROTOCOL_VERSION: i16 = 0;
/// The newest consumer protocol version it reads; newer members' extra fields come after
/// these and are ignored, as Kafka's clients do.
pub const CONSUMER_PROTOCOL_VERSION_MAX: i16 = 3;

/// How partitions are spread over members, by the names Kafka's clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// Per topic, contiguous ranges of partitions, the first members one more (`range`).
    Range,
    /// Every subscribed partition in turn to the next member subscribed to it (`roundrobin`).
    RoundRobin,
}

impl Assignor {
    /// The protocol name in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
        }
    }

    /// The assignor a protocol name means, if this SDK has it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "range" => Some(Assignor::Range),
            "roundrobin" => Some(Assignor::RoundRobin),
            _ => None,
        }
    }

    /// Each member's partitions. `members` maps member id → subscribed topics; `partitions`
    /// maps topic → partition count (topics missing from it get nothing). Members are taken
    /// in member-id order, so every leader computes the same answer.
    pub fn assign(
        self,
        members: &BTreeMap<String, Vec<String>>,
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
        let mut assigned: BTreeMap<String, BTreeMap<String, Vec<i32>>> = members
            .keys()
            .map(|member| (member.clone(), BTreeMap::new()))
            .collect();
        let subscribers = |topic: &str| -> Vec<&String> {
            members
                .iter()
                .filter(|(_, topics)| topics.iter().any(|wanted| wanted == topic))
                .map(|(member, _)| member)
                .collect()
        };
        match self {
            Assignor::Range => {
                for (topic, &count) in partitions {
                    let takers = subscribers(topic);
                    if takers.is_empty() {
                        continue;
                    }
                    let each = count / takers.len() as i32;
                    let extra = count % takers.len() as i32;
                    let mut next = 0;
                    for (index, member) in takers.into_iter().enumerate() {
                        let share = each + i32::from((index as i32) < extra);
                        let range: Vec<i32> = (next..next + share).collect();
                        next += share;
                        if !range.is_empty() {
                            assigned
                                .entry(member.clone())
                                .or_default()
                                .insert(topic.clone(), range);
                        }
                    }
                }
            }
            Assignor::RoundRobin => {
                let ring: Vec<&String> = members.keys().collect();
                let mut turn = 0usize;
                for (topic, &count) in partitions {
                    for partition in 0..count {
                        // The next member in the ring that subscribes to this topic.
                        let Some(offset) = (0..ring.len()).find(|step| {
                            members[ring[(turn + step) % ring.len()]]
                                .iter()
                                .any(|wanted| wanted == topic)
                        }) else {
                            break;
                        };
                        let member = ring[(turn + offset) % ring.len()];
                        turn = (turn + offset + 1) % ring.len();
                        assigned
                            .entry(member.clone())
                            .or_default()
                            .entry(topic.clone())
                            .or_default()
                            .push(partition);
                    }
                }
            }
        }
        assigned
    }
}

/// A member's JoinGroup metadata: its subscription.
pub fn encode_subscription(topics: &[String]) -> ClientResult<Bytes> {
    let subscription = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|topic| StrBytes::from_string(topic.clone()))
            .collect(),
    );
    encode_versioned(&subscription)
}

/// A member's subscribed topics, from its JoinGroup metadata.
pub fn decode_subscription(metadata: &Bytes) -> ClientResult<Vec<String>> {
    let (version, mut body) = split_version(metadata, "subscription")?;
    let subscription = ConsumerProtocolSubscription::decode(&mut body, version)
        .map_err(|error| malformed("subscription", error))?;
    Ok(subscription
        .topics
        .iter()
        .map(|topic| topic.to_string())
        .collect())
}

/// One member's share, as SyncGroup carries it.
pub fn encode_assignment(share: &BTreeMap<String, Vec<i32>>) -> ClientResult<Bytes> {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        share
            .iter()
            .map(|(topic, partitions)| {
                AssignedTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(partitions.clone())
            })
            .collect(),
    );
    encode_versioned(&assignment)
}

/// This member's partitions, from its SyncGroup answer (empty bytes: none).
pub fn decode_assignment(assignment: &Bytes) -> ClientResult<Vec<(String, i32)>> {
    if assignment.is_empty() {
        return Ok(Vec::new());
    }
    let (version, mut body) = split_version(assignment, "assignment")?;
    let decoded = ConsumerProtocolAssignment::decode(&mut body, version)
        .map_err(|error| malformed("assignment", error))?;
    Ok(decoded
        .assigned_partitions
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(move |partition| (topic.topic.0.to_string(), *partition))
        })
        .collect())
}

fn encode_versioned<T: Encodable>(message: &T) -> ClientResult<Bytes> {
    let mut buffer = BytesMut::new();
    buffer.put_i16(CONSUMER_PROTOCOL_VERSION);
    message
        .encode(&mut buffer, CONSUMER_PROTOCOL_VERSION)
        .map_err(|error| ClientError::Protocol {
            address: String::new(),
            reason: format!("cannot encode the consumer protocol: {error}"),
        })?;
    Ok(buffer.freeze())
}

fn split_version(bytes: &Bytes, what: &str) -> ClientResult<(i16, Bytes)> {
    let mut body = bytes.clone();
    if body.len() < 2 {
        return Err(malformed(what, "shorter than its version"));
    }
    let version = body.get_i16();
    if version < 0 {
        return Err(malformed(what, format!("version {version}")));
    }
    Ok((version.min(CONSUMER_PROTOCOL_VERSION_MAX), body))
}

fn malformed(what: &str, error: impl std::fmt::Display) -> ClientError {
    ClientError::Protocol {
        address: String::new(),
        reason: format!("malformed consumer protocol {what}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(spec: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        spec.iter()
            .map(|(member, topics)| {
                (
                    member.to_string(),
                    topics.iter().map(|topic| topic.to_string()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn range_gives_contiguous_ranges_and_the_first_members_one_more() {
        let members = members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let partitions = BTreeMap::from([("t".to_string(), 7)]);
        let assigned = Assignor::Range.assign(&members, &partitions);
        assert_eq!(assigned["a"]["t"], [0, 1, 2]);
        assert_eq!(assigned["b"]["t"], [3, 4]);
        assert_eq!(assigned["c"]["t"], [5, 6]);
    }

    #[test]
    fn roundrobin_deals_partitions_to_subscribers_only() {
        let members = members(&[("a", &["t", "u"]), ("b", &["t"])]);
        let partitions = BTreeMap::from([("t".to_string(), 3), ("u".to_string(), 2)]);
        let assigned = Assignor::RoundRobin.assign(&members, &partitions);
        assert_eq!(assigned["a"]["t"], [0, 2]);
        assert_eq!(assigned["b"]["t"], [1]);
        assert_eq!(assigned["a"]["u"], [0, 1]);
        assert!(!assigned["b"].contains_key("u"));
    }

    #[test]
    fn subscriptions_and_assignments_round_trip_and_damage_is_an_error() {
        let topics = vec!["orders".to_string(), "payments".to_string()];
        let encoded = encode_subscription(&topics).unwrap();
        assert_eq!(decode_subscription(&encoded).unwrap(), topics);
        let share = BTreeMap::from([("orders".to_string(), vec![0, 2])]);
        let encoded = encode_assignment(&share).unwrap();
        assert_eq!(
            decode_assignment(&encoded).unwrap(),
            [("orders".to_string(), 0), ("orders".to_string(), 2)]
        );
        assert!(decode_assignment(&Bytes::new()).unwrap().is_empty());
        assert!(decode_subscription(&Bytes::from_static(&[0])).is_err());
        assert!(decode_assignment(&Bytes::from_static(&[0, 0, 0, 0, 0, 9])).is_err());
    }
}
