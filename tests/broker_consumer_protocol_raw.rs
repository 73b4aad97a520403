//! The consumer group protocol (KIP-848) byte for byte against the real broker: raw
//! ConsumerGroupHeartbeat and ConsumerGroupDescribe, for what clients act on: server-side
//! assignment, member epochs, revocation before a partition moves, fencing, leaving, the error
//! codes of bad requests, the two protocols refusing to share a group id, and OffsetCommit and
//! OffsetFetch at member epochs.

mod broker_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use broker_support::{tempdir, topic_name, Broker, RawConnection};
use bytes::Bytes;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

/// The version librdkafka and the Java client send.
const VERSION: i16 = 1;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn start() -> (tempfile::TempDir, Broker) {
    let dir = tempdir();
    let data = dir.path().join("data");
    let config = data.with_extension("toml");
    std::fs::write(
        &config,
        "[groups]\ngroup_initial_rebalance_delay_ms = 0\nconsumer_group_heartbeat_interval_ms = 500\n",
    )
    .expect("write config");
    let broker = Broker::start(
        &data,
        2,
        &["--config", config.to_str().expect("utf-8 path")],
    );
    (dir, broker)
}

fn new_topic(broker: &Broker, name: &str, partitions: i32) -> Uuid {
    let mut connection = RawConnection::connect(broker.bootstrap);
    let response: CreateTopicsResponse = connection.call(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1)]),
    );
    assert_eq!(response.topics[0].error_code, 0);
    response.topics[0].topic_id
}

fn coordinator(broker: &Broker, group: &str) -> (SocketAddr, SocketAddr) {
    let mut bootstrap = RawConnection::connect(broker.bootstrap);
    let found: FindCoordinatorResponse = bootstrap.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![text(group)]),
    );
    let shard = found.coordinators[0].node_id.0 as usize;
    (
        broker.shard_address(shard),
        broker.shard_address((shard + 1) % broker.shard_ports.len()),
    )
}

fn join_request(group: &str, member: &str, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_member_id(text(member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(topics.iter().map(|name| topic_name(name)).collect()))
        .with_topic_partitions(Some(Vec::new()))
}

fn heartbeat_request(
    group: &str,
    member: &str,
    epoch: i32,
    owned: Option<&[(Uuid, Vec<i32>)]>,
) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_member_id(text(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(owned.map(|owned| {
            owned
                .iter()
                .map(|(topic_id, partitions)| {
                    TopicPartitions::default()
                        .with_topic_id(*topic_id)
                        .with_partitions(partitions.clone())
                })
                .collect()
        }))
}

fn call(
    connection: &mut RawConnection,
    request: &ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    connection.call(ApiKey::ConsumerGroupHeartbeat, VERSION, request)
}

fn partitions_of(response: &ConsumerGroupHeartbeatResponse) -> Option<BTreeSet<i32>> {
    response.assignment.as_ref().map(|assignment| {
        assignment
            .topic_partitions
            .iter()
            .flat_map(|topic| topic.partitions.iter().copied())
            .collect()
    })
}

fn describe(connection: &mut RawConnection, group: &str) -> ConsumerGroupDescribeResponse {
    connection.call(
        ApiKey::ConsumerGroupDescribe,
        0,
        &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(text(group))]),
    )
}

#[test]
fn a_partition_moves_only_after_its_holder_revokes_it() {
    let (_dir, broker) = start();
    let topic_id = new_topic(&broker, "moves", 4);
    let (address, _) = coordinator(&broker, "moves-group");
    let mut connection = RawConnection::connect(address);

    // The first member gets every partition, at the first epoch.
    let first = call(
        &mut connection,
        &join_request("moves-group", "a", &["moves"]),
    );
    assert_eq!(first.error_code, 0, "{:?}", first.error_message);
    assert_eq!(first.member_id.as_deref(), Some("a"));
    assert_eq!(first.member_epoch, 1);
    assert_eq!(first.heartbeat_interval_ms, 500);
    assert_eq!(partitions_of(&first), Some(BTreeSet::from([0, 1, 2, 3])));
    let all = [(topic_id, vec![0, 1, 2, 3])];
    let steady = call(
        &mut connection,
        &heartbeat_request("moves-group", "a", 1, Some(&all)),
    );
    assert_eq!((steady.error_code, steady.member_epoch), (0, 1));

    // A second member joins: it gets nothing yet, as the first still holds everything.
    let second = call(
        &mut connection,
        &join_request("moves-group", "b", &["moves"]),
    );
    assert_eq!(second.error_code, 0);
    assert_eq!(second.member_epoch, 2, "it is at the new assignment epoch");
    assert_eq!(partitions_of(&second), Some(BTreeSet::new()));

    // The first member is told to revoke half, and stays at its epoch until it has.
    let revoke = call(
        &mut connection,
        &heartbeat_request("moves-group", "a", 1, None),
    );
    assert_eq!(revoke.error_code, 0);
    assert_eq!(revoke.member_epoch, 1);
    let kept = partitions_of(&revoke).expect("the smaller assignment");
    assert_eq!(kept.len(), 2);
    let described = describe(&mut connection, "moves-group");
    assert_eq!(described.groups[0].group_state.as_str(), "Reconciling");

    // Until it reports them gone, the second member still gets nothing.
    let waiting = call(
        &mut connection,
        &heartbeat_request("moves-group", "b", 2, None),
    );
    assert_eq!((waiting.error_code, waiting.member_epoch), (0, 2));
    assert!(partitions_of(&waiting).is_none_or(|partitions| partitions.is_empty()));

    let owned = [(topic_id, kept.iter().copied().collect::<Vec<_>>())];
    let acked = call(
        &mut connection,
        &heartbeat_request("moves-group", "a", 1, Some(&owned)),
    );
    assert_eq!((acked.error_code, acked.member_epoch), (0, 2));

    // Now the second member gets the released half.
    let released = call(
        &mut connection,
        &heartbeat_request("moves-group", "b", 2, None),
    );
    assert_eq!(released.error_code, 0);
    let moved = partitions_of(&released).expect("the released partitions");
    assert_eq!(moved.len(), 2);
    assert!(moved.is_disjoint(&kept));

    let described = describe(&mut connection, "moves-group");
    let group = &described.groups[0];
    assert_eq!(group.error_code, 0);
    assert_eq!(group.group_state.as_str(), "Stable");
    assert_eq!((group.group_epoch, group.assignment_epoch), (2, 2));
    assert_eq!(group.assignor_name.as_str(), "uniform");
    assert_eq!(group.members.len(), 2);
    for member in &group.members {
        assert_eq!(member.member_epoch, 2);
        assert_eq!(
            member.assignment.topic_partitions[0].topic_name.as_str(),
            "moves"
        );
        assert_eq!(member.assignment, member.target_assignment);
        assert_eq!(member.client_id.as_str(), "raw-test");
        assert!(member.client_host.starts_with("/127.0.0.1"));
    }

    // ListGroups reports it as a consumer group.
    let listed: ListGroupsResponse = connection.call(
        ApiKey::ListGroups,
        5,
        &ListGroupsRequest::default().with_types_filter(vec![text("consumer")]),
    );
    let entry = listed
        .groups
        .iter()
        .find(|group| group.group_id.as_str() == "moves-group")
        .expect("listed");
    assert_eq!(entry.group_state.as_str(), "Stable");
    assert_eq!(entry.group_type.as_str(), "consumer");

    // A leave (-1) gives the partitions back to the group.
    let left = call(
        &mut connection,
        &heartbeat_request("moves-group", "b", -1, None),
    );
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
    let all_back = call(
        &mut connection,
        &heartbeat_request("moves-group", "a", 2, Some(&owned)),
    );
    assert_eq!(all_back.member_epoch, 3);
    assert_eq!(partitions_of(&all_back), Some(BTreeSet::from([0, 1, 2, 3])));
    // DeleteGroups refuses a group with members.
    let deleted: DeleteGroupsResponse = connection.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(text("moves-group"))]),
    );
    assert_eq!(
        deleted.results[0].error_code,
        ResponseError::NonEmptyGroup.code()
    );
}

#[test]
fn epochs_are_fenced_and_bad_requests_get_their_errors() {
    let (_dir, broker) = start();
    new_topic(&broker, "fenced", 2);
    let (address, other) = coordinator(&broker, "fenced-group");
    let mut connection = RawConnection::connect(address);
    let joined = call(
        &mut connection,
        &join_request("fenced-group", "m", &["fenced"]),
    );
    assert_eq!((joined.error_code, joined.member_epoch), (0, 1));
    let error = |connection: &mut RawConnection, request: &ConsumerGroupHeartbeatRequest| {
        let response = call(connection, request);
        (
            ResponseError::try_from_code(response.error_code),
            response.error_message,
        )
    };
    let expect = |connection: &mut RawConnection,
                  request: ConsumerGroupHeartbeatRequest,
                  wanted: ResponseError| {
        let (got, message) = error(connection, &request);
        assert_eq!(got, Some(wanted), "{request:?}: {message:?}");
    };
    expect(
        &mut connection,
        heartbeat_request("fenced-group", "m", 7, None),
        ResponseError::FencedMemberEpoch,
    );
    expect(
        &mut connection,
        heartbeat_request("fenced-group", "stranger", 1, None),
        ResponseError::UnknownMemberId,
    );
    expect(
        &mut connection,
        heartbeat_request("no-such-group", "m", 1, None),
        ResponseError::UnknownMemberId,
    );
    expect(
        &mut connection,
        join_request("fenced-group", "", &["fenced"]),
        ResponseError::InvalidRequest,
    );
    // A join without its fields is what librdkafka's heartbeat timer sends between a leave
    // and its rejoin: it is told to rejoin, not failed.
    expect(
        &mut connection,
        join_request("fenced-group", "n", &["fenced"]).with_rebalance_timeout_ms(-1),
        ResponseError::UnknownMemberId,
    );
    expect(
        &mut connection,
        join_request("fenced-group", "n", &["fenced"]).with_subscribed_topic_names(None),
        ResponseError::UnknownMemberId,
    );
    expect(
        &mut connection,
        join_request("fenced-group", "n", &["fenced"]).with_topic_partitions(Some(vec![
            TopicPartitions::default()
                .with_topic_id(Uuid::from_u128(1))
                .with_partitions(vec![0]),
        ])),
        ResponseError::InvalidRequest,
    );
    expect(
        &mut connection,
        join_request("fenced-group", "n", &["fenced"]).with_server_assignor(Some(text("sticky"))),
        ResponseError::UnsupportedAssignor,
    );
    expect(
        &mut connection,
        join_request("fenced-group", "n", &[])
            .with_subscribed_topic_names(None)
            .with_subscribed_topic_regex(Some(text("fenced(["))),
        ResponseError::InvalidRegularExpression,
    );
    expect(
        &mut connection,
        heartbeat_request("fenced-group", "m", -3, None),
        ResponseError::InvalidRequest,
    );
    // Another shard is not the coordinator.
    let mut elsewhere = RawConnection::connect(other);
    expect(
        &mut elsewhere,
        join_request("fenced-group", "n", &["fenced"]),
        ResponseError::NotCoordinator,
    );
    // v0: the coordinator names a new member.
    let named: ConsumerGroupHeartbeatResponse = connection.call(
        ApiKey::ConsumerGroupHeartbeat,
        0,
        &join_request("fenced-group", "", &["fenced"]),
    );
    assert_eq!(named.error_code, 0, "{:?}", named.error_message);
    assert!(!named.member_id.unwrap_or_default().is_empty());
    // A member that starts over at epoch 0 is a new member with the same id.
    let again = call(
        &mut connection,
        &join_request("fenced-group", "m", &["fenced"]),
    );
    assert_eq!(again.error_code, 0);
    assert!(again.member_epoch > joined.member_epoch);

    // The member heartbeats still pass after all of that.
    let fine = call(
        &mut connection,
        &heartbeat_request("fenced-group", "m", again.member_epoch, None),
    );
    assert_eq!(fine.error_code, 0, "{:?}", fine.error_message);
}

#[test]
fn offsets_are_committed_and_fetched_at_member_epochs() {
    let (_dir, broker) = start();
    new_topic(&broker, "epochs", 1);
    let (address, _) = coordinator(&broker, "epochs-group");
    let mut connection = RawConnection::connect(address);
    let joined = call(
        &mut connection,
        &join_request("epochs-group", "m", &["epochs"]),
    );
    assert_eq!((joined.error_code, joined.member_epoch), (0, 1));
    let commit = |connection: &mut RawConnection, version: i16, epoch: i32, member: &str| {
        let response: OffsetCommitResponse = connection.call(
            ApiKey::OffsetCommit,
            version,
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(text("epochs-group")))
                .with_generation_id_or_member_epoch(epoch)
                .with_member_id(text(member))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(topic_name("epochs"))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42)])]),
        );
        ResponseError::try_from_code(response.topics[0].partitions[0].error_code)
    };
    assert_eq!(commit(&mut connection, 9, 1, "m"), None);
    assert_eq!(
        commit(&mut connection, 9, 0, "m"),
        Some(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(
        commit(&mut connection, 9, 1, "stranger"),
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        commit(&mut connection, 8, 1, "m"),
        Some(ResponseError::UnsupportedVersion)
    );
    assert_eq!(
        commit(&mut connection, 9, -1, ""),
        Some(ResponseError::UnknownMemberId),
        "a group with members takes no commits from outside it"
    );
    let fetch = |connection: &mut RawConnection, epoch: i32| {
        let response: OffsetFetchResponse = connection.call(
            ApiKey::OffsetFetch,
            9,
            &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(text("epochs-group")))
                .with_member_id(Some(text("m")))
                .with_member_epoch(epoch)
                .with_topics(None)]),
        );
        let group = &response.groups[0];
        (
            ResponseError::try_from_code(group.error_code),
            group
                .topics
                .first()
                .map(|topic| topic.partitions[0].committed_offset),
        )
    };
    assert_eq!(fetch(&mut connection, 1), (None, Some(42)));
    assert_eq!(fetch(&mut connection, -1), (None, Some(42)), "admin fetch");
    assert_eq!(
        fetch(&mut connection, 5).0,
        Some(ResponseError::StaleMemberEpoch)
    );
}

#[test]
fn the_two_protocols_do_not_share_a_group() {
    let (_dir, broker) = start();
    new_topic(&broker, "shared-name", 1);
    let (address, _) = coordinator(&broker, "one-protocol");
    let mut connection = RawConnection::connect(address);
    // A consumer-protocol member holds the name: a classic JoinGroup is refused.
    let joined = call(
        &mut connection,
        &join_request("one-protocol", "m", &["shared-name"]),
    );
    assert_eq!(joined.error_code, 0);
    let classic = JoinGroupRequest::default()
        .with_group_id(GroupId(text("one-protocol")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(text("range"))
            .with_metadata(Bytes::from_static(b"m"))]);
    let refused: JoinGroupResponse = connection.call(ApiKey::JoinGroup, 9, &classic);
    assert_eq!(
        refused.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    // DescribeGroups points at ConsumerGroupDescribe; ConsumerGroupDescribe of a classic or
    // unknown group is GROUP_ID_NOT_FOUND, so admin clients fall back.
    let described: DescribeGroupsResponse = connection.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(text("one-protocol"))]),
    );
    assert_eq!(described.groups[0].group_state.as_str(), "Dead");
    let unknown = describe(&mut connection, "never-seen");
    assert_eq!(
        unknown.groups[0].error_code,
        ResponseError::GroupIdNotFound.code()
    );

    // Once it leaves, the name is free for a classic group...
    let left = call(
        &mut connection,
        &heartbeat_request("one-protocol", "m", -1, None),
    );
    assert_eq!(left.error_code, 0);
    let first: JoinGroupResponse = connection.call(ApiKey::JoinGroup, 9, &classic);
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let member = first.member_id.clone();
    let classic_member: JoinGroupResponse = connection.call(
        ApiKey::JoinGroup,
        9,
        &classic.clone().with_member_id(member),
    );
    assert_eq!(classic_member.error_code, 0);
    // ...and while it has members, a ConsumerGroupHeartbeat is GROUP_ID_NOT_FOUND.
    let refused = call(
        &mut connection,
        &join_request("one-protocol", "m2", &["shared-name"]),
    );
    assert_eq!(refused.error_code, ResponseError::GroupIdNotFound.code());
    let described = describe(&mut connection, "one-protocol");
    assert_eq!(
        described.groups[0].error_code,
        ResponseError::GroupIdNotFound.code()
    );
}

#[test]
fn a_regex_subscription_follows_new_topics() {
    let (_dir, broker) = start();
    let first = new_topic(&broker, "logs-a", 2);
    let (address, _) = coordinator(&broker, "regex-group");
    let mut connection = RawConnection::connect(address);
    let joined = call(
        &mut connection,
        &join_request("regex-group", "m", &[])
            .with_subscribed_topic_names(None)
            .with_subscribed_topic_regex(Some(text("logs-.*"))),
    );
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    // As in Kafka, a new regex is matched in the background: the join gets the named topics
    // (none here), and the next heartbeat the matched ones.
    assert_eq!(partitions_of(&joined), Some(BTreeSet::new()));
    let matched = call(
        &mut connection,
        &heartbeat_request("regex-group", "m", joined.member_epoch, Some(&[])),
    );
    assert_eq!(matched.error_code, 0);
    assert!(matched.member_epoch > joined.member_epoch);
    let assignment = matched.assignment.clone().expect("assignment");
    assert_eq!(assignment.topic_partitions.len(), 1);
    assert_eq!(assignment.topic_partitions[0].topic_id, first);
    let joined = matched;
    // The regex matches whole names only.
    new_topic(&broker, "not-logs-b", 2);
    let second = new_topic(&broker, "logs-c", 3);
    let owned = [(first, vec![0, 1])];
    let grown = call(
        &mut connection,
        &heartbeat_request("regex-group", "m", joined.member_epoch, Some(&owned)),
    );
    assert_eq!(grown.error_code, 0);
    assert!(grown.member_epoch > joined.member_epoch);
    let topics: BTreeSet<Uuid> = grown
        .assignment
        .expect("the new topic's partitions")
        .topic_partitions
        .iter()
        .map(|topic| topic.topic_id)
        .collect();
    assert_eq!(topics, BTreeSet::from([first, second]));
    let described = describe(&mut connection, "regex-group");
    assert_eq!(
        described.groups[0].members[0]
            .subscribed_topic_regex
            .as_deref(),
        Some("logs-.*")
    );
}
