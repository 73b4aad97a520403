//! The classic group protocol byte for byte against the real broker: raw JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, OffsetCommit and the admin APIs, for the exact error codes clients
//! act on (MEMBER_ID_REQUIRED only from JoinGroup v4, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
//! ILLEGAL_GENERATION, NOT_COORDINATOR, INCONSISTENT_GROUP_PROTOCOL, INVALID_SESSION_TIMEOUT,
//! GROUP_MAX_SIZE_REACHED, FENCED_INSTANCE_ID, NON_EMPTY_GROUP).

mod broker_support;

use std::net::SocketAddr;

use broker_support::{create_topic, tempdir, topic_name, Broker, RawConnection};
use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn group_id(name: &str) -> GroupId {
    GroupId(text(name))
}

fn code(error: ResponseError) -> i16 {
    error.code()
}

/// The coordinator's address for `group`, and another shard's.
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

fn join(
    group: &str,
    member_id: &str,
    instance: Option<&str>,
    protocols: &[&str],
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(group_id(group))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(text(member_id))
        .with_group_instance_id(instance.map(text))
        .with_protocol_type(text("consumer"))
        .with_protocols(
            protocols
                .iter()
                .map(|name| {
                    JoinGroupRequestProtocol::default()
                        .with_name(text(name))
                        .with_metadata(Bytes::from(format!("metadata-{name}")))
                })
                .collect(),
        )
}

fn heartbeat(
    connection: &mut RawConnection,
    group: &str,
    generation: i32,
    member_id: &str,
    instance: Option<&str>,
) -> i16 {
    let response: HeartbeatResponse = connection.call(
        ApiKey::Heartbeat,
        4,
        &HeartbeatRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id(generation)
            .with_member_id(text(member_id))
            .with_group_instance_id(instance.map(text)),
    );
    response.error_code
}

fn sync(
    connection: &mut RawConnection,
    group: &str,
    generation: i32,
    member_id: &str,
    assignments: &[(&str, &[u8])],
) -> SyncGroupResponse {
    connection.call(
        ApiKey::SyncGroup,
        5,
        &SyncGroupRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id(generation)
            .with_member_id(text(member_id))
            .with_protocol_type(Some(text("consumer")))
            .with_protocol_name(Some(text("range")))
            .with_assignments(
                assignments
                    .iter()
                    .map(|(member, assignment)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(text(member))
                            .with_assignment(Bytes::copy_from_slice(assignment))
                    })
                    .collect(),
            ),
    )
}

fn commit(connection: &mut RawConnection, group: &str, generation: i32, member_id: &str) -> i16 {
    let response: OffsetCommitResponse = connection.call(
        ApiKey::OffsetCommit,
        8,
        &OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(text(member_id))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name("members"))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(5)
                    .with_committed_leader_epoch(-1)])]),
    );
    response.topics[0].partitions[0].error_code
}

/// A member joined alone in a new group: its id and generation (it is the leader).
fn join_alone(coordinator: SocketAddr, group: &str) -> (RawConnection, String, i32) {
    let mut connection = RawConnection::connect(coordinator);
    let first: JoinGroupResponse =
        connection.call(ApiKey::JoinGroup, 9, &join(group, "", None, &["range"]));
    assert_eq!(first.error_code, code(ResponseError::MemberIdRequired));
    let member_id = first.member_id.to_string();
    let joined: JoinGroupResponse = connection.call(
        ApiKey::JoinGroup,
        9,
        &join(group, &member_id, None, &["range"]),
    );
    assert_eq!(joined.error_code, 0);
    (connection, member_id, joined.generation_id)
}

#[test]
fn a_group_forms_rebalances_and_answers_every_error_as_kafka_does() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let config = data.with_extension("toml");
    std::fs::write(
        &config,
        "[groups]\ngroup_initial_rebalance_delay_ms = 0\ngroup_max_size = 2\n",
    )
    .expect("write config");
    let broker = Broker::start(&data, 2, &["--config", config.to_str().unwrap()]);
    create_topic(&mut RawConnection::connect(broker.bootstrap), "members", 2);
    let group = "raw-group";
    let (address, elsewhere) = coordinator(&broker, group);

    // v4+: a new member is first told its id; v3 and older get it with the generation.
    let mut connection = RawConnection::connect(address);
    let first: JoinGroupResponse = connection.call(
        ApiKey::JoinGroup,
        4,
        &join(group, "", None, &["range", "roundrobin"]),
    );
    assert_eq!(first.error_code, code(ResponseError::MemberIdRequired));
    assert!(!first.member_id.is_empty());
    let leader_id = first.member_id.to_string();
    let joined: JoinGroupResponse = connection.call(
        ApiKey::JoinGroup,
        9,
        &join(group, &leader_id, None, &["range", "roundrobin"]),
    );
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader.as_str(), leader_id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(joined.members.len(), 1, "the leader sees every member");
    assert_eq!(joined.members[0].metadata.as_ref(), b"metadata-range");
    let synced = sync(
        &mut connection,
        group,
        1,
        &leader_id,
        &[(&leader_id, b"p0p1")],
    );
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment.as_ref(), b"p0p1");
    assert_eq!(heartbeat(&mut connection, group, 1, &leader_id, None), 0);
    assert_eq!(
        commit(&mut connection, group, 1, &leader_id),
        0,
        "a member commits"
    );

    // The errors of a stable group.
    assert_eq!(
        heartbeat(&mut connection, group, 2, &leader_id, None),
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        heartbeat(&mut connection, group, 1, "nobody", None),
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        commit(&mut connection, group, 7, &leader_id),
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        commit(&mut connection, group, -1, ""),
        code(ResponseError::UnknownMemberId),
        "generation -1 commits only to a group without members"
    );
    let mut other_shard = RawConnection::connect(elsewhere);
    let refused: JoinGroupResponse =
        other_shard.call(ApiKey::JoinGroup, 9, &join(group, "", None, &["range"]));
    assert_eq!(refused.error_code, code(ResponseError::NotCoordinator));
    assert_eq!(
        heartbeat(&mut other_shard, group, 1, &leader_id, None),
        code(ResponseError::NotCoordinator)
    );
    let short_session = join(group, "", None, &["range"]).with_session_timeout_ms(1_000);
    let refused: JoinGroupResponse = connection.call(ApiKey::JoinGroup, 9, &short_session);
    assert_eq!(
        refused.error_code,
        code(ResponseError::InvalidSessionTimeout)
    );
    let refused: JoinGroupResponse =
        connection.call(ApiKey::JoinGroup, 9, &join(group, "", None, &["sticky"]));
    assert_eq!(
        refused.error_code,
        code(ResponseError::InconsistentGroupProtocol),
        "no protocol in common with the group"
    );
    let refused: JoinGroupResponse = connection.call(
        ApiKey::JoinGroup,
        9,
        &join(group, "", None, &["range"]).with_protocol_type(text("connect")),
    );
    assert_eq!(
        refused.error_code,
        code(ResponseError::InconsistentGroupProtocol)
    );

    // A second member at v3 gets its id at once and waits for the rebalance; the leader
    // learns of it from a heartbeat and rejoins.
    let follower = std::thread::spawn(move || {
        let mut connection = RawConnection::connect(address);
        let joined: JoinGroupResponse = connection.call(
            ApiKey::JoinGroup,
            3,
            &join(group, "", None, &["roundrobin", "range"]),
        );
        (connection, joined)
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while heartbeat(&mut connection, group, 1, &leader_id, None)
        != code(ResponseError::RebalanceInProgress)
    {
        assert!(std::time::Instant::now() < deadline, "no rebalance began");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let rejoined: JoinGroupResponse = connection.call(
        ApiKey::JoinGroup,
        9,
        &join(group, &leader_id, None, &["range", "roundrobin"]),
    );
    let (mut follower_connection, follower_joined) = follower.join().unwrap();
    assert_eq!(rejoined.error_code, 0);
    assert_eq!(follower_joined.error_code, 0);
    assert_eq!(rejoined.generation_id, 2);
    assert_eq!(follower_joined.generation_id, 2);
    assert_eq!(rejoined.leader.as_str(), leader_id, "the leader stays");
    assert_eq!(rejoined.members.len(), 2);
    assert!(
        follower_joined.members.is_empty(),
        "only the leader sees the members"
    );
    // Both support range and roundrobin; one prefers each: the tie goes to the first member.
    assert_eq!(rejoined.protocol_name.as_deref(), Some("range"));
    let follower_id = follower_joined.member_id.to_string();
    assert_eq!(
        commit(&mut connection, group, 2, &leader_id),
        code(ResponseError::RebalanceInProgress),
        "no commits while the leader assigns"
    );
    let waiting = std::thread::spawn(move || {
        let synced = sync(&mut follower_connection, group, 2, &follower_id, &[]);
        (follower_connection, follower_id, synced)
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let synced = sync(
        &mut connection,
        group,
        2,
        &leader_id,
        &[(&leader_id, b"p0"), (&follower_joined.member_id, b"p1")],
    );
    assert_eq!(synced.assignment.as_ref(), b"p0");
    let (mut follower_connection, follower_id, follower_synced) = waiting.join().unwrap();
    assert_eq!(follower_synced.error_code, 0);
    assert_eq!(
        follower_synced.assignment.as_ref(),
        b"p1",
        "the follower waited for it"
    );

    // The group is full (group_max_size = 2).
    let refused: JoinGroupResponse = RawConnection::connect(address).call(
        ApiKey::JoinGroup,
        9,
        &join(group, "", None, &["range"]),
    );
    assert_eq!(refused.error_code, code(ResponseError::GroupMaxSizeReached));

    // Admin: described with its members, listed as Stable, not deletable while it has them.
    let described: DescribeGroupsResponse = connection.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![group_id(group)]),
    );
    let described = &described.groups[0];
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.protocol_type.as_str(), "consumer");
    assert_eq!(described.protocol_data.as_str(), "range");
    assert_eq!(described.members.len(), 2);
    assert!(described
        .members
        .iter()
        .all(|member| member.client_host.as_str() == "/127.0.0.1"));
    let assignments: Vec<&[u8]> = described
        .members
        .iter()
        .map(|member| member.member_assignment.as_ref())
        .collect();
    assert_eq!(assignments, [b"p0".as_ref(), b"p1".as_ref()]);
    let listed: ListGroupsResponse = connection.call(
        ApiKey::ListGroups,
        5,
        &ListGroupsRequest::default().with_states_filter(vec![text("stable")]),
    );
    assert_eq!(
        listed
            .groups
            .iter()
            .map(|listed| (listed.group_id.as_str(), listed.group_state.as_str()))
            .collect::<Vec<_>>(),
        [(group, "Stable")]
    );
    let deleted: DeleteGroupsResponse = connection.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]),
    );
    assert_eq!(
        deleted.results[0].error_code,
        code(ResponseError::NonEmptyGroup)
    );

    // LeaveGroup v3+ answers per member; the leader leaving makes the follower the leader
    // of the next generation.
    let left: LeaveGroupResponse = connection.call(
        ApiKey::LeaveGroup,
        5,
        &LeaveGroupRequest::default()
            .with_group_id(group_id(group))
            .with_members(vec![
                MemberIdentity::default().with_member_id(text(&leader_id)),
                MemberIdentity::default().with_member_id(text("nobody")),
            ]),
    );
    assert_eq!(left.error_code, 0);
    assert_eq!(
        left.members
            .iter()
            .map(|member| member.error_code)
            .collect::<Vec<_>>(),
        [0, code(ResponseError::UnknownMemberId)]
    );
    assert_eq!(
        heartbeat(&mut follower_connection, group, 2, &follower_id, None),
        code(ResponseError::RebalanceInProgress)
    );
    let rejoined: JoinGroupResponse = follower_connection.call(
        ApiKey::JoinGroup,
        5,
        &join(group, &follower_id, None, &["roundrobin", "range"]),
    );
    assert_eq!(rejoined.generation_id, 3);
    assert_eq!(rejoined.leader.as_str(), follower_id);
    assert_eq!(rejoined.protocol_name.as_deref(), Some("roundrobin"));
    // v0-v2 name one member and answer with one error.
    let left: LeaveGroupResponse = follower_connection.call(
        ApiKey::LeaveGroup,
        1,
        &LeaveGroupRequest::default()
            .with_group_id(group_id(group))
            .with_member_id(text(&follower_id)),
    );
    assert_eq!(left.error_code, 0);
    let described: DescribeGroupsResponse = connection.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![group_id(group)]),
    );
    assert_eq!(described.groups[0].group_state.as_str(), "Empty");
    assert_eq!(
        commit(&mut connection, group, -1, ""),
        0,
        "an empty group takes generation -1"
    );
    let deleted: DeleteGroupsResponse = connection.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]),
    );
    assert_eq!(deleted.results[0].error_code, 0);
}

#[test]
fn a_static_member_is_fenced_by_its_replacement() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let config = data.with_extension("toml");
    std::fs::write(&config, "[groups]\ngroup_initial_rebalance_delay_ms = 0\n").unwrap();
    let broker = Broker::start(&data, 2, &["--config", config.to_str().unwrap()]);
    let group = "static-raw";
    let (address, _) = coordinator(&broker, group);
    let mut old = RawConnection::connect(address);
    // A static member is never asked for MEMBER_ID_REQUIRED: its instance id names it.
    let joined: JoinGroupResponse = old.call(
        ApiKey::JoinGroup,
        9,
        &join(group, "", Some("host-1"), &["range"]),
    );
    assert_eq!(joined.error_code, 0);
    let old_id = joined.member_id.to_string();
    let synced = sync(&mut old, group, 1, &old_id, &[(&old_id, b"mine")]);
    assert_eq!(synced.error_code, 0);
    // The same instance starts again: same generation, no rebalance, told to skip the
    // assignment it already made (v9).
    let mut new = RawConnection::connect(address);
    let joined: JoinGroupResponse = new.call(
        ApiKey::JoinGroup,
        9,
        &join(group, "", Some("host-1"), &["range"]),
    );
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1, "no rebalance");
    assert!(joined.skip_assignment);
    let new_id = joined.member_id.to_string();
    assert_ne!(new_id, old_id);
    assert_eq!(
        heartbeat(&mut old, group, 1, &old_id, Some("host-1")),
        code(ResponseError::FencedInstanceId)
    );
    assert_eq!(heartbeat(&mut new, group, 1, &new_id, Some("host-1")), 0);
    let synced = sync(&mut new, group, 1, &new_id, &[]);
    assert_eq!(synced.assignment.as_ref(), b"mine", "its assignment kept");
    // A static member leaves by instance id.
    let left: LeaveGroupResponse = new.call(
        ApiKey::LeaveGroup,
        4,
        &LeaveGroupRequest::default()
            .with_group_id(group_id(group))
            .with_members(vec![MemberIdentity::default()
                .with_member_id(text(&old_id))
                .with_group_instance_id(Some(text("host-1")))]),
    );
    assert_eq!(
        left.members[0].error_code,
        code(ResponseError::FencedInstanceId),
        "the old id cannot leave for the new one"
    );
    let left: LeaveGroupResponse = new.call(
        ApiKey::LeaveGroup,
        4,
        &LeaveGroupRequest::default()
            .with_group_id(group_id(group))
            .with_members(vec![MemberIdentity::default()
                .with_member_id(text(""))
                .with_group_instance_id(Some(text("host-1")))]),
    );
    assert_eq!(left.members[0].error_code, 0);
    assert_eq!(
        heartbeat(&mut new, group, 1, &new_id, Some("host-1")),
        code(ResponseError::UnknownMemberId)
    );
    let (_connection, _member, generation) = join_alone(address, group);
    assert_eq!(generation, 3, "generations go on after the group emptied");
}

#[test]
fn a_stopping_broker_answers_a_waiting_join_and_exits() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let config = data.with_extension("toml");
    std::fs::write(&config, "[groups]\ngroup_initial_rebalance_delay_ms = 0\n").unwrap();
    let mut broker = Broker::start(&data, 2, &["--config", config.to_str().unwrap()]);
    let group = "stopping";
    let (address, _) = coordinator(&broker, group);
    // The first member never rejoins, so the second one's JoinGroup waits for the rebalance
    // timeout (a minute here) unless the broker answers it when it stops.
    let (_first, _first_id, _) = join_alone(address, group);
    let waiting = std::thread::spawn(move || {
        let mut connection = RawConnection::connect(address);
        let request = join(group, "", None, &["range"]).with_rebalance_timeout_ms(60_000);
        let answered: JoinGroupResponse = connection.call(ApiKey::JoinGroup, 3, &request);
        answered.error_code
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    broker.stop();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the broker waited for the rebalance: {:?}",
        started.elapsed()
    );
    assert_eq!(
        waiting.join().unwrap(),
        code(ResponseError::NotCoordinator),
        "the waiting member is sent to find the coordinator again"
    );
}

#[test]
fn oversized_member_metadata_and_assignments_are_refused() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let config = data.with_extension("toml");
    std::fs::write(
        &config,
        "[groups]\ngroup_initial_rebalance_delay_ms = 0\ngroup_member_metadata_bytes_max = 1024\n",
    )
    .unwrap();
    let broker = Broker::start(&data, 2, &["--config", config.to_str().unwrap()]);
    let group = "oversized";
    let (address, _) = coordinator(&broker, group);
    let mut connection = RawConnection::connect(address);
    let mut request = join(group, "", None, &["range"]);
    request.protocols[0].metadata = Bytes::from(vec![7u8; 2048]);
    let refused: JoinGroupResponse = connection.call(ApiKey::JoinGroup, 9, &request);
    assert_eq!(
        refused.error_code,
        code(ResponseError::InvalidRequest),
        "metadata over group_member_metadata_bytes_max"
    );
    // A refused join leaves no group behind.
    let described: DescribeGroupsResponse = connection.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![group_id(group)]),
    );
    assert_eq!(described.groups[0].group_state.as_str(), "Dead");
    // A leader's assignment over the limit is refused; the group can still be synced.
    let (mut leader, leader_id, generation) = join_alone(address, group);
    let too_big = vec![1u8; 2048];
    let refused = sync(
        &mut leader,
        group,
        generation,
        &leader_id,
        &[(&leader_id, &too_big)],
    );
    assert_eq!(refused.error_code, code(ResponseError::InvalidRequest));
    let synced = sync(
        &mut leader,
        group,
        generation,
        &leader_id,
        &[(&leader_id, b"fits")],
    );
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment.as_ref(), b"fits");
    assert!(!broker.log().contains("panicked"));
}
