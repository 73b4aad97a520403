//! Client-side partition assignment for the classic group protocol: the leader decodes every
//! member's subscription, assigns with the protocol the group chose, and encodes each
//! member's share. The formats are Kafka's `ConsumerProtocolSubscription` and
//! `ConsumerProtocolAssignment` (a version, then the body), so librdkafka and Java members
//! and this SDK's members can share one group. `cooperative-sticky` lives in
//! `cooperative_sticky.rs`.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::admin::topic_name;
use super::cooperative_sticky;
use super::error::{ClientError, ClientResult};

/// The consumer protocol version this SDK writes subscriptions in (v3: topics, user data,
/// owned partitions, generation, rack), as Kafka's and librdkafka's members do.
pub const SUBSCRIPTION_VERSION: i16 = 3;
/// The version it writes assignments in (v0; v1-v3 add nothing an assignment needs).
pub const ASSIGNMENT_VERSION: i16 = 0;
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
    /// Balanced, keeping what members hold, and incremental (KIP-429): a member keeps
    /// consuming what it keeps through a rebalance, and gives up only what moves
    /// (`cooperative-sticky`).
    CooperativeSticky,
}

/// One member's JoinGroup metadata, as the leader reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The topics it subscribes to.
    pub topics: Vec<String>,
    /// The partitions it holds now (v1+; empty from older members and eager ones).
    pub owned: Vec<(String, i32)>,
    /// The generation it held them in (v2+; -1 when unknown).
    pub generation: i32,
}

impl Assignor {
    /// The protocol name in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// Whether a rebalance under it is incremental: members keep their partitions while they
    /// rejoin and give up only those the leader moves.
    pub fn is_cooperative(self) -> bool {
        matches!(self, Assignor::CooperativeSticky)
    }

    /// The assignor a protocol name means, if this SDK has it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "range" => Some(Assignor::Range),
            "roundrobin" => Some(Assignor::RoundRobin),
            "cooperative-sticky" => Some(Assignor::CooperativeSticky),
            _ => None,
        }
    }

    /// Each member's partitions. `members` maps member id → its subscription; `partitions`
    /// maps topic → partition count (topics missing from it get nothing). Members are taken
    /// in member-id order, so every leader computes the same answer.
    pub fn assign(
        self,
        members: &BTreeMap<String, MemberSubscription>,
        partitions: &BTreeMap<String, i32>,
    ) -> cooperative_sticky::Shares {
        let mut assigned: BTreeMap<String, BTreeMap<String, Vec<i32>>> = members
            .keys()
            .map(|member| (member.clone(), BTreeMap::new()))
            .collect();
        let subscribers = |topic: &str| -> Vec<&String> {
            members
                .iter()
                .filter(|(_, member)| member.topics.iter().any(|wanted| wanted == topic))
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
                                .topics
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
            Assignor::CooperativeSticky => {
                return cooperative_sticky::assign(members, partitions);
            }
        }
        assigned
    }
}

/// A member's JoinGroup metadata: its subscription, what it holds and since which generation.
pub fn encode_subscription(subscription: &MemberSubscription) -> ClientResult<Bytes> {
    let mut owned: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &subscription.owned {
        owned.entry(topic).or_default().push(*partition);
    }
    let message = ConsumerProtocolSubscription::default()
        .with_topics(
            subscription
                .topics
                .iter()
                .map(|topic| StrBytes::from_string(topic.clone()))
                .collect(),
        )
        .with_owned_partitions(
            owned
                .into_iter()
                .map(|(topic, partitions)| {
                    OwnedTopic::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_generation_id(subscription.generation);
    encode_versioned(&message, SUBSCRIPTION_VERSION)
}

/// A member's subscription, from its JoinGroup metadata (any version from 0).
pub fn decode_subscription(metadata: &Bytes) -> ClientResult<MemberSubscription> {
    let (version, mut body) = split_version(metadata, "subscription")?;
    let decoded = ConsumerProtocolSubscription::decode(&mut body, version)
        .map_err(|error| malformed("subscription", error))?;
    Ok(MemberSubscription {
        topics: decoded
            .topics
            .iter()
            .map(|topic| topic.to_string())
            .collect(),
        owned: flatten(
            decoded
                .owned_partitions
                .iter()
                .map(|topic| (&*topic.topic.0, &topic.partitions[..])),
        ),
        // v0-v1 carry no generation: the decoder leaves Kafka's default, -1.
        generation: decoded.generation_id,
    })
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
    encode_versioned(&assignment, ASSIGNMENT_VERSION)
}

/// This member's partitions, from its SyncGroup answer (empty bytes: none).
pub fn decode_assignment(assignment: &Bytes) -> ClientResult<Vec<(String, i32)>> {
    if assignment.is_empty() {
        return Ok(Vec::new());
    }
    let (version, mut body) = split_version(assignment, "assignment")?;
    let decoded = ConsumerProtocolAssignment::decode(&mut body, version)
        .map_err(|error| malformed("assignment", error))?;
    Ok(flatten(
        decoded
            .assigned_partitions
            .iter()
            .map(|topic| (&*topic.topic.0, &topic.partitions[..])),
    ))
}

/// Topic → partitions lists, as (topic, partition) pairs.
fn flatten<'a>(topics: impl Iterator<Item = (&'a str, &'a [i32])>) -> Vec<(String, i32)> {
    topics
        .flat_map(|(topic, partitions)| {
            partitions
                .iter()
                .map(move |partition| (topic.to_string(), *partition))
        })
        .collect()
}

fn encode_versioned<T: Encodable>(message: &T, version: i16) -> ClientResult<Bytes> {
    let mut buffer = BytesMut::new();
    buffer.put_i16(version);
    message
        .encode(&mut buffer, version)
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

    fn members(spec: &[(&str, &[&str])]) -> BTreeMap<String, MemberSubscription> {
        spec.iter()
            .map(|(member, topics)| {
                (
                    member.to_string(),
                    MemberSubscription {
                        topics: topics.iter().map(|topic| topic.to_string()).collect(),
                        owned: Vec::new(),
                        generation: -1,
                    },
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
        let subscription = MemberSubscription {
            topics: vec!["orders".to_string(), "payments".to_string()],
            owned: vec![("orders".to_string(), 1), ("payments".to_string(), 0)],
            generation: 7,
        };
        let encoded = encode_subscription(&subscription).unwrap();
        assert_eq!(&encoded[..2], &SUBSCRIPTION_VERSION.to_be_bytes());
        assert_eq!(decode_subscription(&encoded).unwrap(), subscription);
        // A v0 subscription (an older client's) has no owned partitions and no generation.
        let mut v0 = BytesMut::new();
        v0.put_i16(0);
        ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_static_str("orders")])
            .encode(&mut v0, 0)
            .unwrap();
        let decoded = decode_subscription(&v0.freeze()).unwrap();
        assert_eq!(decoded.topics, ["orders"]);
        assert!(decoded.owned.is_empty());
        assert_eq!(decoded.generation, -1);
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
