//! Shards: one glommio executor per core, each owning its partitions outright.
//!
//! | piece | file | role |
//! | --- | --- | --- |
//! | [`ShardContext`] | `mod.rs` | what one shard owns: its partition logs, the metadata snapshot it serves, its limits |
//! | mesh | `mesh.rs` | bounded glommio channels between every pair of shards, for the control plane only |
//! | control plane | `control/` | messages, the client that forwards to shard 0, shard 0's controller (create, delete, grow topics; persist; publish), the mesh receive loop |
//!
//! Starting shards (sockets, executors pinned to cores, readiness, signals and shutdown) is
//! [`crate::broker`]'s, above this module and [`crate::server`], so that `shard` never calls
//! into the server.
//!
//! Inside a shard everything is `Rc`/`RefCell`: there is one thread, so no lock or atomic is
//! needed on the produce or fetch path, and none is taken. Only the control plane crosses
//! cores: metadata snapshots are immutable `Arc`s sent over the mesh.

pub mod control;
mod event;
pub mod mesh;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use tracing::{info, warn};

use crate::cluster::ClusterMetadata;
use crate::config::BrokerConfig;
use crate::storage::{MemTableBudget, PartitionLog};

pub use control::{ControlClient, ControlRequest, NewTopic, TopicOutcome};
pub use event::Event;

/// Directory under the data directory holding one directory per partition.
pub const TOPICS_DIRECTORY: &str = "topics";
/// File in a partition directory naming the topic id it belongs to, so that the data of a
/// deleted topic is never served as a new topic of the same name.
pub const TOPIC_ID_FILE: &str = ".topic_id";

/// The partitions of one topic that this shard owns.
pub struct TopicLogs {
    /// The topic id the logs belong to.
    pub topic_id: u128,
    /// By partition index; `None` where another shard owns the partition.
    pub logs: Vec<Option<PartitionLog>>,
}

/// Where a partition stands, as seen by the shard a request reached.
pub enum PartitionLookup {
    /// This shard owns it: here is its log.
    Local(PartitionLog),
    /// Another shard owns it.
    Elsewhere,
    /// No such topic or partition.
    Unknown,
}

/// Everything one shard owns and serves.
pub struct ShardContext {
    /// This shard's id, also its Kafka node id.
    pub shard_id: u32,
    /// Shards in the broker.
    pub shard_count: u32,
    /// The broker's configuration.
    pub config: Arc<BrokerConfig>,
    /// The host Metadata advertises.
    pub advertised_host: String,
    /// The bootstrap port; shard `s` listens on its own port `bootstrap_port + 1 + s`.
    pub bootstrap_port: u16,
    metadata: RefCell<Arc<ClusterMetadata>>,
    topics: RefCell<HashMap<String, TopicLogs>>,
    budget: Rc<MemTableBudget>,
    /// Control-plane requests go through it (to shard 0).
    pub control: ControlClient,
    /// Committed offsets of the groups this shard coordinates.
    pub offsets: Rc<crate::group::OffsetStore>,
    /// The classic groups this shard coordinates (membership).
    pub groups: Rc<crate::group::GroupCoordinator>,
    /// The consumer-protocol (KIP-848) groups this shard coordinates.
    pub consumer_groups: Rc<crate::group::ConsumerGroupCoordinator>,
    /// The producer ids this shard hands out (InitProducerId).
    pub producer_ids: Rc<crate::producer::ProducerIdAllocator>,
    /// Set when the broker is stopping.
    pub shutdown: Rc<Event>,
    /// Set once the first metadata snapshot is applied.
    pub metadata_ready: Rc<Event>,
    connections: Cell<usize>,
}

impl ShardContext {
    /// A shard with no partitions yet; the first metadata snapshot opens them.
    pub fn new(
        shard_id: u32,
        config: Arc<BrokerConfig>,
        bootstrap_port: u16,
        control: ControlClient,
        offsets: Rc<crate::group::OffsetStore>,
    ) -> Self {
        let shard_count = config.shard_count() as u32;
        let budget = MemTableBudget::new(config.memtable_budget_bytes_per_shard);
        let producer_ids = Rc::new(crate::producer::ProducerIdAllocator::new(
            &config.data_dir,
            shard_id,
        ));
        Self {
            shard_id,
            shard_count,
            advertised_host: config.advertised_host(),
            config,
            bootstrap_port,
            metadata: RefCell::new(Arc::new(ClusterMetadata::new(String::new(), shard_count))),
            topics: RefCell::new(HashMap::new()),
            budget,
            control,
            groups: crate::group::GroupCoordinator::new(offsets.settings().clone()),
            consumer_groups: crate::group::ConsumerGroupCoordinator::new(
                offsets.settings().clone(),
            ),
            offsets,
            producer_ids,
            shutdown: Rc::new(Event::default()),
            metadata_ready: Rc::new(Event::default()),
            connections: Cell::new(0),
        }
    }

    /// The metadata snapshot this shard serves.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.metadata.borrow().clone()
    }

    /// The port of a shard's own listener.
    pub fn shard_port(&self, shard: u32) -> u16 {
        self.bootstrap_port
            .saturating_add(1)
            .saturating_add(shard as u16)
    }

    /// Finds a partition's log, if this shard owns it.
    pub fn lookup(&self, topic: &str, partition: i32) -> PartitionLookup {
        let Ok(index) = usize::try_from(partition) else {
            return PartitionLookup::Unknown;
        };
        if let Some(Some(log)) = self
            .topics
            .borrow()
            .get(topic)
            .and_then(|topic| topic.logs.get(index))
        {
            return PartitionLookup::Local(log.clone());
        }
        match self.metadata.borrow().owner(topic, partition) {
            Some(owner) if owner != self.shard_id => PartitionLookup::Elsewhere,
            // Owned here but not open: being created or deleted right now.
            Some(_) => PartitionLookup::Elsewhere,
            None => PartitionLookup::Unknown,
        }
    }

    /// Every log this shard owns.
    pub fn logs(&self) -> Vec<PartitionLog> {
        self.topics
            .borrow()
            .values()
            .flat_map(|topic| topic.logs.iter().flatten().cloned())
            .collect()
    }

    /// Counts a new connection in, if the shard is below its limit.
    pub fn try_add_connection(&self) -> bool {
        let open = self.connections.get();
        if open >= self.config.connections_per_shard_max {
            return false;
        }
        self.connections.set(open + 1);
        true
    }

    /// Counts a closed connection out.
    pub fn remove_connection(&self) {
        self.connections
            .set(self.connections.get().saturating_sub(1));
    }

    /// Connections open now.
    pub fn connection_count(&self) -> usize {
        self.connections.get()
    }

    /// A partition's directory.
    pub fn partition_directory(&self, topic: &str, partition: usize) -> PathBuf {
        self.config
            .data_dir
            .join(TOPICS_DIRECTORY)
            .join(format!("{topic}-{partition}"))
    }

    /// Makes this shard serve `snapshot`: deletes the logs of topics that are gone (or were
    /// re-created under a new id), opens the logs of partitions newly placed here, and only
    /// then switches the snapshot, so a request never finds a partition the metadata promises
    /// but the shard cannot serve yet.
    pub async fn apply_snapshot(&self, snapshot: Arc<ClusterMetadata>) {
        // Committed offsets of a deleted topic go with it, as in Kafka: a topic created again
        // under the name must not inherit positions in data that no longer exists.
        let deleted_topics: Vec<String> = self
            .metadata()
            .topics
            .iter()
            .filter(|(name, old)| !snapshot.has_topic(name, old.topic_id))
            .map(|(name, _)| name.clone())
            .collect();
        if !deleted_topics.is_empty() {
            self.offsets
                .forget_topics(&deleted_topics, crate::group::now_ms())
                .await;
        }
        let removed: Vec<(String, TopicLogs)> = {
            let mut topics = self.topics.borrow_mut();
            let gone: Vec<String> = topics
                .iter()
                .filter(|(name, logs)| !snapshot.has_topic(name, logs.topic_id))
                .map(|(name, _)| name.clone())
                .collect();
            gone.into_iter()
                .filter_map(|name| topics.remove(&name).map(|logs| (name, logs)))
                .collect()
        };
        for (name, logs) in removed {
            for (partition, log) in logs.logs.into_iter().enumerate() {
                let Some(log) = log else { continue };
                match log.delete().await {
                    Ok(()) => info!(topic = %name, partition, "partition deleted"),
                    Err(error) => {
                        warn!(topic = %name, partition, %error, "deleting partition failed")
                    }
                }
            }
        }
        for (name, topic) in &snapshot.topics {
            for (partition, &owner) in topic.partition_shards.iter().enumerate() {
                let already_open = self
                    .topics
                    .borrow()
                    .get(name)
                    .and_then(|logs| logs.logs.get(partition))
                    .is_some_and(Option::is_some);
                if owner != self.shard_id || already_open {
                    continue;
                }
                let directory = self.partition_directory(name, partition);
                let log_config = topic.configs.log_config(&self.config.log);
                match open_partition(&directory, topic.topic_id, log_config, &self.budget).await {
                    Ok(log) => {
                        let mut topics = self.topics.borrow_mut();
                        let logs = topics.entry(name.clone()).or_insert_with(|| TopicLogs {
                            topic_id: topic.topic_id,
                            logs: Vec::new(),
                        });
                        if logs.logs.len() <= partition {
                            logs.logs.resize_with(partition + 1, || None);
                        }
                        if let Some(slot) = logs.logs.get_mut(partition) {
                            *slot = Some(log);
                        }
                    }
                    Err(error) => {
                        warn!(topic = %name, partition, %error, "opening partition failed; it stays unavailable")
                    }
                }
            }
        }
        *self.metadata.borrow_mut() = snapshot;
        self.metadata_ready.trigger();
    }

    /// Runs one retention pass over every log this shard owns.
    pub async fn apply_retention(&self, now_ms: i64) {
        for log in self.logs() {
            match log.apply_retention(now_ms).await {
                Ok(outcome) if outcome.segments_deleted > 0 => info!(
                    directory = %log.directory().display(),
                    segments = outcome.segments_deleted,
                    bytes = outcome.bytes_deleted,
                    log_start_offset = outcome.log_start_offset,
                    "retention deleted segments"
                ),
                Ok(_) => {}
                Err(error) => {
                    warn!(directory = %log.directory().display(), %error, "retention failed")
                }
            }
        }
    }

    /// Closes every log: writes what is staged, fdatasyncs it, and leaves clean-shutdown
    /// markers.
    pub async fn close_logs(&self) {
        for log in self.logs() {
            if let Err(error) = log.close().await {
                warn!(directory = %log.directory().display(), %error, "closing partition failed");
            }
        }
    }
}

/// Opens a partition's log, first wiping a directory left by an older topic of the same name.
async fn open_partition(
    directory: &Path,
    topic_id: u128,
    config: crate::storage::LogConfig,
    budget: &Rc<MemTableBudget>,
) -> Result<PartitionLog, String> {
    let prepared = directory.to_path_buf();
    crate::blocking::run_blocking(move || prepare_partition_directory(&prepared, topic_id)).await?;
    PartitionLog::open(directory, config, budget.clone())
        .await
        .map_err(|error| error.to_string())
}

/// Makes `directory` the home of topic `topic_id`'s partition: removes what an older topic
/// of the same name left there, creates it, and records the topic id durably. Blocking: runs
/// on glommio's blocking pool.
fn prepare_partition_directory(directory: &Path, topic_id: u128) -> Result<(), String> {
    let id_path = directory.join(TOPIC_ID_FILE);
    let expected = format!("{topic_id:032x}");
    match std::fs::read_to_string(&id_path) {
        Ok(found) if found.trim() == expected => {}
        Ok(found) => {
            warn!(
                directory = %directory.display(),
                found = found.trim(),
                expected,
                "partition directory belongs to a deleted topic of the same name; removing it"
            );
            std::fs::remove_dir_all(directory)
                .map_err(|error| format!("remove {}: {error}", directory.display()))?;
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(format!("read {}: {error}", id_path.display())),
    }
    std::fs::create_dir_all(directory)
        .map_err(|error| format!("create {}: {error}", directory.display()))?;
    if !id_path.exists() {
        write_durably(&id_path, expected.as_bytes())?;
    }
    Ok(())
}

fn write_durably(path: &Path, contents: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)
        .map_err(|error| format!("create {}: {error}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|error| format!("write {}: {error}", path.display()))
}
