//! Consumer groups with librdkafka members (the `rdkafka` crate): how long a rebalance of a
//! 10-member group takes when an 11th member joins and when one leaves, under the classic
//! protocol and under KIP-848 (`group.protocol=consumer`) in the same run, and the consume
//! throughput of a 3-member group against one `assign()`ed consumer reading the same topic.
//! A benchmark, not a test.
//!
//! A rebalance is timed from the joining member's `subscribe()` (or the leaving member's
//! `close()`) until every member holds its new assignment and the assignments cover every
//! partition once. librdkafka learns of a rebalance from its next heartbeat, so the figure
//! includes up to one `heartbeat.interval.ms` (set here to `GROUP_BENCH_HEARTBEAT_MS`; for
//! KIP-848 members the broker's `consumer_group_heartbeat_interval_ms`, set to the same).
//! A KIP-848 rebalance takes several heartbeats (revoke, acknowledge, then the new owner
//! learns), but members that keep their partitions never stop consuming.
//!
//! `cargo bench --bench group_rebalance`; environment:
//! - `GROUP_BENCH_ROUNDS` (5): rebalances of each kind; the median is reported
//! - `GROUP_BENCH_HEARTBEAT_MS` (100), `GROUP_BENCH_MESSAGES` (200000, of 1 KiB)
//! - `GROUP_BENCH_BOOTSTRAP`: measure another broker instead of starting StreamBus
//! - `BROKER_BENCH_SHARDS` (2), `BROKER_BENCH_BINARY`, `BROKER_BENCH_DIR` (as broker_produce)

#[path = "support/broker_process.rs"]
mod broker_process;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use broker_process::{env_or, BrokerProcess};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const MEMBERS: usize = 10;
const PARTITIONS: i32 = 20;
const MESSAGE_BYTES: usize = 1024;
const THROUGHPUT_PARTITIONS: i32 = 6;
/// The longest a rebalance or a read may take before the bench gives up.
const GIVE_UP: Duration = Duration::from_secs(120);

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let rounds = env_or("GROUP_BENCH_ROUNDS", 5);
    let heartbeat_ms = env_or("GROUP_BENCH_HEARTBEAT_MS", 100);
    let messages = env_or("GROUP_BENCH_MESSAGES", 200_000);
    let broker = std::env::var("GROUP_BENCH_BOOTSTRAP").is_err().then(|| {
        BrokerProcess::start_with_config(
            env_or("BROKER_BENCH_SHARDS", 2),
            &format!("[groups]\nconsumer_group_heartbeat_interval_ms = {heartbeat_ms}\n"),
        )
    });
    let bootstrap = std::env::var("GROUP_BENCH_BOOTSTRAP")
        .unwrap_or_else(|_| broker.as_ref().expect("broker").bootstrap.clone());
    let run = format!("{}", std::process::id());
    let topic = format!("rebalance-{run}");
    create_topic(&bootstrap, &topic, PARTITIONS);
    println!(
        "group_rebalance: {MEMBERS} members, {PARTITIONS} partitions, heartbeat {heartbeat_ms} ms, {rounds} rounds"
    );
    for protocol in [GroupProtocol::Classic, GroupProtocol::Consumer] {
        let (joins, leaves) = rebalances(&bootstrap, &topic, &run, heartbeat_ms, rounds, protocol);
        println!(
            "  {protocol:?}: one member joins: median {:.0} ms (all: {joins:.0?})",
            median(&joins)
        );
        println!(
            "  {protocol:?}: one member leaves: median {:.0} ms (all: {leaves:.0?})",
            median(&leaves)
        );
    }
    let topic = format!("throughput-{run}");
    create_topic(&bootstrap, &topic, THROUGHPUT_PARTITIONS);
    produce(&bootstrap, &topic, messages);
    let cpu = || broker.as_ref().and_then(BrokerProcess::cpu_seconds);
    let bytes = (messages * MESSAGE_BYTES) as f64;
    for (label, members) in [("1 assign() consumer", 0), ("3-member group", 3)] {
        let cpu_before = cpu();
        let elapsed = consume_all(&bootstrap, &topic, &run, members, messages);
        let cpu_spent = cpu().zip(cpu_before).map(|(after, before)| after - before);
        println!(
            "  {label}: {messages} messages in {:.2} s = {:.0} MiB/s{}",
            elapsed.as_secs_f64(),
            bytes / elapsed.as_secs_f64() / (1 << 20) as f64,
            cpu_spent.map_or(String::new(), |seconds| format!(
                "; broker CPU {:.2} s/GB",
                seconds / (bytes / 1e9)
            )),
        );
    }
    if let Some(broker) = broker {
        broker.stop();
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let created = futures_lite::future::block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ))
    .expect("create topic");
    for result in created {
        result.expect("topic created");
    }
}

fn produce(bootstrap: &str, topic: &str, messages: usize) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let payload = vec![b'x'; MESSAGE_BYTES];
    for index in 0..messages {
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .payload(&payload[..])
            .partition(index as i32 % THROUGHPUT_PARTITIONS);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    record = returned;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
}

/// The group protocol members speak.
#[derive(Debug, Clone, Copy)]
enum GroupProtocol {
    /// JoinGroup/SyncGroup, client-side assignment.
    Classic,
    /// KIP-848 ConsumerGroupHeartbeat, server-side assignment.
    Consumer,
}

fn member(
    bootstrap: &str,
    group: &str,
    topic: &str,
    heartbeat_ms: usize,
    protocol: GroupProtocol,
) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    match protocol {
        GroupProtocol::Classic => config
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", heartbeat_ms.to_string()),
        // The broker sets the session and heartbeat of KIP-848 members.
        GroupProtocol::Consumer => config.set("group.protocol", "consumer"),
    };
    let consumer: BaseConsumer = config.create().expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

fn assigned(consumer: &BaseConsumer) -> BTreeSet<i32> {
    consumer
        .assignment()
        .map(|list| list.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Polls every member until each holds a share and the shares cover every partition once.
fn wait_balanced(members: &[BaseConsumer]) -> Duration {
    let started = Instant::now();
    loop {
        for consumer in members {
            let _ = consumer.poll(Duration::ZERO);
        }
        let shares: Vec<BTreeSet<i32>> = members.iter().map(assigned).collect();
        let total: usize = shares.iter().map(BTreeSet::len).sum();
        let distinct: BTreeSet<i32> = shares.iter().flatten().copied().collect();
        if shares.iter().all(|share| !share.is_empty())
            && total == PARTITIONS as usize
            && distinct.len() == PARTITIONS as usize
        {
            return started.elapsed();
        }
        assert!(started.elapsed() < GIVE_UP, "the group did not rebalance");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn rebalances(
    bootstrap: &str,
    topic: &str,
    run: &str,
    heartbeat_ms: usize,
    rounds: usize,
    protocol: GroupProtocol,
) -> (Vec<f64>, Vec<f64>) {
    let group = format!("rebalance-group-{run}-{protocol:?}");
    let mut members: Vec<BaseConsumer> = (0..MEMBERS)
        .map(|_| member(bootstrap, &group, topic, heartbeat_ms, protocol))
        .collect();
    wait_balanced(&members);
    let (mut joins, mut leaves) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        members.push(member(bootstrap, &group, topic, heartbeat_ms, protocol));
        joins.push(wait_balanced(&members).as_secs_f64() * 1000.0);
        let leaving = members.pop().expect("a member");
        let started = Instant::now();
        leaving.unsubscribe();
        drop(leaving); // close(): LeaveGroup
        wait_balanced(&members);
        leaves.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    (joins, leaves)
}

/// Reads the whole topic with one `assign()`ed consumer (`members` 0) or a group of
/// `members`, each member on its own thread; returns the time from the first message to the
/// last (a group's join, with the broker's initial rebalance delay, comes before the first).
fn consume_all(
    bootstrap: &str,
    topic: &str,
    run: &str,
    members: usize,
    messages: usize,
) -> Duration {
    let started = Instant::now();
    let group = format!("throughput-{run}-{members}");
    let threads: Vec<_> = (0..members.max(1))
        .map(|_| {
            let (bootstrap, topic, group) =
                (bootstrap.to_string(), topic.to_string(), group.clone());
            std::thread::spawn(move || {
                let consumer: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .set("group.id", &group)
                    .set("auto.offset.reset", "earliest")
                    .set("enable.auto.commit", "true")
                    .create()
                    .expect("consumer");
                if members == 0 {
                    let mut list = TopicPartitionList::new();
                    for partition in 0..THROUGHPUT_PARTITIONS {
                        list.add_partition_offset(&topic, partition, Offset::Beginning)
                            .expect("partition");
                    }
                    consumer.assign(&list).expect("assign");
                } else {
                    consumer.subscribe(&[&topic]).expect("subscribe");
                }
                let mut count = 0usize;
                let mut first = None;
                let mut last = Instant::now();
                while last.elapsed() < Duration::from_secs(5) || first.is_none() {
                    if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
                        count += 1;
                        last = Instant::now();
                        first.get_or_insert(last);
                    }
                    assert!(started.elapsed() < GIVE_UP, "nothing to read");
                }
                (count, first.unwrap_or(last), last)
            })
        })
        .collect();
    let mut total = 0;
    let mut began: Option<Instant> = None;
    let mut finished = started;
    for thread in threads {
        let (count, first, last) = thread.join().expect("member thread");
        total += count;
        began = Some(began.map_or(first, |began| began.min(first)));
        finished = finished.max(last);
    }
    assert_eq!(total, messages, "every message read once");
    finished - began.unwrap_or(started)
}
