//! Routes a parsed request to its handler. Every API listed in
//! [`crate::protocol::versions::SUPPORTED_APIS`] has a handler here, and nothing else does.

use std::net::SocketAddr;

use bytes::BytesMut;
use kafka_protocol::messages::ApiKey;

use crate::protocol::header::Request;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

use super::handlers;

/// Runs the handler of `request`: a response frame, nothing (produce with acks=0), or an
/// error that closes the connection.
pub async fn dispatch(
    context: &ShardContext,
    request: Request,
    peer: Option<SocketAddr>,
) -> Result<Option<BytesMut>, ProtocolError> {
    match request.api_key {
        ApiKey::ApiVersions => handlers::api_versions::handle(&request).map(Some),
        ApiKey::Metadata => handlers::metadata::handle(context, &request)
            .await
            .map(Some),
        ApiKey::Produce => handlers::produce::handle(context, &request).await,
        ApiKey::Fetch => handlers::fetch::handle(context, &request).await.map(Some),
        ApiKey::ListOffsets => handlers::list_offsets::handle(context, &request)
            .await
            .map(Some),
        ApiKey::CreateTopics => handlers::create_topics::handle(context, &request)
            .await
            .map(Some),
        ApiKey::DeleteTopics => handlers::delete_topics::handle(context, &request)
            .await
            .map(Some),
        ApiKey::CreatePartitions => handlers::create_partitions::handle(context, &request)
            .await
            .map(Some),
        ApiKey::DescribeConfigs => handlers::describe_configs::handle(context, &request).map(Some),
        ApiKey::OffsetCommit => handlers::offset_commit::handle(context, &request)
            .await
            .map(Some),
        ApiKey::OffsetFetch => handlers::offset_fetch::handle(context, &request).map(Some),
        ApiKey::OffsetDelete => handlers::offset_delete::handle(context, &request)
            .await
            .map(Some),
        ApiKey::FindCoordinator => handlers::find_coordinator::handle(context, &request).map(Some),
        ApiKey::ListGroups => handlers::list_groups::handle(context, &request).map(Some),
        ApiKey::DescribeGroups => handlers::describe_groups::handle(context, &request).map(Some),
        ApiKey::DeleteGroups => handlers::delete_groups::handle(context, &request)
            .await
            .map(Some),
        ApiKey::JoinGroup => handlers::join_group::handle(context, &request, peer)
            .await
            .map(Some),
        ApiKey::SyncGroup => handlers::sync_group::handle(context, &request)
            .await
            .map(Some),
        ApiKey::Heartbeat => handlers::heartbeat::handle(context, &request).map(Some),
        ApiKey::LeaveGroup => handlers::leave_group::handle(context, &request).map(Some),
        ApiKey::ConsumerGroupHeartbeat => {
            handlers::consumer_group_heartbeat::handle(context, &request, peer).map(Some)
        }
        ApiKey::ConsumerGroupDescribe => {
            handlers::consumer_group_describe::handle(context, &request).map(Some)
        }
        ApiKey::InitProducerId => handlers::init_producer_id::handle(context, &request)
            .await
            .map(Some),
        ApiKey::DescribeCluster => handlers::describe_cluster::handle(context, &request).map(Some),
        other => Err(ProtocolError::UnsupportedApi {
            api_key: other as i16,
            api_version: request.api_version,
        }),
    }
}

/// The KIP-511 answer to ApiVersions at a version we do not know.
pub fn unsupported_api_versions(correlation_id: i32) -> Result<BytesMut, ProtocolError> {
    handlers::api_versions::unsupported_version(correlation_id)
}
