//! Consumer groups against the real broker, with librdkafka (the `rdkafka` crate) as members:
//! `subscribe()` splits partitions over members, commits after processing make consumption
//! exactly-once across rebalances, a SIGKILLed member's partitions move to the others within
//! its session, committed offsets survive broker restarts, every assignor the clients offer
//! works, and a static member comes back without a rebalance.

mod broker_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_support::{create_topic, tempdir, Broker, RawConnection};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientContext, Message};

/// The shortest session the broker allows (Kafka's `group.min.session.timeout.ms`).
const SESSION_TIMEOUT_MS: &str = "6000";
/// How long a test waits for a group to settle or for messages before it fails.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A broker whose groups rebalance without the initial delay (the tests start members one at
/// a time on purpose), plus `settings` under `[groups]`.
fn start_broker(data: &std::path::Path, settings: &str) -> Broker {
    let config = data.with_extension("toml");
    std::fs::write(
        &config,
        format!("[groups]\ngroup_initial_rebalance_delay_ms = 0\n{settings}"),
    )
    .expect("write config");
    Broker::start(data, 2, &["--config", config.to_str().expect("utf-8 path")])
}

fn consumer_config(broker: &Broker, group: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", SESSION_TIMEOUT_MS)
        .set("heartbeat.interval.ms", "500");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config
}

fn consumer(broker: &Broker, group: &str, topic: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let consumer: BaseConsumer = consumer_config(broker, group, extra)
        .create()
        .expect("create consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

/// Produces `count` messages round-robin over `partitions`, values "0", "1", ...
fn produce(broker: &Broker, topic: &str, partitions: i32, range: std::ops::Range<usize>) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("enable.idempotence", "false")
        .create()
        .expect("create producer");
    for index in range {
        let value = index.to_string();
        let record = BaseRecord::<(), String>::to(topic)
            .payload(&value)
            .partition(index as i32 % partitions);
        producer.send(record).expect("queue message");
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

fn new_topic(broker: &Broker, topic: &str, partitions: i32) {
    let mut connection = RawConnection::connect(broker.bootstrap);
    create_topic(&mut connection, topic, partitions);
}

fn assigned<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> BTreeSet<i32> {
    consumer
        .assignment()
        .expect("assignment")
        .elements()
        .iter()
        .map(|element| element.partition())
        .collect()
}

/// Polls every consumer in turn, committing each message after "processing" it, until
/// `wanted` messages are consumed in all; returns what each consumed, by consumer.
fn consume(consumers: &[&BaseConsumer], wanted: usize) -> Vec<Vec<String>> {
    let mut consumed: Vec<Vec<String>> = vec![Vec::new(); consumers.len()];
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while consumed.iter().map(Vec::len).sum::<usize>() < wanted {
        assert!(
            Instant::now() < deadline,
            "consumed only {} of {wanted}",
            consumed.iter().map(Vec::len).sum::<usize>()
        );
        for (index, consumer) in consumers.iter().enumerate() {
            match consumer.poll(Duration::from_millis(20)) {
                Some(Ok(message)) => {
                    let value =
                        String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
                    consumed[index].push(value);
                    consumer
                        .commit_message(&message, CommitMode::Sync)
                        .expect("commit after processing");
                }
                Some(Err(error)) => panic!("consumer {index}: {error}"),
                None => {}
            }
        }
    }
    consumed
}

/// Polls every consumer until `settled` holds of their assignments.
fn settle(consumers: &[&BaseConsumer], settled: impl Fn(&[BTreeSet<i32>]) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        for consumer in consumers {
            if let Some(Err(error)) = consumer.poll(Duration::from_millis(20)) {
                panic!("{error}");
            }
        }
        let assignments: Vec<BTreeSet<i32>> = consumers.iter().map(|c| assigned(c)).collect();
        if settled(&assignments) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < SETTLE_TIMEOUT,
            "the group did not settle: {assignments:?}"
        );
    }
}

fn every_partition_once(assignments: &[BTreeSet<i32>], partitions: i32, each: usize) -> bool {
    let all: Vec<i32> = assignments.iter().flatten().copied().collect();
    assignments.iter().all(|set| set.len() == each)
        && all.len() == partitions as usize
        && all.iter().copied().collect::<BTreeSet<_>>().len() == partitions as usize
}

fn exactly_once(consumed: &[Vec<String>], count: usize) {
    let all: Vec<&String> = consumed.iter().flatten().collect();
    let distinct: BTreeSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len(), count, "every message consumed once, no more");
    assert_eq!(distinct.len(), count, "no message consumed twice");
}

#[test]
fn three_members_share_six_partitions_and_consume_each_message_once() {
    let dir = tempdir();
    let broker = start_broker(&dir.path().join("data"), "");
    new_topic(&broker, "shared", 6);
    let members: Vec<BaseConsumer> = (0..3)
        .map(|_| consumer(&broker, "three", "shared", &[]))
        .collect();
    let refs: Vec<&BaseConsumer> = members.iter().collect();
    settle(&refs, |assignments| every_partition_once(assignments, 6, 2));
    produce(&broker, "shared", 6, 0..600);
    let consumed = consume(&refs, 600);
    exactly_once(&consumed, 600);
    assert!(
        consumed.iter().all(|values| values.len() == 200),
        "two partitions of 100 messages each: {:?}",
        consumed.iter().map(Vec::len).collect::<Vec<_>>()
    );
    // Close leaves the group; a new member then owns everything and finds nothing left.
    drop(members);
    produce(&broker, "shared", 6, 600..606);
    let late = consumer(&broker, "three", "shared", &[]);
    let consumed = consume(&[&late], 6);
    let mut values: Vec<usize> = consumed[0].iter().map(|v| v.parse().unwrap()).collect();
    values.sort_unstable();
    assert_eq!(
        values,
        (600..606).collect::<Vec<_>>(),
        "resumed after the commits"
    );
}

/// Run only as a child process of `a_killed_member_loses_its_partitions_within_its_session`:
/// a member that joins, says what it got, and then only polls until it is killed.
#[test]
#[ignore = "a helper process, started by another test"]
fn member_process() {
    let Ok(spec) = std::env::var("STREAMBUS_GROUP_MEMBER") else {
        return;
    };
    let [bootstrap, group, topic]: [&str; 3] = spec
        .split('|')
        .collect::<Vec<_>>()
        .try_into()
        .expect("bootstrap|group|topic");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", SESSION_TIMEOUT_MS)
        .set("heartbeat.interval.ms", "500")
        .create()
        .expect("create consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut announced = false;
    loop {
        let _ = consumer.poll(Duration::from_millis(50));
        if !announced && !assigned(&consumer).is_empty() {
            println!("ASSIGNED {:?}", assigned(&consumer));
            announced = true;
        }
    }
}

#[test]
fn a_killed_member_loses_its_partitions_within_its_session() {
    let dir = tempdir();
    let broker = start_broker(&dir.path().join("data"), "");
    new_topic(&broker, "killed", 6);
    produce(&broker, "killed", 6, 0..300);
    let survivors: Vec<BaseConsumer> = (0..2)
        .map(|_| consumer(&broker, "killed-group", "killed", &[]))
        .collect();
    let refs: Vec<&BaseConsumer> = survivors.iter().collect();
    settle(&refs, |assignments| every_partition_once(assignments, 6, 3));
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--ignored", "--exact", "member_process", "--nocapture"])
        .env(
            "STREAMBUS_GROUP_MEMBER",
            format!("{}|killed-group|killed", broker.bootstrap_servers()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the member process");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("ASSIGNED") {
                let _ = sender.send(line);
            }
        }
    });
    // The survivors must poll for the rebalance that brings the third member in.
    let started = Instant::now();
    let line = loop {
        for consumer in &refs {
            let _ = consumer.poll(Duration::from_millis(20));
        }
        if let Ok(line) = receiver.try_recv() {
            break line;
        }
        assert!(
            started.elapsed() < SETTLE_TIMEOUT,
            "the third member got nothing"
        );
    };
    // Three members, two partitions each: the survivors hold four.
    settle(&refs, |assignments| {
        assignments.iter().all(|set| set.len() == 2)
    });
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    let killed_at = Instant::now();
    let taken_over = settle(&refs, |assignments| every_partition_once(assignments, 6, 3));
    let session = Duration::from_millis(SESSION_TIMEOUT_MS.parse().unwrap());
    assert!(
        killed_at.elapsed() < session + Duration::from_secs(5),
        "the killed member's partitions ({line}) moved after {taken_over:?}"
    );
    // It committed nothing: the survivors consume its partitions from the start, and nothing
    // is skipped.
    let consumed = consume(&refs, 300);
    exactly_once(&consumed, 300);
}

fn restart_resumes_at_committed_offsets(signal: i32) {
    let dir = tempdir();
    let data = dir.path().join("data");
    let mut broker = start_broker(&data, "");
    new_topic(&broker, "durable", 2);
    produce(&broker, "durable", 2, 0..100);
    {
        let member = consumer(&broker, "durable-group", "durable", &[]);
        let consumed = consume(&[&member], 40);
        assert_eq!(consumed[0].len(), 40);
    }
    let port = broker.bootstrap.port();
    broker.stop_with(signal);
    let config = data.with_extension("toml");
    let broker = Broker::start_on(
        &data,
        2,
        &format!("127.0.0.1:{port}"),
        &["--config", config.to_str().expect("utf-8 path")],
    );
    let member = consumer(&broker, "durable-group", "durable", &[]);
    let consumed = consume(&[&member], 60);
    let values: BTreeSet<usize> = consumed[0].iter().map(|v| v.parse().unwrap()).collect();
    assert_eq!(values.len(), 60, "the other 60, once each");
    let first_run: BTreeSet<usize> = (0..100).filter(|v| !values.contains(v)).collect();
    assert_eq!(
        first_run.len(),
        40,
        "nothing consumed before the restart came again"
    );
}

#[test]
fn a_new_member_resumes_at_committed_offsets_after_a_clean_restart() {
    restart_resumes_at_committed_offsets(libc::SIGTERM);
}

#[test]
fn a_new_member_resumes_at_committed_offsets_after_a_crash() {
    restart_resumes_at_committed_offsets(libc::SIGKILL);
}

#[test]
fn every_assignor_splits_the_topic() {
    let dir = tempdir();
    let broker = start_broker(&dir.path().join("data"), "");
    for (index, assignor) in ["range", "roundrobin", "cooperative-sticky"]
        .into_iter()
        .enumerate()
    {
        let topic = format!("assignor-{index}");
        let group = format!("assignor-group-{index}");
        new_topic(&broker, &topic, 4);
        let strategy = [("partition.assignment.strategy", assignor)];
        let first = consumer(&broker, &group, &topic, &strategy);
        settle(&[&first], |assignments| assignments[0].len() == 4);
        let second = consumer(&broker, &group, &topic, &strategy);
        settle(&[&first, &second], |assignments| {
            every_partition_once(assignments, 4, 2)
        });
        // Produced only now: settling polls, and under cooperative-sticky a partition that
        // stays keeps its position, so messages polled while settling would be skipped.
        produce(&broker, &topic, 4, 0..80);
        let consumed = consume(&[&first, &second], 80);
        exactly_once(&consumed, 80);
        assert!(
            consumed.iter().all(|values| values.len() == 40),
            "{assignor}: {:?}",
            consumed.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }
}

/// Counts the rebalances a consumer goes through.
struct RebalanceCounter {
    rebalances: Arc<AtomicUsize>,
}

impl ClientContext for RebalanceCounter {}

impl ConsumerContext for RebalanceCounter {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_static_member_comes_back_to_its_partitions_without_a_rebalance() {
    let dir = tempdir();
    let broker = start_broker(&dir.path().join("data"), "");
    new_topic(&broker, "static", 4);
    let rebalances = Arc::new(AtomicUsize::new(0));
    let steady: BaseConsumer<RebalanceCounter> =
        consumer_config(&broker, "static-group", &[("group.instance.id", "steady")])
            .create_with_context(RebalanceCounter {
                rebalances: rebalances.clone(),
            })
            .expect("create consumer");
    steady.subscribe(&["static"]).expect("subscribe");
    let poll_steady = || {
        if let Some(Err(error)) = steady.poll(Duration::from_millis(20)) {
            panic!("{error}");
        }
    };
    let assigned_steady = || assigned(&steady);
    let static_member = || {
        consumer(
            &broker,
            "static-group",
            "static",
            &[("group.instance.id", "restarting")],
        )
    };
    let restarting = static_member();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while !(assigned_steady().len() == 2 && assigned(&restarting).len() == 2) {
        poll_steady();
        let _ = restarting.poll(Duration::from_millis(20));
        assert!(Instant::now() < deadline, "the static group did not settle");
    }
    let before = assigned(&restarting);
    let rebalances_before = rebalances.load(Ordering::SeqCst);
    // A static member does not leave on close: its place waits for it for its session.
    drop(restarting);
    let back = static_member();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while assigned(&back).is_empty() {
        poll_steady();
        let _ = back.poll(Duration::from_millis(20));
        assert!(
            Instant::now() < deadline,
            "the static member got nothing back"
        );
    }
    assert_eq!(assigned(&back), before, "the same partitions back");
    // Well past a heartbeat interval: a rebalance would have reached the other member.
    let quiet = Instant::now() + Duration::from_secs(3);
    while Instant::now() < quiet {
        poll_steady();
        let _ = back.poll(Duration::from_millis(20));
    }
    assert_eq!(
        rebalances.load(Ordering::SeqCst),
        rebalances_before,
        "the other member saw no rebalance"
    );
    assert_eq!(assigned_steady().len(), 2);
    assert_eq!(
        describe(&broker, "static-group"),
        BTreeMap::from([("Stable".to_string(), 2)]),
        "two members, Stable"
    );
}

/// The state and member count DescribeGroups reports for `group`, asked of its coordinator.
fn describe(broker: &Broker, group: &str) -> BTreeMap<String, usize> {
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    let mut bootstrap = RawConnection::connect(broker.bootstrap);
    let found: FindCoordinatorResponse = bootstrap.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![StrBytes::from_string(group.to_string())]),
    );
    let port = found.coordinators[0].port as u16;
    let mut coordinator =
        RawConnection::connect(std::net::SocketAddr::new(broker.bootstrap.ip(), port));
    let described: DescribeGroupsResponse = coordinator.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]),
    );
    described
        .groups
        .iter()
        .map(|group| (group.group_state.to_string(), group.members.len()))
        .collect()
}
