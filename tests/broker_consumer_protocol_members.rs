//! The consumer group protocol (KIP-848, `group.protocol=consumer`) against the real broker,
//! with librdkafka (the `rdkafka` crate) as members: the coordinator's server-side assignor
//! splits partitions over members, commits after processing make consumption exactly-once
//! while members come and go, a SIGKILLed member's partitions move to the others within the
//! session timeout, members carry on across a broker SIGKILL from their committed offsets,
//! the `range` assignor gives co-partitioned ranges, and a regex subscription follows new
//! topics.

mod broker_support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use broker_support::{create_topic, tempdir, Broker, RawConnection};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Message;

/// The broker's session timeout for these tests (Kafka's default is 45 s).
const SESSION_TIMEOUT_MS: u64 = 6000;
/// How long a test waits for a group to settle or for messages before it fails.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

fn start_broker(data: &std::path::Path) -> Broker {
    let config = data.with_extension("toml");
    std::fs::write(
        &config,
        format!(
            "[groups]\nconsumer_group_session_timeout_ms = {SESSION_TIMEOUT_MS}\nconsumer_group_heartbeat_interval_ms = 500\n"
        ),
    )
    .expect("write config");
    Broker::start(data, 2, &["--config", config.to_str().expect("utf-8 path")])
}

fn member_config(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "1000");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config
}

fn member(broker: &Broker, group: &str, topics: &[&str], extra: &[(&str, &str)]) -> BaseConsumer {
    let consumer: BaseConsumer = member_config(&broker.bootstrap_servers(), group, extra)
        .create()
        .expect("create consumer");
    consumer.subscribe(topics).expect("subscribe");
    consumer
}

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

/// The (topic, partition) pairs a member holds.
fn assigned(consumer: &BaseConsumer) -> BTreeSet<(String, i32)> {
    consumer
        .assignment()
        .expect("assignment")
        .elements()
        .iter()
        .map(|element| (element.topic().to_string(), element.partition()))
        .collect()
}

/// Polls every member until `settled` holds of their assignments.
fn settle(
    consumers: &[&BaseConsumer],
    settled: impl Fn(&[BTreeSet<(String, i32)>]) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        for consumer in consumers {
            if let Some(Err(error)) = consumer.poll(Duration::from_millis(20)) {
                panic!("{error}");
            }
        }
        let assignments: Vec<_> = consumers.iter().map(|c| assigned(c)).collect();
        if settled(&assignments) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < SETTLE_TIMEOUT,
            "the group did not settle: {assignments:?}"
        );
    }
}

/// Every partition of `partitions` held once, and each member holds `each`.
fn split_evenly(assignments: &[BTreeSet<(String, i32)>], partitions: usize, each: usize) -> bool {
    let all: Vec<&(String, i32)> = assignments.iter().flatten().collect();
    let distinct: BTreeSet<&(String, i32)> = all.iter().copied().collect();
    assignments.iter().all(|set| set.len() == each)
        && all.len() == partitions
        && distinct.len() == partitions
}

/// Polls every member, committing each message after "processing" it, until `wanted`
/// messages are consumed in all; what each consumed. Errors a member reports while the
/// broker restarts are tolerated when `tolerate_errors`.
fn consume(consumers: &[&BaseConsumer], wanted: usize, tolerate_errors: bool) -> Vec<Vec<String>> {
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
                    match consumer.commit_message(&message, CommitMode::Sync) {
                        Ok(()) => consumed[index].push(value),
                        // A commit refused mid-rebalance or mid-restart: the message comes
                        // again from the committed offset, to this member or another.
                        Err(error) if tolerate_errors => {
                            eprintln!("member {index}: commit failed: {error}");
                            consumer
                                .seek(
                                    message.topic(),
                                    message.partition(),
                                    rdkafka::Offset::Offset(message.offset()),
                                    Duration::from_secs(5),
                                )
                                .ok();
                        }
                        Err(error) => panic!("member {index}: commit failed: {error}"),
                    }
                }
                Some(Err(error)) if tolerate_errors => eprintln!("member {index}: {error}"),
                Some(Err(error)) => panic!("member {index}: {error}"),
                None => {}
            }
        }
    }
    consumed
}

fn exactly_once(consumed: &[Vec<String>], expected: impl IntoIterator<Item = usize>) {
    let all: Vec<usize> = consumed
        .iter()
        .flatten()
        .map(|value| value.parse().expect("a number"))
        .collect();
    let distinct: BTreeSet<usize> = all.iter().copied().collect();
    let expected: BTreeSet<usize> = expected.into_iter().collect();
    assert_eq!(distinct, expected, "every message consumed");
    assert_eq!(all.len(), expected.len(), "no message consumed twice");
}

#[test]
fn three_members_share_six_partitions_and_consume_each_message_once() {
    let dir = tempdir();
    let broker = start_broker(&dir.path().join("data"));
    new_topic(&broker, "shared", 6);
    let members: Vec<BaseConsumer> = (0..3)
        .map(|_| member(&broker, "three", &["shared"], &[]))
        .collect();
    let refs: Vec<&BaseConsumer> = members.iter().collect();
    settle(&refs, |assignments| split_evenly(assignments, 6, 2));
    produce(&broker, "shared", 6, 0..600);
    let consumed = consume(&refs, 600, false);
    exactly_once(&consumed, 0..600);
    assert!(
        consumed.iter().all(|values| values.len() == 200),
        "two partitions of 100 messages each: {:?}",
        consumed.iter().map(Vec::len).collect::<Vec<_>>()
    );
    // One member leaves: the other two take over its partitions, three each, and resume
    // after its commits.
    let mut members = members;
    drop(members.pop());
    let refs: Vec<&BaseConsumer> = members.iter().collect();
    let moved = settle(&refs, |assignments| split_evenly(assignments, 6, 3));
    produce(&broker, "shared", 6, 600..900);
    let consumed = consume(&refs, 300, false);
    exactly_once(&consumed, 600..900);
    eprintln!("a leave moved its partitions in {moved:?}");
}

/// Run only as a child process of `a_killed_member_loses_its_partitions_within_the_session`.
#[test]
#[ignore = "a helper process, started by another test"]
fn member_process() {
    let Ok(spec) = std::env::var("STREAMBUS_KIP848_MEMBER") else {
        return;
    };
    let [bootstrap, group, topic]: [&str; 3] = spec
        .split('|')
        .collect::<Vec<_>>()
        .try_into()
        .expect("bootstrap|group|topic");
    let consumer: BaseConsumer = member_config(bootstrap, group, &[])
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
fn a_killed_member_loses_its_partitions_within_the_session() {
    let dir = tempdir();
    let broker = start_broker(&dir.path().join("data"));
    new_topic(&broker, "killed", 6);
    let survivors: Vec<BaseConsumer> = (0..2)
        .map(|_| member(&broker, "killed-group", &["killed"], &[]))
        .collect();
    let refs: Vec<&BaseConsumer> = survivors.iter().collect();
    settle(&refs, |assignments| split_evenly(assignments, 6, 3));
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--ignored", "--exact", "member_process", "--nocapture"])
        .env(
            "STREAMBUS_KIP848_MEMBER",
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
    settle(&refs, |assignments| {
        assignments.iter().all(|set| set.len() == 2)
    });
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    let killed_at = Instant::now();
    let taken_over = settle(&refs, |assignments| split_evenly(assignments, 6, 3));
    assert!(
        killed_at.elapsed() < Duration::from_millis(SESSION_TIMEOUT_MS) + Duration::from_secs(5),
        "the killed member's partitions ({line}) moved after {taken_over:?}"
    );
    // The survivors consume from every partition (settle() polls and drops messages, and an
    // incremental rebalance keeps the positions of kept partitions, so messages come now).
    produce(&broker, "killed", 6, 0..300);
    let consumed = consume(&refs, 300, false);
    exactly_once(&consumed, 0..300);
}

#[test]
fn members_carry_on_across_a_broker_crash_from_their_commits() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let mut broker = start_broker(&data);
    new_topic(&broker, "durable", 2);
    produce(&broker, "durable", 2, 0..100);
    let bootstrap = broker.bootstrap_servers();
    let running = member(&broker, "durable-group", &["durable"], &[]);
    let before = consume(&[&running], 40, false);
    let port = broker.bootstrap.port();
    broker.stop_with(libc::SIGKILL);
    let config = data.with_extension("toml");
    let broker = Broker::start_on(
        &data,
        2,
        &format!("127.0.0.1:{port}"),
        &["--config", config.to_str().expect("utf-8 path")],
    );
    assert_eq!(broker.bootstrap_servers(), bootstrap);
    // The coordinator forgot the member: it rejoins and goes on from its commits.
    let after = consume(&[&running], 60, true);
    exactly_once(&[before[0].clone(), after[0].clone()], 0..100);
    drop(running);
    // A new member of the group finds nothing left to consume.
    produce(&broker, "durable", 2, 100..104);
    let late = member(&broker, "durable-group", &["durable"], &[]);
    let consumed = consume(&[&late], 4, false);
    exactly_once(&consumed, 100..104);
}

#[test]
fn the_range_assignor_gives_co_partitioned_ranges() {
    let dir = tempdir();
    let broker = start_broker(&dir.path().join("data"));
    new_topic(&broker, "orders", 3);
    new_topic(&broker, "payments", 3);
    let extra = [("group.remote.assignor", "range")];
    let members: Vec<BaseConsumer> = (0..2)
        .map(|_| member(&broker, "ranges", &["orders", "payments"], &extra))
        .collect();
    let refs: Vec<&BaseConsumer> = members.iter().collect();
    settle(&refs, |assignments| {
        let mut sizes: Vec<usize> = assignments.iter().map(BTreeSet::len).collect();
        sizes.sort_unstable();
        sizes == [2, 4]
    });
    for consumer in &refs {
        let held = assigned(consumer);
        let partitions = |topic: &str| -> BTreeSet<i32> {
            held.iter()
                .filter(|(name, _)| name == topic)
                .map(|(_, partition)| *partition)
                .collect()
        };
        assert_eq!(partitions("orders"), partitions("payments"), "{held:?}");
        let orders: Vec<i32> = partitions("orders").into_iter().collect();
        assert!(
            orders.windows(2).all(|pair| pair[1] == pair[0] + 1),
            "a contiguous range: {orders:?}"
        );
    }
}

#[test]
fn a_regex_subscription_picks_up_new_topics() {
    let dir = tempdir();
    let broker = start_broker(&dir.path().join("data"));
    new_topic(&broker, "events-1", 2);
    let consumer = member(&broker, "regex-members", &["^events-.*"], &[]);
    settle(&[&consumer], |assignments| assignments[0].len() == 2);
    new_topic(&broker, "events-2", 2);
    new_topic(&broker, "other-3", 2);
    settle(&[&consumer], |assignments| {
        let topics: BTreeSet<&str> = assignments[0].iter().map(|(t, _)| t.as_str()).collect();
        assignments[0].len() == 4 && topics == BTreeSet::from(["events-1", "events-2"])
    });
    produce(&broker, "events-2", 2, 0..10);
    let consumed = consume(&[&consumer], 10, false);
    exactly_once(&consumed, 0..10);
}
