//! Committed offsets from the client side: find a group's coordinator (FindCoordinator), then
//! OffsetCommit and OffsetFetch there. A coordinator that moved or is loading
//! (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS) is looked up
//! again, at most `COORDINATOR_ATTEMPTS_MAX` times; other errors are the caller's.
//!
//! The group commits as a group without members (generation -1, no member id), as Kafka's
//! clients do for partitions they assign themselves.

use std::time::Duration;

use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorResponse, GroupId, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::admin::topic_name;
use super::cluster::Cluster;
use super::connection::Connection;
use super::error::{ClientError, ClientResult};

/// Lookups of a coordinator one call makes at most.
pub const COORDINATOR_ATTEMPTS_MAX: u32 = 5;
/// Wait between two lookups.
const COORDINATOR_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// FindCoordinator's key type for a consumer group.
const KEY_TYPE_GROUP: i8 = 0;

/// A committed position: the next offset to read, and the application's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    /// The next offset the group reads.
    pub offset: i64,
    /// Free text stored with the offset.
    pub metadata: Option<String>,
}

fn coordinator_moved(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Broker {
            error: ResponseError::NotCoordinator
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::CoordinatorLoadInProgress,
            ..
        }
    )
}

/// A connection to `group`'s coordinator.
async fn coordinator(cluster: &Cluster, group: &str) -> ClientResult<Connection> {
    let (node, host, port) = find_coordinator(cluster, group).await?;
    cluster.connection_at(node, &host, port).await
}

/// Where `group`'s coordinator is: its node id, host and port.
pub(crate) async fn find_coordinator(
    cluster: &Cluster,
    group: &str,
) -> ClientResult<(i32, String, i32)> {
    let connection = cluster.any_connection().await?;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(KEY_TYPE_GROUP);
    let (_, response): (i16, FindCoordinatorResponse) =
        connection.call(ApiKey::FindCoordinator, &request).await?;
    ClientError::check(
        format!("find the coordinator of group {group}"),
        response.error_code,
        response.error_message.as_deref(),
    )?;
    Ok((response.node_id.0, response.host.to_string(), response.port))
}

/// Runs `call` against the coordinator, looking it up again while it has moved.
async fn with_coordinator<T, F, Fut>(cluster: &Cluster, group: &str, call: F) -> ClientResult<T>
where
    F: Fn(Connection) -> Fut,
    Fut: std::future::Future<Output = ClientResult<T>>,
{
    let mut attempt = 1;
    loop {
        let outcome = match coordinator(cluster, group).await {
            Ok(connection) => call(connection).await,
            Err(error) => Err(error),
        };
        match outcome {
            Err(error) if coordinator_moved(&error) && attempt < COORDINATOR_ATTEMPTS_MAX => {
                attempt += 1;
                glommio::timer::sleep(COORDINATOR_RETRY_BACKOFF).await;
            }
            outcome => return outcome,
        }
    }
}

/// Commits offsets for `group`; each partition's error, if any, fails the call.
pub async fn commit_offsets(
    cluster: &Cluster,
    group: &str,
    offsets: &[(&str, i32, OffsetAndMetadata)],
) -> ClientResult<()> {
    let request = commit_request(group, offsets, -1, "");
    with_coordinator(cluster, group, |connection| {
        let request = &request;
        async move { send_commit(&connection, group, request).await }
    })
    .await
}

/// Commits offsets as member `member_id` of generation `generation`, on `connection` (the
/// member's own connection to the coordinator).
pub(crate) async fn commit_offsets_as_member(
    connection: &Connection,
    group: &str,
    member: (&str, i32),
    offsets: &[(&str, i32, OffsetAndMetadata)],
) -> ClientResult<()> {
    let request = commit_request(group, offsets, member.1, member.0);
    send_commit(connection, group, &request).await
}

fn commit_request(
    group: &str,
    offsets: &[(&str, i32, OffsetAndMetadata)],
    generation: i32,
    member_id: &str,
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, committed) in offsets {
        let entry = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(committed.offset)
            .with_committed_leader_epoch(-1)
            .with_committed_metadata(committed.metadata.clone().map(StrBytes::from_string));
        match topics
            .iter_mut()
            .find(|known| known.name.0.as_str() == *topic)
        {
            Some(known) => known.partitions.push(entry),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_retention_time_ms(-1)
        .with_topics(topics)
}

async fn send_commit(
    connection: &Connection,
    group: &str,
    request: &OffsetCommitRequest,
) -> ClientResult<()> {
    let (_, response): (i16, OffsetCommitResponse) =
        connection.call(ApiKey::OffsetCommit, request).await?;
    for topic in &response.topics {
        for partition in &topic.partitions {
            ClientError::check(
                format!(
                    "commit {}-{} for group {group}",
                    topic.name.0.as_str(),
                    partition.partition_index
                ),
                partition.error_code,
                None,
            )?;
        }
    }
    Ok(())
}

/// The committed offsets of `group` for `partitions`, in their order; `None` where the group
/// has committed nothing.
pub async fn committed_offsets(
    cluster: &Cluster,
    group: &str,
    partitions: &[(&str, i32)],
) -> ClientResult<Vec<Option<OffsetAndMetadata>>> {
    let mut topics: Vec<OffsetFetchRequestTopic> = Vec::new();
    for (topic, partition) in partitions {
        match topics
            .iter_mut()
            .find(|known| known.name.0.as_str() == *topic)
        {
            Some(known) => known.partition_indexes.push(*partition),
            None => topics.push(
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(vec![*partition]),
            ),
        }
    }
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(topics));
    with_coordinator(cluster, group, |connection| {
        let request = &request;
        async move {
            let (_, response): (i16, OffsetFetchResponse) =
                connection.call(ApiKey::OffsetFetch, request).await?;
            let context = format!("fetch the committed offsets of group {group}");
            ClientError::check(&context, response.error_code, None)?;
            let mut found = Vec::with_capacity(partitions.len());
            for (topic, partition) in partitions {
                let answer = response
                    .topics
                    .iter()
                    .filter(|known| known.name.0.as_str() == *topic)
                    .flat_map(|known| known.partitions.iter())
                    .find(|known| known.partition_index == *partition)
                    .ok_or_else(|| {
                        connection.protocol_error(format!(
                            "OffsetFetch response without {topic}-{partition}"
                        ))
                    })?;
                ClientError::check(&context, answer.error_code, None)?;
                found.push((answer.committed_offset >= 0).then(|| {
                    OffsetAndMetadata {
                        offset: answer.committed_offset,
                        metadata: answer
                            .metadata
                            .as_ref()
                            .map(|text| text.to_string())
                            .filter(|text| !text.is_empty()),
                    }
                }));
            }
            Ok(found)
        }
    })
    .await
}
