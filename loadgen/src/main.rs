//! `streambus-loadgen`: open-loop load for any Kafka-compatible broker, with HDR latency
//! percentiles, a per-second timeline, JSON, `.hgrm` and SVG outputs, and run comparisons.
//!
//! The main thread creates the topic, starts one glommio executor per actor (pinned to
//! `--cores` round robin), prints a progress line each second from the actors' reports, and
//! writes the reports at the end.

mod actors;
mod report;
mod settings;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use streambus::client::{Admin, ClientConfig, ClientError, NewTopic};

use actors::{new_histogram, ActorKind, Report};
use report::{
    ConsumeFigures, EndToEndFigures, Host, Percentiles, ProduceFigures, RunReport, Second,
};
use settings::{Command, Flags, RunSettings};

/// glommio I/O memory per actor executor.
const ACTOR_IO_MEMORY_BYTES: usize = 4 << 20;
/// How long consumers may keep reading after the producers finished.
const CONSUME_GRACE: Duration = Duration::from_secs(10);
/// How long to wait for consumers to be assigned before producing.
const CONSUMER_READY_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let flags = Flags::parse();
    let result = match &flags.command {
        Some(Command::Compare { first, second }) => run_compare(first, second),
        None => RunSettings::resolve(&flags).and_then(|settings| run(&flags, settings)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("streambus-loadgen: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_compare(first: &std::path::Path, second: &std::path::Path) -> Result<(), String> {
    let read = |path: &std::path::Path| -> Result<RunReport, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    };
    print!("{}", report::compare(&read(first)?, &read(second)?));
    Ok(())
}

/// Runs `body` on a new executor, pinned to `core` if given.
fn spawn_actor<F, Fut>(
    name: &str,
    core: Option<usize>,
    body: F,
) -> Result<glommio::ExecutorJoinHandle<()>, String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let placement = core.map_or(Placement::Unbound, Placement::Fixed);
    LocalExecutorBuilder::new(placement)
        .name(name)
        .io_memory(ACTOR_IO_MEMORY_BYTES)
        .spawn(body)
        .map_err(|error| format!("cannot start {name}: {error} (is `ulimit -l` high enough?)"))
}

fn ensure_topic(settings: &RunSettings) -> Result<(), String> {
    let bootstrap = settings.bootstrap.clone();
    let topic = settings.topic.clone();
    let partitions = settings.partitions;
    let (sender, receiver) = mpsc::channel();
    spawn_actor("loadgen-admin", None, move || async move {
        let admin = Admin::new(ClientConfig::new(&bootstrap));
        let outcome = match admin.describe_topic(&topic).await {
            Ok(info) => Ok(info.partitions.len()),
            Err(ClientError::UnknownPartition { .. }) => {
                match admin
                    .create_topics(&[NewTopic::new(&topic, partitions)])
                    .await
                {
                    Ok(results) => match results.into_iter().next() {
                        Some(Err(error)) => Err(error.to_string()),
                        _ => Ok(partitions as usize),
                    },
                    Err(error) => Err(error.to_string()),
                }
            }
            Err(error) => Err(error.to_string()),
        };
        let _ = sender.send(outcome);
    })?
    .join()
    .map_err(|error| error.to_string())?;
    match receiver.recv() {
        Ok(Ok(existing)) if existing as i32 != partitions => Err(format!(
            "topic {} exists with {existing} partitions, not {partitions}",
            settings.topic
        )),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(format!("cannot prepare topic {}: {error}", settings.topic)),
        Err(_) => Err("the admin actor ended without an answer".into()),
    }
}

/// Merges interval reports into totals and the timeline.
struct Aggregate {
    produce: Histogram<u64>,
    e2e: Histogram<u64>,
    produced: u64,
    produced_bytes: u64,
    consumed: u64,
    consumed_bytes: u64,
    errors: u64,
    timeline: std::collections::BTreeMap<u64, (Second, Histogram<u64>, Histogram<u64>)>,
}

impl Aggregate {
    fn new() -> Self {
        Self {
            produce: new_histogram(),
            e2e: new_histogram(),
            produced: 0,
            produced_bytes: 0,
            consumed: 0,
            consumed_bytes: 0,
            errors: 0,
            timeline: Default::default(),
        }
    }

    fn add(&mut self, interval: actors::Interval) {
        let entry = self.timeline.entry(interval.second).or_insert_with(|| {
            (
                Second {
                    second: interval.second,
                    ..Second::default()
                },
                new_histogram(),
                new_histogram(),
            )
        });
        entry.0.warmup = interval.warmup;
        entry.0.errors += interval.errors;
        self.errors += interval.errors;
        match interval.kind {
            ActorKind::Producer => {
                entry.0.produced += interval.messages;
                entry.0.produced_mb += interval.bytes as f64 / 1e6;
                let _ = entry.1.add(&interval.latency);
                // Actors count only messages sent after the warm-up.
                self.produced += interval.messages;
                self.produced_bytes += interval.bytes;
                let _ = self.produce.add(&interval.latency);
            }
            ActorKind::Consumer => {
                entry.0.consumed += interval.messages;
                let _ = entry.2.add(&interval.latency);
                self.consumed += interval.messages;
                self.consumed_bytes += interval.bytes;
                let _ = self.e2e.add(&interval.latency);
            }
        }
    }

    fn progress(&self, second: u64) -> Option<String> {
        let (row, produce, e2e) = self.timeline.get(&second)?;
        let p99 = |h: &Histogram<u64>| {
            if h.is_empty() {
                "-".to_string()
            } else {
                format!("{} µs", h.value_at_quantile(0.99))
            }
        };
        Some(format!(
            "[{:>4}s{}] produce {:>9} msg/s {:>8.1} MB/s p99 {:>10} | consume {:>9} msg/s e2e p99 {:>10} | errors {}",
            second,
            if row.warmup { " warmup" } else { "" },
            row.produced,
            row.produced_mb,
            p99(produce),
            row.consumed,
            p99(e2e),
            self.errors
        ))
    }
}

fn run(flags: &Flags, settings: RunSettings) -> Result<(), String> {
    ensure_topic(&settings)?;
    let (reports, inbox) = mpsc::channel::<Report>();
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let producers_start_wall = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX / 2));
    let mut handles = Vec::new();
    let mut next_core = settings.cores.iter().copied().cycle();
    for id in 0..settings.consumers {
        let (settings, reports, stop) = (settings.clone(), reports.clone(), stop_consumers.clone());
        let producers_start_wall = producers_start_wall.clone();
        let core = if settings.cores.is_empty() {
            None
        } else {
            next_core.next()
        };
        handles.push(spawn_actor(
            &format!("loadgen-consumer-{id}"),
            core,
            move || async move {
                actors::consumer_actor(id, settings, start, producers_start_wall, stop, reports)
                    .await;
            },
        )?);
    }
    // Producers start once every consumer reads from the end, so nothing is missed.
    let mut ready = 0;
    let mut early = Vec::new();
    let deadline = Instant::now() + CONSUMER_READY_TIMEOUT;
    while ready < settings.consumers {
        match inbox.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Report::ConsumerReady) => ready += 1,
            Ok(Report::Failed(error)) => return Err(error),
            Ok(other) => early.push(other),
            Err(_) => return Err("consumers did not get ready in time".into()),
        }
    }
    // The clock restarts for the producers; consumers' intervals keep their own alignment.
    let start = Instant::now();
    let start_wall = actors::wall_nanos();
    producers_start_wall.store(start_wall, Ordering::Relaxed);
    for id in 0..settings.producers {
        let (settings, reports) = (settings.clone(), reports.clone());
        let core = if settings.cores.is_empty() {
            None
        } else {
            next_core.next()
        };
        handles.push(spawn_actor(
            &format!("loadgen-producer-{id}"),
            core,
            move || async move {
                actors::producer_actor(id, settings, start, start_wall, reports).await;
            },
        )?);
    }
    drop(reports);
    let mut aggregate = Aggregate::new();
    let mut producers_done = 0;
    let mut consumers_done = 0;
    let mut attempted = 0u64;
    let mut measured_span = Duration::ZERO;
    let mut producers_finished_at: Option<Instant> = None;
    let mut printed = 0u64;
    let mut failure = None;
    loop {
        let report = match inbox.recv_timeout(Duration::from_millis(200)) {
            Ok(report) => Some(report),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match report {
            Some(Report::Interval(interval)) => aggregate.add(interval),
            Some(Report::ProducerDone {
                attempted: count,
                measured,
            }) => {
                attempted += count;
                measured_span = measured_span.max(measured);
                producers_done += 1;
                if producers_done == settings.producers {
                    producers_finished_at = Some(Instant::now());
                }
            }
            Some(Report::ConsumerDone) => consumers_done += 1,
            Some(Report::ConsumerReady) => {}
            Some(Report::Failed(error)) => failure = Some(error),
            None => {}
        }
        // Print each second once the second after it has started (its reports are in).
        let elapsed = start.elapsed().as_secs();
        while printed + 1 < elapsed {
            printed += 1;
            if let Some(line) = aggregate.progress(printed) {
                eprintln!("{line}");
            }
        }
        if let Some(finished) = producers_finished_at {
            let wanted = if settings.consumers_read_all {
                aggregate.produced * settings.consumers as u64
            } else {
                aggregate.produced
            };
            let caught_up = settings.consumers == 0 || aggregate.consumed >= wanted;
            if caught_up || finished.elapsed() > CONSUME_GRACE {
                stop_consumers.store(true, Ordering::Relaxed);
            }
        }
        if producers_done == settings.producers && consumers_done == settings.consumers {
            // Drain what is left in the channel.
            while let Ok(report) = inbox.try_recv() {
                if let Report::Interval(interval) = report {
                    aggregate.add(interval);
                }
            }
            break;
        }
    }
    for handle in handles {
        let _ = handle.join();
    }
    if let Some(error) = failure {
        return Err(error);
    }
    let seconds = measured_span.as_secs_f64().max(1e-3);
    let produce = ProduceFigures {
        attempted,
        messages: aggregate.produced,
        bytes: aggregate.produced_bytes,
        mb_per_s: aggregate.produced_bytes as f64 / 1e6 / seconds,
        msgs_per_s: aggregate.produced as f64 / seconds,
        latency_us: Percentiles::of(&aggregate.produce),
    };
    let consume = ConsumeFigures {
        messages: aggregate.consumed,
        bytes: aggregate.consumed_bytes,
        mb_per_s: aggregate.consumed_bytes as f64 / 1e6 / seconds,
        msgs_per_s: aggregate.consumed as f64 / seconds,
    };
    let timeline: Vec<Second> = aggregate
        .timeline
        .values()
        .map(|(row, produce, e2e)| Second {
            produce_p99_us: if produce.is_empty() {
                0
            } else {
                produce.value_at_quantile(0.99)
            },
            e2e_p99_us: if e2e.is_empty() {
                0
            } else {
                e2e.value_at_quantile(0.99)
            },
            ..row.clone()
        })
        .collect();
    let report = RunReport {
        params: settings.clone(),
        host: Host::current(),
        seconds,
        produce,
        consume,
        e2e: EndToEndFigures {
            latency_us: Percentiles::of(&aggregate.e2e),
        },
        errors: aggregate.errors,
        timeline,
    };
    print!("{}", report.summary());
    if let Some(path) = &flags.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &flags.hgrm {
        report::write_hgrm(&aggregate.produce, path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if !aggregate.e2e.is_empty() {
            let e2e_path = path.with_extension("e2e.hgrm");
            report::write_hgrm(&aggregate.e2e, &e2e_path)
                .map_err(|e| format!("{}: {e}", e2e_path.display()))?;
        }
    }
    if let Some(path) = &flags.plot {
        let title = format!(
            "{} B, acks={:?}, rate {}",
            settings.message_bytes,
            settings.acks,
            if settings.rate == 0 {
                "max".to_string()
            } else {
                format!("{} msgs/s", settings.rate)
            }
        );
        report::write_plot(
            &[
                ("send→ack", &aggregate.produce),
                ("end-to-end", &aggregate.e2e),
            ],
            &title,
            path,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
