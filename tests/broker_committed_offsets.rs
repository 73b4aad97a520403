//! Committed offsets (OffsetCommit, OffsetFetch, OffsetDelete) against the real broker: raw
//! requests at every version for the exact answers, librdkafka (the `rdkafka` crate) for what
//! applications do, and restarts (SIGTERM and SIGKILL) that must keep every answered commit.

mod broker_support;

use std::time::{Duration, Instant};

use broker_support::{create_topic, tempdir, topic_name, Broker, RawConnection};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

const TOPIC: &str = "commits";

fn group_id(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.to_string()))
}

fn commit_request(
    group: &str,
    generation: i32,
    partitions: &[(i32, i64, &str)],
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(generation)
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&(partition, offset, metadata)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(partition)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(-1)
                            .with_committed_metadata(Some(StrBytes::from_string(
                                metadata.to_string(),
                            )))
                    })
                    .collect(),
            )])
}

fn commit_errors(
    connection: &mut RawConnection,
    version: i16,
    request: &OffsetCommitRequest,
) -> Vec<i16> {
    let response: OffsetCommitResponse = connection.call(ApiKey::OffsetCommit, version, request);
    response
        .topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|partition| partition.error_code)
        })
        .collect()
}

/// (partition, offset, metadata) of every partition OffsetFetch v1..=7 returns for `group`
/// with topics null (v2+) or the partitions asked.
fn fetch(
    connection: &mut RawConnection,
    version: i16,
    group: &str,
    asked: Option<Vec<i32>>,
) -> Vec<(i32, i64, String)> {
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(asked.map(|partitions| {
            vec![OffsetFetchRequestTopic::default()
                .with_name(topic_name(TOPIC))
                .with_partition_indexes(partitions)]
        }));
    let response: OffsetFetchResponse = connection.call(ApiKey::OffsetFetch, version, &request);
    assert_eq!(response.error_code, 0, "v{version}");
    response
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|partition| {
                assert_eq!(partition.error_code, 0);
                (
                    partition.partition_index,
                    partition.committed_offset,
                    partition
                        .metadata
                        .as_ref()
                        .map(|text| text.to_string())
                        .unwrap_or_default(),
                )
            })
        })
        .collect()
}

#[test]
fn commits_round_trip_at_every_version_with_exact_errors_and_survive_restarts() {
    let directory = tempdir();
    let data = directory.path().join("data");
    let mut broker = Broker::start(&data, 2, &[]);
    let group = "raw-committer";
    let coordinator = streambus::cluster::coordinator_shard(group, 2) as usize;
    let mut connection = RawConnection::connect(broker.shard_address(coordinator));
    let mut elsewhere = RawConnection::connect(broker.shard_address(1 - coordinator));
    create_topic(&mut connection, TOPIC, 3);

    for version in 2..=9 {
        let offset = 100 + i64::from(version);
        let request = commit_request(group, -1, &[(0, offset, "meta-0"), (2, offset * 2, "")]);
        assert_eq!(
            commit_errors(&mut connection, version, &request),
            [0, 0],
            "v{version}"
        );
        for fetch_version in [1, 5, 7] {
            assert_eq!(
                fetch(&mut connection, fetch_version, group, Some(vec![0, 1, 2])),
                [
                    (0, offset, "meta-0".to_string()),
                    (1, -1, String::new()),
                    (2, offset * 2, String::new())
                ],
                "commit v{version}, fetch v{fetch_version}"
            );
        }
        assert_eq!(
            fetch(&mut connection, 7, group, None),
            [
                (0, offset, "meta-0".to_string()),
                (2, offset * 2, String::new())
            ],
            "topics null: every committed partition"
        );
    }
    // Batched groups (v8+) see the same.
    let request = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(group_id(group))
            .with_topics(None),
    ]);
    let response: OffsetFetchResponse = connection.call(ApiKey::OffsetFetch, 9, &request);
    let partitions = &response.groups[0].topics[0].partitions;
    assert_eq!(
        partitions
            .iter()
            .map(|partition| (partition.partition_index, partition.committed_offset))
            .collect::<Vec<_>>(),
        [(0, 109), (2, 218)]
    );

    // The errors, each for its own reason.
    let code = |error: ResponseError| error.code();
    assert_eq!(
        commit_errors(&mut elsewhere, 9, &commit_request(group, -1, &[(0, 1, "")])),
        [code(ResponseError::NotCoordinator)]
    );
    assert_eq!(
        commit_errors(&mut connection, 9, &commit_request(group, 3, &[(0, 1, "")])),
        [code(ResponseError::UnknownMemberId)],
        "the group has no members: a generation names none"
    );
    assert_eq!(
        commit_errors(
            &mut connection,
            9,
            &commit_request(group, -1, &[(7, 1, "")])
        ),
        [code(ResponseError::UnknownTopicOrPartition)]
    );
    let long = "m".repeat(4097);
    assert_eq!(
        commit_errors(
            &mut connection,
            9,
            &commit_request(group, -1, &[(0, 1, &long), (1, 5, "")])
        ),
        [code(ResponseError::OffsetMetadataTooLarge), 0],
        "one bad partition does not fail the others"
    );
    assert_eq!(
        commit_errors(&mut connection, 9, &commit_request("", -1, &[(0, 1, "")])),
        [code(ResponseError::InvalidGroupId)]
    );
    assert_eq!(
        fetch(&mut connection, 7, group, Some(vec![0, 1])),
        [(0, 109, "meta-0".to_string()), (1, 5, String::new())],
        "refused commits changed nothing"
    );

    // Both kinds of restart keep every answered commit.
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        broker.stop_with(signal);
        broker = Broker::start(&data, 2, &[]);
        let mut connection = RawConnection::connect(broker.shard_address(coordinator));
        assert_eq!(
            fetch(&mut connection, 7, group, None),
            [
                (0, 109, "meta-0".to_string()),
                (1, 5, String::new()),
                (2, 218, String::new())
            ],
            "after signal {signal}"
        );
    }

    // OffsetDelete removes them, durably.
    let mut connection = RawConnection::connect(broker.shard_address(coordinator));
    let delete = OffsetDeleteRequest::default()
        .with_group_id(group_id(group))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0),
                OffsetDeleteRequestPartition::default().with_partition_index(2),
            ])]);
    let response: OffsetDeleteResponse = connection.call(ApiKey::OffsetDelete, 0, &delete);
    assert_eq!(response.error_code, 0);
    assert!(response.topics[0]
        .partitions
        .iter()
        .all(|partition| partition.error_code == 0));
    let unknown = OffsetDeleteRequest::default().with_group_id(group_id("never-committed"));
    let coordinator_of_unknown =
        streambus::cluster::coordinator_shard("never-committed", 2) as usize;
    let mut other = RawConnection::connect(broker.shard_address(coordinator_of_unknown));
    let response: OffsetDeleteResponse = other.call(ApiKey::OffsetDelete, 0, &unknown);
    assert_eq!(response.error_code, ResponseError::GroupIdNotFound.code());
    broker.stop_with(libc::SIGKILL);
    let broker = Broker::start(&data, 2, &[]);
    let mut connection = RawConnection::connect(broker.shard_address(coordinator));
    assert_eq!(
        fetch(&mut connection, 7, group, None),
        [(1, 5, String::new())],
        "deleted offsets stay deleted across a crash"
    );
}

#[test]
fn many_commits_rewrite_the_offsets_log_and_keep_the_latest() {
    let directory = tempdir();
    let data = directory.path().join("data");
    // A small rewrite threshold, so a few thousand commits rewrite the log several times.
    let config = directory.path().join("broker.toml");
    std::fs::write(&config, "[groups]\noffsets_rewrite_bytes_min = 65536\n").expect("config");
    let config_flag = config.to_str().expect("utf-8 path");
    let mut broker = Broker::start(&data, 2, &["--config", config_flag]);
    let group = "rewriter";
    let coordinator = streambus::cluster::coordinator_shard(group, 2) as usize;
    let mut connection = RawConnection::connect(broker.shard_address(coordinator));
    create_topic(&mut connection, TOPIC, 3);
    for round in 0..3000i64 {
        let request = commit_request(group, -1, &[(0, round, "x"), (1, round * 2, "y")]);
        assert_eq!(commit_errors(&mut connection, 9, &request), [0, 0]);
    }
    let partition = streambus::cluster::offsets_partition(group);
    let root = data.join("groups").join(format!("offsets-{partition:02}"));
    let current = std::fs::read_to_string(root.join("CURRENT")).expect("a rewrite happened");
    assert!(current.trim().parse::<u64>().expect("generation") >= 1);
    let log_bytes: u64 = walk_bytes(&root);
    assert!(
        log_bytes < 4 << 20,
        "the offsets log stays small: {log_bytes} bytes"
    );
    broker.stop_with(libc::SIGKILL);
    let broker = Broker::start(&data, 2, &["--config", config_flag]);
    let mut connection = RawConnection::connect(broker.shard_address(coordinator));
    assert_eq!(
        fetch(&mut connection, 7, group, None),
        [(0, 2999, "x".to_string()), (1, 5998, "y".to_string())]
    );
}

fn walk_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .expect("list")
        .flatten()
        .map(|entry| {
            let metadata = entry.metadata().expect("stat");
            if metadata.is_dir() {
                walk_bytes(&entry.path())
            } else {
                metadata.len()
            }
        })
        .sum()
}

#[test]
fn a_librdkafka_consumer_that_assigns_resumes_from_its_commits_after_a_crash() {
    let directory = tempdir();
    let data = directory.path().join("data");
    let mut broker = Broker::start(&data, 2, &[]);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("acks", "all")
        .create()
        .expect("producer");
    create_topic(&mut RawConnection::connect(broker.bootstrap), "resume", 2);
    for index in 0..60 {
        let key = format!("key-{index}");
        let value = format!("value-{index}");
        let record = FutureRecord::to("resume")
            .key(&key)
            .payload(&value)
            .partition(index % 2);
        futures_lite::future::block_on(producer.send(record, Duration::from_secs(10)))
            .map_err(|(error, _)| error)
            .expect("delivered");
    }
    let consumer = |bootstrap: &str| -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "resuming-app")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer")
    };
    let assignment = || {
        let mut assignment = TopicPartitionList::new();
        for partition in 0..2 {
            assignment
                .add_partition_offset("resume", partition, Offset::Stored)
                .expect("assign");
        }
        assignment
    };
    // Consume 20 messages, commit what was consumed (with metadata), stop.
    let first = consumer(&broker.bootstrap_servers());
    first.assign(&assignment()).expect("assign");
    let mut next = [0i64; 2];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut consumed = 0;
    while consumed < 20 {
        assert!(Instant::now() < deadline, "consumed {consumed} of 20");
        if let Some(message) = first.poll(Duration::from_millis(200)) {
            let message = message.expect("message");
            next[message.partition() as usize] = message.offset() + 1;
            consumed += 1;
        }
    }
    let mut commits = TopicPartitionList::new();
    for (partition, &offset) in next.iter().enumerate() {
        commits
            .add_partition_offset("resume", partition as i32, Offset::Offset(offset))
            .expect("offset");
    }
    if let Some(mut element) = commits.find_partition("resume", 0) {
        element.set_metadata("checkpoint-0");
    }
    first
        .commit(&commits, CommitMode::Sync)
        .expect("commit is stored");
    let committed = first
        .committed_offsets(assignment(), Duration::from_secs(10))
        .expect("committed offsets");
    let element = committed.find_partition("resume", 0).expect("partition 0");
    assert_eq!(element.offset(), Offset::Offset(next[0]));
    assert_eq!(element.metadata(), "checkpoint-0", "metadata round-trips");
    drop(first);

    // The broker crashes; a new consumer of the group resumes exactly where the commit was.
    broker.stop_with(libc::SIGKILL);
    broker = Broker::start(&data, 2, &[]);
    let second = consumer(&broker.bootstrap_servers());
    second.assign(&assignment()).expect("assign");
    let mut first_seen: [Option<i64>; 2] = [None, None];
    let mut rest = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while rest < 40 {
        assert!(Instant::now() < deadline, "consumed {rest} of the 40 left");
        if let Some(message) = second.poll(Duration::from_millis(200)) {
            let message = message.expect("message");
            first_seen[message.partition() as usize].get_or_insert(message.offset());
            rest += 1;
        }
    }
    assert_eq!(
        first_seen,
        [Some(next[0]), Some(next[1])],
        "resumed at the commits"
    );
    if let Some(Ok(extra)) = second.poll(Duration::from_millis(300)) {
        panic!("a message beyond the 60 at offset {}", extra.offset());
    }
}

#[test]
fn limits_refuse_commits_beyond_them_and_idle_groups_expire() {
    let directory = tempdir();
    let config = directory.path().join("broker.toml");
    std::fs::write(
        &config,
        "[groups]\ngroups_per_shard_max = 2\noffsets_per_group_max = 2\noffsets_per_shard_max = 3\n",
    )
    .expect("config");
    let config_flag = config.to_str().expect("utf-8 path");
    let broker = Broker::start(
        &directory.path().join("data"),
        2,
        &["--config", config_flag],
    );
    // Three groups that shard 0 coordinates.
    let groups: Vec<String> = (0..)
        .map(|index| format!("limited-{index}"))
        .filter(|group| streambus::cluster::coordinator_shard(group, 2) == 0)
        .take(3)
        .collect();
    let mut connection = RawConnection::connect(broker.shard_address(0));
    create_topic(&mut connection, TOPIC, 3);
    let refused = ResponseError::InvalidCommitOffsetSize.code();
    assert_eq!(
        commit_errors(
            &mut connection,
            9,
            &commit_request(&groups[0], -1, &[(0, 1, ""), (1, 1, "")])
        ),
        [0, 0]
    );
    assert_eq!(
        commit_errors(
            &mut connection,
            9,
            &commit_request(&groups[0], -1, &[(2, 1, "")])
        ),
        [refused],
        "a third partition for one group is over offsets_per_group_max"
    );
    assert_eq!(
        commit_errors(
            &mut connection,
            9,
            &commit_request(&groups[0], -1, &[(1, 9, "")])
        ),
        [0],
        "committing a partition the group has already is not growth"
    );
    assert_eq!(
        commit_errors(
            &mut connection,
            9,
            &commit_request(&groups[1], -1, &[(0, 1, "")])
        ),
        [0]
    );
    assert_eq!(
        commit_errors(
            &mut connection,
            9,
            &commit_request(&groups[2], -1, &[(0, 1, "")])
        ),
        [refused],
        "a third group on the shard is over groups_per_shard_max"
    );
    assert_eq!(
        commit_errors(
            &mut connection,
            9,
            &commit_request(&groups[1], -1, &[(1, 1, "")])
        ),
        [refused],
        "a fourth commit on the shard is over offsets_per_shard_max"
    );
    drop(broker);

    // Expiry: with a retention of 1 ms, an idle group's offsets go at the next pass.
    let directory = tempdir();
    let config = directory.path().join("broker.toml");
    std::fs::write(
        &config,
        "[groups]\noffsets_retention_ms = 1\noffsets_retention_check_interval_ms = 100\n",
    )
    .expect("config");
    let config_flag = config.to_str().expect("utf-8 path");
    let broker = Broker::start(
        &directory.path().join("data"),
        2,
        &["--config", config_flag],
    );
    let group = "expiring";
    let coordinator = streambus::cluster::coordinator_shard(group, 2) as usize;
    let mut connection = RawConnection::connect(broker.shard_address(coordinator));
    create_topic(&mut connection, TOPIC, 3);
    assert_eq!(
        commit_errors(
            &mut connection,
            9,
            &commit_request(group, -1, &[(0, 7, "")])
        ),
        [0]
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fetch(&mut connection, 7, group, None).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the idle group's offsets never expired"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        fetch(&mut connection, 7, group, Some(vec![0])),
        [(0, -1, String::new())]
    );

    // A group with a member keeps its offsets however old they are (KIP-211); once the member
    // leaves, the empty group's offsets expire at the next pass.
    let group = "with-a-member";
    let coordinator = streambus::cluster::coordinator_shard(group, 2) as usize;
    let mut member = RawConnection::connect(broker.shard_address(coordinator));
    let join = JoinGroupRequest::default()
        .with_group_id(group_id(group))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![
            kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range")),
        ]);
    // v3: the member id comes with the generation (no MEMBER_ID_REQUIRED round).
    let joined: JoinGroupResponse = member.call(ApiKey::JoinGroup, 3, &join);
    assert_eq!(joined.error_code, 0);
    let member_id = joined.member_id.to_string();
    let synced: SyncGroupResponse = member.call(
        ApiKey::SyncGroup,
        3,
        &SyncGroupRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id(joined.generation_id)
            .with_member_id(StrBytes::from_string(member_id.clone())),
    );
    assert_eq!(synced.error_code, 0);
    let committed: OffsetCommitResponse = member.call(
        ApiKey::OffsetCommit,
        9,
        &commit_request(group, joined.generation_id, &[(0, 11, "")])
            .with_member_id(StrBytes::from_string(member_id.clone())),
    );
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    // Ten expiry passes.
    std::thread::sleep(Duration::from_millis(1_000));
    assert_eq!(
        fetch(&mut member, 7, group, Some(vec![0])),
        [(0, 11, String::new())],
        "a group with members keeps its offsets"
    );
    let left: LeaveGroupResponse = member.call(
        ApiKey::LeaveGroup,
        1,
        &LeaveGroupRequest::default()
            .with_group_id(group_id(group))
            .with_member_id(StrBytes::from_string(member_id)),
    );
    assert_eq!(left.error_code, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fetch(&mut member, 7, group, None).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the emptied group's offsets never expired"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn groups_with_commits_are_listed_described_and_deleted() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let group = "listed-group";
    let coordinator = streambus::cluster::coordinator_shard(group, 2) as usize;
    let mut connection = RawConnection::connect(broker.shard_address(coordinator));
    let mut elsewhere = RawConnection::connect(broker.shard_address(1 - coordinator));
    create_topic(&mut connection, TOPIC, 3);
    assert_eq!(
        commit_errors(
            &mut connection,
            9,
            &commit_request(group, -1, &[(0, 4, "")])
        ),
        [0]
    );
    let listed = |connection: &mut RawConnection, version: i16, states: &[&'static str]| {
        let request = ListGroupsRequest::default().with_states_filter(
            states
                .iter()
                .map(|state| StrBytes::from_static_str(state))
                .collect(),
        );
        let response: ListGroupsResponse = connection.call(ApiKey::ListGroups, version, &request);
        assert_eq!(response.error_code, 0);
        response
            .groups
            .iter()
            .map(|listed| (listed.group_id.to_string(), listed.group_state.to_string()))
            .collect::<Vec<_>>()
    };
    for version in 0..=5 {
        let found = listed(&mut connection, version, &[]);
        assert_eq!(found.len(), 1, "v{version}: {found:?}");
        assert_eq!(found[0].0, group);
        if version >= 4 {
            assert_eq!(found[0].1, "Empty");
        }
        assert!(
            listed(&mut elsewhere, version, &[]).is_empty(),
            "only the coordinator lists it"
        );
    }
    assert_eq!(
        listed(&mut connection, 5, &["empty"]).len(),
        1,
        "states compare without case"
    );
    assert!(listed(&mut connection, 5, &["Stable"]).is_empty());

    let describe = |connection: &mut RawConnection, version: i16, name: &str| {
        let request = DescribeGroupsRequest::default().with_groups(vec![group_id(name)]);
        let response: DescribeGroupsResponse =
            connection.call(ApiKey::DescribeGroups, version, &request);
        let described = &response.groups[0];
        (
            described.error_code,
            described.group_state.to_string(),
            described.members.len(),
        )
    };
    for version in 0..=6 {
        assert_eq!(
            describe(&mut connection, version, group),
            (0, "Empty".into(), 0)
        );
        assert_eq!(
            describe(&mut elsewhere, version, group).0,
            ResponseError::NotCoordinator.code()
        );
    }
    let unknown = (0..)
        .map(|index| format!("unknown-{index}"))
        .find(|name| streambus::cluster::coordinator_shard(name, 2) as usize == coordinator)
        .expect("a name");
    assert_eq!(
        describe(&mut connection, 5, &unknown),
        (0, "Dead".into(), 0)
    );
    assert_eq!(
        describe(&mut connection, 6, &unknown).0,
        ResponseError::GroupIdNotFound.code()
    );

    let delete = |connection: &mut RawConnection, version: i16| {
        let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
        let response: DeleteGroupsResponse =
            connection.call(ApiKey::DeleteGroups, version, &request);
        response.results[0].error_code
    };
    assert_eq!(
        delete(&mut elsewhere, 2),
        ResponseError::NotCoordinator.code()
    );
    assert_eq!(delete(&mut connection, 2), 0);
    assert_eq!(
        delete(&mut connection, 1),
        ResponseError::GroupIdNotFound.code()
    );
    assert!(listed(&mut connection, 5, &[]).is_empty());
    assert_eq!(
        fetch(&mut connection, 7, group, Some(vec![0])),
        [(0, -1, String::new())]
    );
}

#[test]
fn deleting_a_topic_deletes_its_committed_offsets() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let group = "topic-deleter";
    let coordinator = streambus::cluster::coordinator_shard(group, 2) as usize;
    let mut connection = RawConnection::connect(broker.shard_address(coordinator));
    create_topic(&mut connection, TOPIC, 3);
    create_topic(&mut connection, "kept", 1);
    assert_eq!(
        commit_errors(
            &mut connection,
            9,
            &commit_request(group, -1, &[(0, 40, "")])
        ),
        [0]
    );
    let kept = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name("kept"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(9)])]);
    assert_eq!(commit_errors(&mut connection, 9, &kept), [0]);
    let delete = DeleteTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topic_names(vec![topic_name(TOPIC)]);
    let response: DeleteTopicsResponse = connection.call(ApiKey::DeleteTopics, 5, &delete);
    assert_eq!(response.responses[0].error_code, 0);
    create_topic(&mut connection, TOPIC, 3);
    assert_eq!(
        fetch(&mut connection, 7, group, Some(vec![0])),
        [(0, -1, String::new())],
        "a topic created again does not inherit the old topic's commits"
    );
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(None);
    let response: OffsetFetchResponse = connection.call(ApiKey::OffsetFetch, 7, &request);
    let remaining: Vec<(String, i64)> = response
        .topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(move |partition| (topic.name.to_string(), partition.committed_offset))
        })
        .collect();
    assert_eq!(
        remaining,
        [("kept".to_string(), 9)],
        "other topics' commits stay"
    );
}
