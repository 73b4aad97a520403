//! Requests that Kafka accepts although they are not byte-perfect, and StreamBus must accept
//! too: bytes after a request body (Kafka's parsers read the fields a version defines and never
//! look at the rest) and tagged fields the broker does not know, in headers and bodies (Kafka
//! skips them). Each case here was found by a real client.

mod broker_support;

use broker_support::{tempdir, Broker, RawConnection};
use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Sends `payload` (header and body, no length) as one frame and decodes the response at
/// `api_key` `version`, checking the correlation id.
fn call_raw<T: Decodable>(
    connection: &mut RawConnection,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    payload: &[u8],
) -> T {
    let mut frame = BytesMut::with_capacity(payload.len() + 4);
    frame.put_i32(payload.len() as i32);
    frame.extend_from_slice(payload);
    connection.send_raw(&frame);
    connection.receive(api_key, version, correlation_id)
}

#[test]
fn librdkafka_all_topics_metadata_v12_with_stray_bytes_is_answered() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let mut connection = RawConnection::connect(broker.bootstrap);
    // The exact request librdkafka 2.12-2.16 sends for "all topics" at v12: the header (key 3,
    // version 12, correlation id 3, client id "rdkafka", no tags), then a compact-array count
    // of 0 (null: all topics) followed by the three other bytes of the int32 it reserved for
    // the count, then allow_auto_topic_creation, include_topic_authorized_operations, tags.
    let payload = hex("0003000c00000003000772646b61666b610000000000010000");
    let response: MetadataResponse = call_raw(&mut connection, ApiKey::Metadata, 12, 3, &payload);
    assert_eq!(response.brokers.len(), 2, "one broker per shard");
    // The connection is still open and usable.
    let response: MetadataResponse =
        connection.call(ApiKey::Metadata, 12, &MetadataRequest::default());
    assert_eq!(response.brokers.len(), 2);
    assert!(
        !broker.log().contains("closing connection"),
        "{}",
        broker.log()
    );
}

#[test]
fn trailing_bytes_and_unknown_tagged_fields_are_ignored_for_every_api() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let mut connection = RawConnection::connect(broker.bootstrap);
    let client_id = Some(StrBytes::from_static_str("tolerance-test"));

    // A flexible header (v2) with an unknown tagged field, ApiVersions v3 with an unknown
    // tagged field in its body, and junk after the body.
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(3)
        .with_correlation_id(41)
        .with_client_id(client_id.clone())
        .with_unknown_tagged_field(7, bytes::Bytes::from_static(b"future"));
    let body = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("test"))
        .with_client_software_version(StrBytes::from_static_str("1"))
        .with_unknown_tagged_field(99, bytes::Bytes::from_static(&[1, 2, 3]));
    let mut payload = BytesMut::new();
    header.encode(&mut payload, 2).unwrap();
    body.encode(&mut payload, 3).unwrap();
    payload.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let response: ApiVersionsResponse =
        call_raw(&mut connection, ApiKey::ApiVersions, 3, 41, &payload);
    assert_eq!(response.error_code, 0);

    // Every other API, at its lowest and highest advertised version, with a trailing junk
    // byte after a default body: each is answered, none closes the connection.
    let mut correlation_id = 100;
    for range in response.api_keys.iter() {
        let api_key = ApiKey::try_from(range.api_key).unwrap();
        for version in [range.min_version, range.max_version] {
            correlation_id += 1;
            let header = RequestHeader::default()
                .with_request_api_key(range.api_key)
                .with_request_api_version(version)
                .with_correlation_id(correlation_id)
                .with_client_id(client_id.clone());
            let mut payload = BytesMut::new();
            header
                .encode(&mut payload, api_key.request_header_version(version))
                .unwrap();
            if !encode_default_body(api_key, version, &mut payload) {
                continue;
            }
            payload.put_u8(0x5a);
            let mut frame = BytesMut::new();
            frame.put_i32(payload.len() as i32);
            frame.extend_from_slice(&payload);
            connection.send_raw(&frame);
            let frame = connection.read_frame().unwrap_or_else(|| {
                panic!(
                    "{api_key:?} v{version} with a trailing byte closed the connection; log:\n{}",
                    broker.log()
                )
            });
            let mut frame = frame;
            let header_version = if api_key == ApiKey::ApiVersions {
                0
            } else {
                api_key.response_header_version(version)
            };
            let header = ResponseHeader::decode(&mut frame, header_version).unwrap();
            assert_eq!(
                header.correlation_id, correlation_id,
                "{api_key:?} v{version}"
            );
        }
    }
    assert!(
        !broker.log().contains("closing connection"),
        "{}",
        broker.log()
    );
}

/// Encodes a default body of `api_key` at `version`, one the broker answers (a Produce with
/// acks=1 and no topics, a FindCoordinator for one group, ...). Returns false for an API this
/// test has no body for.
fn encode_default_body(api_key: ApiKey, version: i16, payload: &mut BytesMut) -> bool {
    let encoded = match api_key {
        ApiKey::Produce => ProduceRequest::default()
            .with_acks(1)
            .encode(payload, version),
        ApiKey::Fetch => FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .encode(payload, version),
        ApiKey::ListOffsets => ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .encode(payload, version),
        ApiKey::Metadata => MetadataRequest::default().encode(payload, version),
        ApiKey::OffsetFetch => OffsetFetchRequest::default().encode(payload, version),
        ApiKey::FindCoordinator => {
            let request = if version >= 4 {
                FindCoordinatorRequest::default()
                    .with_coordinator_keys(vec![StrBytes::from_static_str("group")])
            } else {
                FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("group"))
            };
            request.encode(payload, version)
        }
        ApiKey::ApiVersions => ApiVersionsRequest::default().encode(payload, version),
        ApiKey::CreateTopics => CreateTopicsRequest::default().encode(payload, version),
        ApiKey::DeleteTopics => DeleteTopicsRequest::default().encode(payload, version),
        ApiKey::DescribeConfigs => DescribeConfigsRequest::default().encode(payload, version),
        ApiKey::CreatePartitions => CreatePartitionsRequest::default().encode(payload, version),
        ApiKey::DescribeCluster => DescribeClusterRequest::default().encode(payload, version),
        _ => return false,
    };
    encoded.expect("encode a default body");
    true
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&text[index..index + 2], 16).expect("hex digit"))
        .collect()
}
