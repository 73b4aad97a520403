//! DescribeCluster: every shard as a broker, shard 0 as the controller.

use bytes::BytesMut;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

use super::{shard_brokers, str_bytes};

/// Kafka's value for "authorized operations not requested".
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Answers DescribeCluster.
pub fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: DescribeClusterRequest = decode_body(request)?;
    let metadata = context.metadata();
    let brokers = shard_brokers(context)
        .map(|(broker_id, host, port)| {
            DescribeClusterBroker::default()
                .with_broker_id(broker_id)
                .with_host(host)
                .with_port(port)
        })
        .collect();
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(metadata.cluster_id.clone()))
        .with_controller_id(BrokerId(0))
        .with_brokers(brokers)
        .with_endpoint_type(body.endpoint_type);
    // There are no ACLs yet, so there are no authorized operations to report, asked or not.
    response.cluster_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    encode_response(
        ApiKey::DescribeCluster,
        request.api_version,
        request.header.correlation_id,
        &response,
    )
}
