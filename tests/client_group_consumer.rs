//! The Rust SDK's group consumer against the real broker: SDK members share a topic and a new
//! member resumes after their commits; an SDK member and a librdkafka member (the `rdkafka`
//! crate) share one group, each assigning for the other when it leads.

mod broker_support;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker_support::{tempdir, Broker};
use glommio::{LocalExecutorBuilder, Placement};
use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::Message;
use streambus::client::{
    Admin, Assignor, ClientConfig, ConsumerConfig, ConsumerRecord, GroupConfig, GroupConsumer,
    NewTopic, OffsetSpec,
};

/// A rebalance callback's partitions.
type Partitions = Vec<(String, i32)>;

const DEADLINE: Duration = Duration::from_secs(60);

fn run<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(4 << 20)
        .spawn(body)
        .expect("executor")
        .join()
        .expect("test body panicked");
}

fn start_broker(data: &std::path::Path) -> Broker {
    let config = data.with_extension("toml");
    std::fs::write(&config, "[groups]\ngroup_initial_rebalance_delay_ms = 0\n").unwrap();
    Broker::start(data, 2, &["--config", config.to_str().unwrap()])
}

fn produce(bootstrap: &str, topic: &str, partitions: i32, values: std::ops::Range<usize>) {
    let producer: BaseProducer = RdConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    for index in values {
        let value = index.to_string();
        producer
            .send(
                BaseRecord::<(), String>::to(topic)
                    .payload(&value)
                    .partition(index as i32 % partitions),
            )
            .expect("queue");
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Creates `topic` with 4 partitions and produces the values `0..messages` round-robin.
async fn create_and_fill(bootstrap: &str, topic: &'static str, messages: usize) {
    let admin = Admin::new(ClientConfig::new(bootstrap));
    for created in admin
        .create_topics(&[NewTopic::new(topic, 4)])
        .await
        .expect("create")
    {
        created.expect("created");
    }
    let producing = bootstrap.to_string();
    std::thread::spawn(move || produce(&producing, topic, 4, 0..messages))
        .join()
        .unwrap();
}

/// Appends the records' values (decimal numbers, as `produce` writes them) to `consumed`.
fn take_values(consumed: &RefCell<Vec<usize>>, records: Vec<ConsumerRecord>) {
    for record in records {
        let value = record.value.expect("value");
        consumed
            .borrow_mut()
            .push(std::str::from_utf8(&value).unwrap().parse().unwrap());
    }
}

fn group(name: &str) -> GroupConfig {
    GroupConfig {
        heartbeat_interval_ms: 200,
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 20_000,
        offset_reset: OffsetSpec::Earliest,
        ..GroupConfig::new(name)
    }
}

#[test]
fn sdk_members_share_a_topic_and_a_new_member_resumes_after_their_commits() {
    let directory = tempdir();
    let broker = start_broker(&directory.path().join("data"));
    let bootstrap = broker.bootstrap_servers();
    run(move || async move {
        create_and_fill(&bootstrap, "sdk-group", 400).await;
        let consumed: Rc<RefCell<Vec<usize>>> = Rc::default();
        let assigned_counts: Rc<RefCell<Vec<usize>>> = Rc::default();
        let members: Vec<_> = [Assignor::Range, Assignor::RoundRobin]
            .into_iter()
            .map(|assignor| {
                let (bootstrap, consumed, assigned_counts) =
                    (bootstrap.clone(), consumed.clone(), assigned_counts.clone());
                glommio::spawn_local(async move {
                    let member = GroupConsumer::new(
                        ClientConfig::new(&bootstrap),
                        ConsumerConfig::default(),
                        GroupConfig {
                            // Both offer both; each prefers its own: the group picks one.
                            assignors: vec![assignor, Assignor::Range, Assignor::RoundRobin],
                            ..group("sdk-members")
                        },
                    );
                    member.subscribe(&["sdk-group"]);
                    let started = Instant::now();
                    // Until everything is consumed and both members hold two partitions.
                    while consumed.borrow().len() < 400 || member.assignment().len() != 2 {
                        assert!(
                            started.elapsed() < DEADLINE,
                            "consumed {}",
                            consumed.borrow().len()
                        );
                        let records = member.poll(500, Duration::from_millis(50)).await;
                        take_values(&consumed, records.expect("poll"));
                    }
                    assigned_counts.borrow_mut().push(member.assignment().len());
                    // Wait for the other member before leaving, so neither sees a rebalance
                    // with everything consumed and nothing left to assign.
                    while assigned_counts.borrow().len() < 2 {
                        let _ = member
                            .poll(500, Duration::from_millis(50))
                            .await
                            .expect("poll");
                    }
                    member.close().await.expect("close");
                })
            })
            .collect();
        for member in members {
            member.await;
        }
        let values = consumed.borrow().clone();
        let distinct: BTreeSet<usize> = values.iter().copied().collect();
        assert_eq!(distinct.len(), 400, "every message consumed");
        assert_eq!(
            values.len(),
            400,
            "none twice: commits before each rebalance"
        );
        assert_eq!(*assigned_counts.borrow(), [2, 2]);

        // A new member of the group starts after the commits.
        let producing = bootstrap.clone();
        std::thread::spawn(move || produce(&producing, "sdk-group", 4, 400..404))
            .join()
            .unwrap();
        let late = GroupConsumer::new(
            ClientConfig::new(&bootstrap),
            ConsumerConfig::default(),
            group("sdk-members"),
        );
        let assigned: Rc<RefCell<Vec<(String, i32)>>> = Rc::default();
        let seen = assigned.clone();
        late.on_assigned(move |partitions| seen.borrow_mut().extend_from_slice(partitions));
        late.subscribe(&["sdk-group"]);
        let mut resumed = Vec::new();
        let started = Instant::now();
        while resumed.len() < 4 {
            assert!(started.elapsed() < DEADLINE, "resumed {resumed:?}");
            for record in late
                .poll(500, Duration::from_millis(50))
                .await
                .expect("poll")
            {
                let value = record.value.expect("value");
                resumed.push(
                    std::str::from_utf8(&value)
                        .unwrap()
                        .parse::<usize>()
                        .unwrap(),
                );
            }
        }
        resumed.sort_unstable();
        assert_eq!(resumed, [400, 401, 402, 403]);
        assert_eq!(
            assigned.borrow().len(),
            4,
            "the rebalance callback saw its partitions"
        );
        late.close().await.expect("close");
    });
}

#[test]
fn an_sdk_member_and_a_librdkafka_member_share_one_group() {
    sdk_and_librdkafka_in_one_group("range,roundrobin", group("mixed-group"));
}

#[test]
fn cooperative_sticky_sdk_and_librdkafka_members_share_one_group() {
    sdk_and_librdkafka_in_one_group(
        "cooperative-sticky",
        GroupConfig {
            assignors: vec![Assignor::CooperativeSticky],
            ..group("mixed-group")
        },
    );
}

/// An SDK member and a librdkafka member (`partition.assignment.strategy = strategy`) split
/// a 4-partition topic two and two, and consume each message once.
fn sdk_and_librdkafka_in_one_group(strategy: &'static str, sdk_group: GroupConfig) {
    let directory = tempdir();
    let broker = start_broker(&directory.path().join("data"));
    let bootstrap = broker.bootstrap_servers();
    run({
        let bootstrap = bootstrap.clone();
        move || async move {
            let admin = Admin::new(ClientConfig::new(&bootstrap));
            for created in admin
                .create_topics(&[NewTopic::new("mixed", 4)])
                .await
                .expect("create")
            {
                created.expect("created");
            }
        }
    });
    produce(&bootstrap, "mixed", 4, 0..400);
    let consumed = Arc::new(Mutex::new(Vec::<usize>::new()));
    let holding = Arc::new(AtomicUsize::new(0));
    let librdkafka = std::thread::spawn({
        let (bootstrap, consumed, holding) = (bootstrap.clone(), consumed.clone(), holding.clone());
        move || {
            let consumer: BaseConsumer = RdConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", "mixed-group")
                .set("auto.offset.reset", "earliest")
                .set("enable.auto.commit", "false")
                .set("session.timeout.ms", "10000")
                .set("heartbeat.interval.ms", "200")
                .set("partition.assignment.strategy", strategy)
                .create()
                .expect("consumer");
            consumer.subscribe(&["mixed"]).expect("subscribe");
            let started = Instant::now();
            loop {
                let count = consumer.assignment().map(|list| list.count()).unwrap_or(0);
                holding.store(count, Ordering::SeqCst);
                if consumed.lock().unwrap().len() >= 400 && count == 2 {
                    break;
                }
                assert!(started.elapsed() < DEADLINE, "librdkafka member timed out");
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) {
                    let value = std::str::from_utf8(message.payload().unwrap()).unwrap();
                    consumed.lock().unwrap().push(value.parse().unwrap());
                    consumer
                        .commit_message(&message, CommitMode::Sync)
                        .expect("commit");
                }
            }
            // Stays a member until the SDK member has seen the same settled group.
            while holding.load(Ordering::SeqCst) != usize::MAX {
                let _ = consumer.poll(Duration::from_millis(50));
                assert!(started.elapsed() < DEADLINE, "the SDK member never settled");
            }
        }
    });
    run({
        let (consumed, holding) = (consumed.clone(), holding.clone());
        move || async move {
            let member = GroupConsumer::new(
                ClientConfig::new(&bootstrap),
                ConsumerConfig::default(),
                sdk_group,
            );
            member.subscribe(&["mixed"]);
            let started = Instant::now();
            while consumed.lock().unwrap().len() < 400
                || member.assignment().len() != 2
                || holding.load(Ordering::SeqCst) != 2
            {
                assert!(started.elapsed() < DEADLINE, "SDK member timed out");
                let records = member
                    .poll(500, Duration::from_millis(50))
                    .await
                    .expect("poll");
                let mut consumed = consumed.lock().unwrap();
                for record in records {
                    let value = record.value.expect("value");
                    consumed.push(std::str::from_utf8(&value).unwrap().parse().unwrap());
                }
            }
            member.commit_positions().await.expect("commit");
            holding.store(usize::MAX, Ordering::SeqCst);
            member.close().await.expect("close");
        }
    });
    librdkafka.join().expect("librdkafka member");
    let values = consumed.lock().unwrap().clone();
    let distinct: BTreeSet<usize> = values.iter().copied().collect();
    assert_eq!(distinct.len(), 400, "every message consumed");
    assert_eq!(values.len(), 400, "none twice");
}

#[test]
fn a_cooperative_rebalance_revokes_only_what_moves() {
    let directory = tempdir();
    let broker = start_broker(&directory.path().join("data"));
    let bootstrap = broker.bootstrap_servers();
    run(move || async move {
        create_and_fill(&bootstrap, "incremental", 400).await;
        let cooperative = || GroupConfig {
            assignors: vec![Assignor::CooperativeSticky],
            ..group("incremental-group")
        };
        let consumed: Rc<RefCell<Vec<usize>>> = Rc::default();

        let first = GroupConsumer::new(
            ClientConfig::new(&bootstrap),
            ConsumerConfig::default(),
            cooperative(),
        );
        let revoked: Rc<RefCell<Vec<Partitions>>> = Rc::default();
        let seen = revoked.clone();
        first.on_revoked(move |partitions| seen.borrow_mut().push(partitions.to_vec()));
        first.subscribe(&["incremental"]);
        let started = Instant::now();
        // The first member alone takes all four and consumes part of the backlog.
        while first.assignment().len() != 4 || consumed.borrow().len() < 100 {
            assert!(started.elapsed() < DEADLINE, "first member never settled");
            let records = first.poll(10, Duration::from_millis(50)).await;
            take_values(&consumed, records.expect("poll"));
        }

        let second = Rc::new(GroupConsumer::new(
            ClientConfig::new(&bootstrap),
            ConsumerConfig::default(),
            cooperative(),
        ));
        second.subscribe(&["incremental"]);
        let joining = {
            let (second, consumed) = (second.clone(), consumed.clone());
            glommio::spawn_local(async move {
                let started = Instant::now();
                while second.assignment().len() != 2 || consumed.borrow().len() < 400 {
                    assert!(started.elapsed() < DEADLINE, "second member never settled");
                    let records = second.poll(10, Duration::from_millis(50)).await;
                    take_values(&consumed, records.expect("poll"));
                }
            })
        };
        let mut fewest_held = usize::MAX;
        while second.assignment().len() != 2
            || first.assignment().len() != 2
            || consumed.borrow().len() < 400
        {
            assert!(
                started.elapsed() < DEADLINE,
                "consumed {}",
                consumed.borrow().len()
            );
            let records = first.poll(10, Duration::from_millis(50)).await;
            take_values(&consumed, records.expect("poll"));
            fewest_held = fewest_held.min(first.assignment().len());
        }
        joining.await;

        let revoked = revoked.borrow().clone();
        assert_eq!(
            revoked.iter().map(Vec::len).collect::<Vec<_>>(),
            [2],
            "one revocation, of the two partitions that moved: {revoked:?}"
        );
        assert_eq!(
            fewest_held, 2,
            "the first member kept two partitions throughout"
        );
        let held: BTreeSet<(String, i32)> = first.assignment().into_iter().collect();
        assert!(
            revoked[0].iter().all(|partition| !held.contains(partition)),
            "it gave up what it no longer holds"
        );
        let values = consumed.borrow().clone();
        let distinct: BTreeSet<usize> = values.iter().copied().collect();
        assert_eq!(distinct.len(), 400, "every message consumed");
        assert_eq!(
            values.len(),
            400,
            "none twice: committed before the partitions moved"
        );
        first.close().await.expect("close");
        second.close().await.expect("close");
    });
}
