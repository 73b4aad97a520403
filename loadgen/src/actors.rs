//! Producer and consumer actors. Each runs on its own glommio executor (pinned when `--cores`
//! says so) and reports to the main thread once a second: interval histograms and counters.
//!
//! Producers are open-loop when a rate is set: message `i` is *intended* to go at
//! `start + i * interval`, whether or not the previous one was acknowledged, and its latency
//! counts from that intended time (as wrk2 does). A broker that stalls therefore shows up in
//! the tail instead of silently slowing the sender (coordinated omission). The intended send
//! time is also written into the first 8 bytes of the value, for end-to-end latency.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use streambus::client::{
    ClientConfig, Consumer, ConsumerConfig, DeliveryFuture, GroupConfig, GroupConsumer, OffsetSpec,
    Producer, ProducerConfig, ProducerRecord,
};

use crate::settings::RunSettings;

/// Highest latency a histogram records, in µs (one hour); larger values are clamped.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Significant figures kept by the histograms.
pub const HISTOGRAM_SIGNIFICANT_FIGURES: u8 = 3;
/// In unlimited-rate mode, messages sent per read of the clock.
pub const CLOCK_READ_EVERY: u64 = 16;
/// Period of the reports actors send.
pub const TICK: Duration = Duration::from_secs(1);

/// A latency histogram in µs.
pub fn new_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts: this cannot fail.
    Histogram::new_with_bounds(1, LATENCY_US_MAX, HISTOGRAM_SIGNIFICANT_FIGURES)
        .expect("constant histogram bounds are valid")
}

/// Which kind of actor a report comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// A producer: counts are acknowledged messages, latency is send-to-ack.
    Producer,
    /// A consumer: counts are consumed messages, latency is end-to-end.
    Consumer,
}

/// What an actor measured during one interval.
#[derive(Debug)]
pub struct Interval {
    /// The actor's kind.
    pub kind: ActorKind,
    /// Seconds since the run started (the end of the interval).
    pub second: u64,
    /// Whether the interval lies in the warm-up (its figures are not counted).
    pub warmup: bool,
    /// Messages acknowledged or consumed.
    pub messages: u64,
    /// Value bytes acknowledged or consumed.
    pub bytes: u64,
    /// Errors.
    pub errors: u64,
    /// Latencies, µs.
    pub latency: Histogram<u64>,
}

/// Messages from actors to the main thread.
#[derive(Debug)]
pub enum Report {
    /// A consumer is assigned and reading from the end: producers may start.
    ConsumerReady,
    /// An interval's figures.
    Interval(Interval),
    /// A producer finished; all its messages are acknowledged or failed.
    ProducerDone {
        /// Messages it tried to send.
        attempted: u64,
        /// From the end of the warm-up to its last acknowledgement.
        measured: Duration,
    },
    /// A consumer stopped.
    ConsumerDone,
    /// An actor could not run.
    Failed(String),
}

struct Counters {
    messages: u64,
    bytes: u64,
    errors: u64,
    latency: Histogram<u64>,
}

impl Counters {
    fn new() -> Self {
        Self {
            messages: 0,
            bytes: 0,
            errors: 0,
            latency: new_histogram(),
        }
    }
}

/// Nanoseconds since the epoch on the wall clock.
pub fn wall_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

fn micros(duration: Duration) -> u64 {
    (duration.as_micros() as u64).clamp(1, LATENCY_US_MAX)
}

/// Sends one report per `TICK` until `done` is set, then a last one.
async fn ticker(
    kind: ActorKind,
    start: Instant,
    warmup_end: Instant,
    counters: Rc<RefCell<Counters>>,
    done: Rc<std::cell::Cell<bool>>,
    reports: Sender<Report>,
) {
    let mut next = start + TICK;
    loop {
        let now = Instant::now();
        if next > now {
            glommio::timer::sleep(next - now).await;
        }
        let finished = done.get();
        let interval = std::mem::replace(&mut *counters.borrow_mut(), Counters::new());
        let _ = reports.send(Report::Interval(Interval {
            kind,
            second: (next - start).as_secs(),
            warmup: next <= warmup_end,
            messages: interval.messages,
            bytes: interval.bytes,
            errors: interval.errors,
            latency: interval.latency,
        }));
        if finished {
            return;
        }
        next += TICK;
    }
}

/// One producer actor. `start` is shared by all actors so their intervals line up.
pub async fn producer_actor(
    id: usize,
    settings: RunSettings,
    start: Instant,
    start_wall_nanos: u64,
    reports: Sender<Report>,
) {
    let producer = match Producer::new(
        ClientConfig::new(&settings.bootstrap),
        ProducerConfig {
            acks: settings.acks.acks(),
            linger_ms: settings.linger_ms,
            batch_bytes: settings.batch_bytes,
            compression: settings.compression.codec(),
            buffer_bytes_max: (settings.batch_bytes * 8).max(64 << 20),
            idempotence: Some(settings.idempotent),
            ..ProducerConfig::default()
        },
    ) {
        Ok(producer) => producer,
        Err(error) => {
            let _ = reports.send(Report::Failed(error.to_string()));
            return;
        }
    };
    let warmup_end = start + Duration::from_secs(settings.warmup_s);
    let end = settings
        .duration_s
        .map(|seconds| warmup_end + Duration::from_secs(seconds));
    let quota = settings.messages.map(|total| {
        let producers = settings.producers as u64;
        total / producers + u64::from((id as u64) < total % producers)
    });
    let interval = (settings.rate > 0)
        .then(|| Duration::from_secs_f64(settings.producers as f64 / settings.rate as f64));
    let counters = Rc::new(RefCell::new(Counters::new()));
    let done = Rc::new(std::cell::Cell::new(false));
    let ticks = glommio::spawn_local(ticker(
        ActorKind::Producer,
        start,
        warmup_end,
        counters.clone(),
        done.clone(),
        reports.clone(),
    ));
    // Deliveries are awaited in order by a reaper task; each latency uses the moment its
    // batch completed, so awaiting in order does not inflate it.
    let pending: Rc<RefCell<VecDeque<(Instant, DeliveryFuture)>>> = Rc::default();
    let pending_waker: Rc<RefCell<Option<Waker>>> = Rc::default();
    let sending_done = Rc::new(std::cell::Cell::new(false));
    let reaper = {
        let pending = pending.clone();
        let pending_waker = pending_waker.clone();
        let sending_done = sending_done.clone();
        let counters = counters.clone();
        let message_bytes = settings.message_bytes as u64;
        glommio::spawn_local(async move {
            loop {
                let next = poll_fn(|context| {
                    if let Some(item) = pending.borrow_mut().pop_front() {
                        return Poll::Ready(Some(item));
                    }
                    if sending_done.get() {
                        return Poll::Ready(None);
                    }
                    *pending_waker.borrow_mut() = Some(context.waker().clone());
                    Poll::Pending
                })
                .await;
                let Some((intended, mut delivery)) = next else {
                    return;
                };
                let result = (&mut delivery).await;
                let completed = delivery.completed_at().unwrap_or_else(Instant::now);
                let mut counters = counters.borrow_mut();
                match result {
                    Ok(_) if intended >= warmup_end => {
                        counters.messages += 1;
                        counters.bytes += message_bytes;
                        let _ = counters
                            .latency
                            .record(micros(completed.saturating_duration_since(intended)));
                    }
                    Ok(_) => {}
                    Err(_) => counters.errors += 1,
                }
            }
        })
    };
    let mut payload = vec![b'x'; settings.message_bytes];
    let mut sent: u64 = 0;
    let mut next_intended = start;
    let mut coarse_now = start;
    loop {
        if quota.is_some_and(|quota| sent >= quota) {
            break;
        }
        let intended = match interval {
            Some(interval) => {
                let now = Instant::now();
                if end.is_some_and(|end| next_intended >= end) {
                    break;
                }
                if next_intended > now {
                    glommio::timer::sleep(next_intended - now).await;
                }
                let intended = next_intended;
                next_intended += interval;
                intended
            }
            None => {
                // As fast as possible: the clock is read every CLOCK_READ_EVERY messages
                // (reading it per message cost a tenth of the sender's CPU), so intended times
                // are accurate to a few microseconds.
                if sent.is_multiple_of(CLOCK_READ_EVERY) {
                    coarse_now = Instant::now();
                }
                if end.is_some_and(|end| coarse_now >= end) {
                    break;
                }
                coarse_now
            }
        };
        // The intended send time on the wall clock, which consumers on other threads share.
        let stamp = start_wall_nanos + intended.saturating_duration_since(start).as_nanos() as u64;
        payload[..8].copy_from_slice(&stamp.to_le_bytes());
        let record = ProducerRecord {
            topic: &settings.topic,
            value: Some(&payload),
            timestamp_ms: Some((stamp / 1_000_000) as i64),
            ..ProducerRecord::default()
        };
        match producer.send(record).await {
            Ok(delivery) => {
                pending.borrow_mut().push_back((intended, delivery));
                if let Some(waker) = pending_waker.borrow_mut().take() {
                    waker.wake();
                }
            }
            Err(_) => counters.borrow_mut().errors += 1,
        }
        sent += 1;
        // Without a rate, let the reaper and the I/O run now and then.
        if interval.is_none() && sent.is_multiple_of(256) {
            glommio::yield_if_needed().await;
        }
    }
    producer.flush().await;
    sending_done.set(true);
    if let Some(waker) = pending_waker.borrow_mut().take() {
        waker.wake();
    }
    reaper.await;
    let measured = Instant::now().saturating_duration_since(warmup_end);
    done.set(true);
    ticks.await;
    let _ = reports.send(Report::ProducerDone {
        attempted: sent,
        measured,
    });
}

/// One consumer actor: reads from the end of its partitions until `stop` is set.
pub async fn consumer_actor(
    id: usize,
    settings: RunSettings,
    start: Instant,
    producers_start_wall_nanos: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<AtomicBool>,
    reports: Sender<Report>,
) {
    let reader = match join_reader(id, &settings).await {
        Ok(reader) => reader,
        Err(error) => {
            let _ = reports.send(Report::Failed(format!("consumer {id}: {error}")));
            return;
        }
    };
    let _ = reports.send(Report::ConsumerReady);
    let warmup_ns = settings.warmup_s * 1_000_000_000;
    let counters = Rc::new(RefCell::new(Counters::new()));
    let done = Rc::new(std::cell::Cell::new(false));
    // The intervals start when the producers do, on their clock: a group member's join can
    // take seconds (the broker's initial rebalance delay), which would otherwise shift its
    // seconds against the producers'. Until then the consumer keeps polling, so that it takes
    // part in the rebalances of members joining after it.
    let mut ticks = None;
    while !stop.load(Ordering::Relaxed) {
        if ticks.is_none() {
            let producers_wall = producers_start_wall_nanos.load(Ordering::Relaxed);
            let now_wall = wall_nanos();
            if producers_wall <= now_wall {
                let aligned = Instant::now()
                    .checked_sub(Duration::from_nanos(now_wall - producers_wall))
                    .unwrap_or(start);
                ticks = Some(glommio::spawn_local(ticker(
                    ActorKind::Consumer,
                    aligned,
                    aligned + Duration::from_secs(settings.warmup_s),
                    counters.clone(),
                    done.clone(),
                    reports.clone(),
                )));
            }
        }
        match reader.poll(100_000, Duration::from_millis(100)).await {
            Ok(records) => {
                let now = wall_nanos();
                // Producers stamp intended send times from their own start; their warm-up
                // ends `warmup` after it.
                let warmup_end_wall =
                    producers_start_wall_nanos.load(Ordering::Relaxed) + warmup_ns;
                let mut counters = counters.borrow_mut();
                for record in records {
                    let Some(value) = record.value else { continue };
                    let Some(stamp) = value.get(..8) else {
                        continue;
                    };
                    let sent = u64::from_le_bytes(stamp.try_into().unwrap_or([0; 8]));
                    // Messages sent during the warm-up are not counted, as producers do not
                    // count them either.
                    if sent < warmup_end_wall {
                        continue;
                    }
                    counters.messages += 1;
                    counters.bytes += value.len() as u64;
                    let latency_us = (now.saturating_sub(sent) / 1_000).clamp(1, LATENCY_US_MAX);
                    let _ = counters.latency.record(latency_us);
                }
            }
            Err(_) => counters.borrow_mut().errors += 1,
        }
    }
    done.set(true);
    if let Some(ticks) = ticks {
        ticks.await;
    }
    if let Reader::Group(member) = &reader {
        // Leaving hands the partitions on at once; a failure here changes no measurement.
        let _ = member.close().await;
    }
    let _ = reports.send(Report::ConsumerDone);
}

/// How a consumer actor reads: partitions it assigns itself, or a group member's share.
enum Reader {
    Assigned(Consumer),
    Group(GroupConsumer),
}

impl Reader {
    async fn poll(
        &self,
        max_records: usize,
        timeout: Duration,
    ) -> streambus::client::ClientResult<Vec<streambus::client::ConsumerRecord>> {
        match self {
            Reader::Assigned(consumer) => consumer.poll(max_records, timeout).await,
            Reader::Group(member) => member.poll(max_records, timeout).await,
        }
    }
}

/// Assigns consumer `id`'s partitions at their ends, or joins `settings.group` (its first
/// poll takes part in the rebalance that brings it in).
async fn join_reader(id: usize, settings: &RunSettings) -> streambus::client::ClientResult<Reader> {
    let client = ClientConfig::new(&settings.bootstrap);
    if let Some(group) = &settings.group {
        let member = GroupConsumer::new(
            client,
            ConsumerConfig::default(),
            GroupConfig {
                offset_reset: OffsetSpec::Latest,
                ..GroupConfig::new(group.clone())
            },
        );
        member.subscribe(&[settings.topic.as_str()]);
        member.poll(1, Duration::ZERO).await?;
        return Ok(Reader::Group(member));
    }
    let consumer = Consumer::new(client, ConsumerConfig::default());
    let assignment: Vec<(&str, i32, OffsetSpec)> = (0..settings.partitions)
        .filter(|partition| {
            settings.consumers_read_all || (*partition as usize) % settings.consumers == id
        })
        .map(|partition| (settings.topic.as_str(), partition, OffsetSpec::Latest))
        .collect();
    consumer.assign(&assignment).await?;
    Ok(Reader::Assigned(consumer))
}
