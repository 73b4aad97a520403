//! Helpers for the broker integration tests: start the real `streambus` binary on ephemeral
//! ports with a temporary data directory, stop it with a signal, and talk raw Kafka protocol
//! to it where a test needs bytes no well-behaved client would send.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// How long the broker may take to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopped broker may take to exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// A broker process; killed if still running when dropped.
pub struct Broker {
    child: Option<Child>,
    /// The bootstrap address.
    pub bootstrap: SocketAddr,
    /// Each shard's own port.
    pub shard_ports: Vec<u16>,
    /// The data directory.
    pub data_dir: PathBuf,
    stderr_log: PathBuf,
}

/// A fresh temporary directory under the target directory.
pub fn tempdir() -> tempfile::TempDir {
    let base = std::env::var_os("STREAMBUS_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).expect("create test base directory");
    tempfile::tempdir_in(base).expect("create temporary directory")
}

impl Broker {
    /// Starts a broker with `shards` shards (0: the default, one per core) on `data_dir`, plus
    /// any extra flags.
    pub fn start(data_dir: &Path, shards: usize, extra: &[&str]) -> Broker {
        Self::start_on(data_dir, shards, "127.0.0.1:0", extra)
    }

    /// As [`Broker::start`], listening on `listen` (a fixed port survives a restart).
    pub fn start_on(data_dir: &Path, shards: usize, listen: &str, extra: &[&str]) -> Broker {
        let stderr_log = data_dir.with_extension("stderr.log");
        let stderr = std::fs::File::create(&stderr_log).expect("create stderr log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_streambus"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", listen])
            // 0: leave the flag out and get the default, one shard per core.
            .args(if shards > 0 {
                vec!["--shards".to_string(), shards.to_string()]
            } else {
                vec![]
            })
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start the streambus binary");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = sender.send(line);
            }
            // Keep draining so the broker never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match receiver.recv_timeout(STARTUP_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "broker did not start; its log:\n{}",
                    std::fs::read_to_string(&stderr_log).unwrap_or_default()
                );
            }
        };
        // "streambus listening on ADDR shards N shard ports P1,P2 data dir DIR"
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words.get(..3),
            Some(&["streambus", "listening", "on"][..]),
            "{line}"
        );
        let bootstrap: SocketAddr = words[3].parse().expect("bootstrap address");
        let shard_ports = words[8]
            .split(',')
            .map(|port| port.parse().expect("shard port"))
            .collect();
        Broker {
            child: Some(child),
            bootstrap,
            shard_ports,
            data_dir: data_dir.to_path_buf(),
            stderr_log,
        }
    }

    /// `host:port` for client configs.
    pub fn bootstrap_servers(&self) -> String {
        self.bootstrap.to_string()
    }

    /// The address of shard `shard`'s own listener.
    pub fn shard_address(&self, shard: usize) -> SocketAddr {
        SocketAddr::new(self.bootstrap.ip(), self.shard_ports[shard])
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, ...) and returns at once.
    pub fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("broker stopped");
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
    }

    /// Sends `signal` and waits for the process to exit.
    pub fn stop_with(&mut self, signal: i32) -> ExitStatus {
        let mut child = self.child.take().expect("broker already stopped");
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for broker") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("broker did not stop in time; its log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and the exit status must be 0.
    pub fn stop(&mut self) {
        let status = self.stop_with(libc::SIGTERM);
        assert!(
            status.success(),
            "broker exited with {status}; log:\n{}",
            self.log()
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A raw Kafka connection for requests no ordinary client would send.
pub struct RawConnection {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl RawConnection {
    /// Connects to `address`.
    pub fn connect(address: SocketAddr) -> RawConnection {
        let stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        RawConnection {
            stream,
            next_correlation_id: 1,
        }
    }

    /// A second handle on the same connection (its own correlation ids), so one thread can
    /// pipeline requests while another reads the responses.
    pub fn try_clone(&self) -> RawConnection {
        RawConnection {
            stream: self.stream.try_clone().expect("clone the stream"),
            next_correlation_id: self.next_correlation_id,
        }
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends a request and returns its correlation id.
    pub fn send<T: Encodable>(&mut self, api_key: ApiKey, version: i16, body: &T) -> i32 {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("raw-test")));
        let mut payload = BytesMut::new();
        header
            .encode(&mut payload, api_key.request_header_version(version))
            .expect("encode header");
        body.encode(&mut payload, version).expect("encode body");
        let mut frame = BytesMut::with_capacity(payload.len() + 4);
        frame.put_i32(payload.len() as i32);
        frame.extend_from_slice(&payload);
        self.send_raw(&frame);
        correlation_id
    }

    /// Reads one response frame, or `None` if the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        if self.stream.read_exact(&mut size).is_err() {
            return None;
        }
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    /// Reads a response to a request sent at `version`, checking the correlation id.
    pub fn receive<T: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> T {
        let mut frame = self.read_frame().expect("response frame");
        let header_version = if api_key == ApiKey::ApiVersions {
            0
        } else {
            api_key.response_header_version(version)
        };
        let header = ResponseHeader::decode(&mut frame, header_version).expect("response header");
        assert_eq!(header.correlation_id, correlation_id);
        let body = T::decode(&mut frame, version).expect("response body");
        assert_eq!(frame.remaining(), 0, "trailing bytes in the response");
        body
    }

    /// Sends and receives.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &Req,
    ) -> Resp {
        let correlation_id = self.send(api_key, version, body);
        self.receive(api_key, version, correlation_id)
    }

    /// Whether the broker closed the connection (reads end) within the read timeout.
    pub fn is_closed_by_broker(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(error) => !matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}

/// A topic name for raw requests.
pub fn topic_name(name: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(StrBytes::from_string(name.to_string()))
}

/// Creates a topic with a raw CreateTopics v7 request; it must succeed.
pub fn create_topic(connection: &mut RawConnection, name: &str, partitions: i32) {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    let response: CreateTopicsResponse = connection.call(ApiKey::CreateTopics, 7, &request);
    assert_eq!(
        response.topics[0].error_code, 0,
        "{:?}",
        response.topics[0].error_message
    );
}

/// Every stored batch header of `topic`'s `partition`, read with raw Fetch v12 requests from
/// offset 0 to the high watermark.
pub fn stored_batches(
    connection: &mut RawConnection,
    topic: &str,
    partition: i32,
) -> Vec<streambus::record::BatchHeader> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
    use streambus::record::BatchHeader;
    let mut headers = Vec::new();
    let mut offset = 0i64;
    loop {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(4 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(4 << 20)])]);
        let response: FetchResponse = connection.call(ApiKey::Fetch, 12, &request);
        let data = &response.responses[0].partitions[0];
        assert_eq!(data.error_code, 0, "fetch of partition {partition}");
        let records = data.records.clone().unwrap_or_default();
        let mut rest = &records[..];
        while !rest.is_empty() {
            let Ok(header) = BatchHeader::parse(rest) else {
                break; // a partial batch at the end of the response
            };
            if header.total_bytes() > rest.len() {
                break;
            }
            rest = &rest[header.total_bytes()..];
            offset = header.next_offset() as i64;
            headers.push(header);
        }
        if offset >= data.high_watermark {
            return headers;
        }
    }
}

/// A free port whose next two ports are free too (a 2-shard broker's own ports), for a broker
/// that must come back on the same address after a restart.
pub fn free_port_run() -> u16 {
    for _ in 0..100 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        if port > 65_000 {
            continue;
        }
        let neighbours: Vec<_> = (1..=2)
            .map(|offset| std::net::TcpListener::bind(("127.0.0.1", port + offset)))
            .collect();
        if neighbours.iter().all(Result::is_ok) {
            return port;
        }
    }
    panic!("no free run of ports");
}
