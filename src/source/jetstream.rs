//! Reading a NATS JetStream stream (cargo feature `nats`), replayable:
//! [`JetStreamSource`].
//!
//! The stream is read as *partitions*: the whole stream, or one partition
//! per subject given to [`JetStreamSource::partitions`] (exact subjects).
//! Partition `i` is read by subtask `i % parallelism`, through an ordered
//! consumer (no acks, no durable state on the server) that starts after the
//! partition's *position*: the stream sequence of its last record that left
//! the source. A subtask reads its partitions in stream order (one consumer
//! of the stream, filtered by subject, when it has several), so a replay
//! emits the same records in the same order: what a sink that names its
//! output by position (the [JetStream sink](crate::sink::jetstream)) needs. Positions are operator state (union-redistributed, so a rescaled
//! job finds every partition's position): a restore replays each partition
//! exactly from its checkpoint. Records carry the message's publish time as
//! their timestamp; give the stream a
//! [`WatermarkStrategy`](crate::time::WatermarkStrategy) without a timestamp
//! assigner (and `with_idleness` for quiet partitions) for event time. The
//! server stamps a message when it appends it, so publish times follow the
//! stream's order (up to a step of the server's clock, or the skew between
//! servers when a cluster's leader changes: give the strategy that much
//! out-of-orderness). A subtask reads its partitions in stream order, so
//! its watermark needs no per-partition tracking (unlike Kafka's
//! partitions, read side by side), and a subtask whose partitions are all
//! quiet goes idle through `with_idleness`.
//!
//! [`JetStreamSource::bounded`] reads what the partitions hold when the job
//! starts, then finishes; otherwise the source reads forever.
//!
//! ```no_run
//! use weir::source::jetstream::JetStreamSource;
//! use weir::StreamEnv;
//!
//! let env = StreamEnv::with_parallelism(2);
//! let orders = env.add_source(
//!     JetStreamSource::new("nats://127.0.0.1:4222", "ORDERS", |payload: &[u8]| {
//!         Ok(String::from_utf8(payload.to_vec())?)
//!     })
//!     .partitions(["orders.eu", "orders.us"]),
//! );
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use futures::StreamExt;
use weir_actors::error::Permanent;
use weir_actors::{RecordBatch, UserError};

use super::{Source, SourceStatus};
use crate::context::RuntimeContext;
use crate::io_runtime::run;
use crate::lifecycle::Lifecycle;
use crate::state::{ListStateDescriptor, StateInitContext, StateSnapshotContext};

type Decode<T> = Arc<dyn Fn(&[u8]) -> Result<T, UserError> + Send + Sync>;

/// A replayable source of a JetStream stream; see the [module](self).
pub struct JetStreamSource<T> {
    settings: Arc<Settings<T>>,
    /// Partition -> the stream sequence of its last record emitted.
    positions: BTreeMap<String, u64>,
    reader: Option<Reader>,
    where_: String,
}

struct Settings<T> {
    url: String,
    stream: String,
    /// Subjects, one partition each; empty: the whole stream is one.
    partitions: Vec<String>,
    decode: Decode<T>,
    bounded: bool,
    capacity: usize,
}

impl<T> Clone for Settings<T> {
    fn clone(&self) -> Self {
        Settings {
            url: self.url.clone(),
            stream: self.stream.clone(),
            partitions: self.partitions.clone(),
            decode: self.decode.clone(),
            bounded: self.bounded,
            capacity: self.capacity,
        }
    }
}

/// What the reading task hands to the subtask.
enum Event {
    Message {
        partition: String,
        subject: String,
        sequence: u64,
        published_ms: i64,
        payload: bytes::Bytes,
    },
    /// The bounded partitions were read to their end.
    Done,
    Failed(UserError),
}

struct Reader {
    events: tokio::sync::mpsc::Receiver<Event>,
    /// Every partition was read to its end (bounded).
    done: bool,
    task: Option<tokio::task::AbortHandle>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A position in the source's operator state.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Position {
    partition: String,
    sequence: u64,
}

fn positions_state() -> ListStateDescriptor<Position> {
    ListStateDescriptor::new("jetstream-positions")
}

impl<T> Clone for JetStreamSource<T> {
    /// The same source, not reading (a new subtask's instance).
    fn clone(&self) -> Self {
        JetStreamSource {
            settings: self.settings.clone(),
            positions: BTreeMap::new(),
            reader: None,
            where_: String::new(),
        }
    }
}

impl<T: Send + 'static> JetStreamSource<T> {
    /// Reads stream `stream` of the server at `url`, each message's payload
    /// made a record by `decode` (an error names the message and stops the job).
    pub fn new(
        url: &str,
        stream: &str,
        decode: impl Fn(&[u8]) -> Result<T, UserError> + Send + Sync + 'static,
    ) -> Self {
        JetStreamSource {
            settings: Arc::new(Settings {
                url: url.to_string(),
                stream: stream.to_string(),
                partitions: Vec::new(),
                decode: Arc::new(decode),
                bounded: false,
                capacity: 4096,
            }),
            positions: BTreeMap::new(),
            reader: None,
            where_: String::new(),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Settings<T>)) -> Self {
        let mut settings = (*self.settings).clone();
        change(&mut settings);
        self.settings = Arc::new(settings);
        self
    }

    /// Reads one partition per subject (each a subject of the stream, read
    /// in parallel) instead of the whole stream as one.
    pub fn partitions<S: Into<String>>(self, subjects: impl IntoIterator<Item = S>) -> Self {
        let subjects: Vec<String> = subjects.into_iter().map(Into::into).collect();
        self.with(|s| s.partitions = subjects)
    }

    /// Reads what the partitions hold when the job starts, then finishes.
    pub fn bounded(self) -> Self {
        self.with(|s| s.bounded = true)
    }

    fn all_partitions(&self) -> Vec<String> {
        if self.settings.partitions.is_empty() {
            vec![String::new()]
        } else {
            self.settings.partitions.clone()
        }
    }

    /// Starts reading this subtask's partitions.
    fn start(&mut self, subtask: usize, parallelism: usize) -> Result<(), UserError> {
        let mine: Vec<(String, u64)> = self
            .all_partitions()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % parallelism.max(1) == subtask)
            .map(|(_, p)| {
                let after = self.positions.get(&p).copied().unwrap_or(0);
                (p, after)
            })
            .collect();
        let (sender, events) = tokio::sync::mpsc::channel(self.settings.capacity);
        let settings = self.settings.clone();
        let task = run(async move {
            if mine.is_empty() {
                let _ = sender.send(Event::Done).await;
                return Ok(None);
            }
            let context = crate::nats::connect(&settings.url).await?;
            let stream = context.get_stream(&settings.stream).await.map_err(|e| {
                Permanent(format!("NATS {}: stream {}: {e}", settings.url, settings.stream).into())
            })?;
            let end = if settings.bounded {
                let mut end = 0;
                for (partition, _) in &mine {
                    end = end.max(last_sequence(&stream, partition).await.map_err(|e| {
                        format!(
                            "NATS {}: stream {}: cannot read the end of {partition:?}: {e}",
                            settings.url, settings.stream
                        )
                    })?);
                }
                Some(end)
            } else {
                None
            };
            let where_ = format!("NATS {} stream {}", settings.url, settings.stream);
            let task = tokio::spawn(read_partitions(stream, mine, end, sender, where_));
            Ok::<_, UserError>(Some(task.abort_handle()))
        })??;
        self.reader = Some(Reader {
            events,
            done: false,
            task,
        });
        Ok(())
    }
}

/// The stream sequence of the last message of `partition` ("": the stream).
async fn last_sequence(
    stream: &async_nats::jetstream::stream::Stream,
    partition: &str,
) -> Result<u64, String> {
    if partition.is_empty() {
        let mut stream = stream.clone();
        return Ok(stream
            .info()
            .await
            .map_err(|e| e.to_string())?
            .state
            .last_sequence);
    }
    match stream.get_last_raw_message_by_subject(partition).await {
        Ok(message) => Ok(message.sequence),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
        Err(e) => Err(e.to_string()),
    }
}

/// Reads `partitions` (each after its position), in stream order, up to
/// `end` when bounded, into `sender`.
async fn read_partitions(
    stream: async_nats::jetstream::stream::Stream,
    partitions: Vec<(String, u64)>,
    end: Option<u64>,
    sender: tokio::sync::mpsc::Sender<Event>,
    where_: String,
) {
    let after: BTreeMap<String, u64> = partitions.iter().cloned().collect();
    let start = partitions
        .iter()
        .map(|(_, after)| after + 1)
        .min()
        .unwrap_or(1);
    if end.is_some_and(|end| end < start) {
        let _ = sender.send(Event::Done).await;
        return;
    }
    // One partition: the server filters; several: one consumer of the
    // stream, filtered here, so that they come in stream order.
    let single = match partitions.as_slice() {
        [(partition, _)] => Some(partition.clone()),
        _ => None,
    };
    let config = OrderedConfig {
        filter_subject: single.clone().unwrap_or_default(),
        deliver_policy: if start <= 1 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: start,
            }
        },
        ..Default::default()
    };
    let failed = |e: String| Event::Failed(format!("{where_}: {e}").into());
    let consumer = match stream.create_consumer(config).await {
        Ok(consumer) => consumer,
        Err(e) => {
            let _ = sender.send(failed(e.to_string())).await;
            return;
        }
    };
    let mut messages = match consumer.messages().await {
        Ok(messages) => messages,
        Err(e) => {
            let _ = sender.send(failed(e.to_string())).await;
            return;
        }
    };
    while let Some(message) = messages.next().await {
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                let _ = sender.send(failed(e.to_string())).await;
                return;
            }
        };
        let (sequence, published_ms) = match message.info() {
            Ok(info) => (
                info.stream_sequence,
                (info.published.unix_timestamp_nanos() / 1_000_000) as i64,
            ),
            Err(e) => {
                let _ = sender.send(failed(e.to_string())).await;
                return;
            }
        };
        let subject = message.subject.to_string();
        let partition = match &single {
            Some(partition) => Some(partition.clone()),
            None => after.contains_key(&subject).then(|| subject.clone()),
        };
        let fresh = partition
            .as_ref()
            .is_some_and(|p| after.get(p).is_none_or(|&a| sequence > a));
        if let (Some(partition), true) = (partition, fresh) {
            let event = Event::Message {
                partition,
                subject,
                sequence,
                published_ms,
                payload: message.payload.clone(),
            };
            if sender.send(event).await.is_err() {
                return;
            }
        }
        if end.is_some_and(|end| sequence >= end) {
            let _ = sender.send(Event::Done).await;
            return;
        }
    }
}

impl<T: Send + 'static> Lifecycle for JetStreamSource<T> {
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        for position in ctx.operator_state().union_list(&positions_state())?.get()? {
            let at = self.positions.entry(position.partition).or_insert(0);
            *at = (*at).max(position.sequence);
        }
        Ok(())
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.where_ = format!("NATS {} stream {}", self.settings.url, self.settings.stream);
        self.start(ctx.subtask_index(), ctx.parallelism())
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        let positions: Vec<Position> = self
            .positions
            .iter()
            .map(|(partition, &sequence)| Position {
                partition: partition.clone(),
                sequence,
            })
            .collect();
        ctx.operator_state()
            .union_list(&positions_state())?
            .update(&positions)?;
        Ok(())
    }

    fn close(&mut self) -> Result<(), UserError> {
        self.reader = None;
        Ok(())
    }
}

impl<T: Send + 'static> Source<T> for JetStreamSource<T> {
    fn poll_next(&mut self, out: &mut Vec<T>, max: usize) -> Result<SourceStatus, UserError> {
        let mut batch = RecordBatch::with_capacity(max);
        let status = self.poll_next_timestamped(&mut batch, max)?;
        out.extend(batch.records);
        Ok(status)
    }

    fn poll_next_timestamped(
        &mut self,
        out: &mut RecordBatch<T>,
        max: usize,
    ) -> Result<SourceStatus, UserError> {
        let Some(reader) = self.reader.as_mut() else {
            return Err("the JetStream source was polled before it was opened".into());
        };
        while out.len() < max {
            match reader.events.try_recv() {
                Ok(Event::Message {
                    partition,
                    subject,
                    sequence,
                    published_ms,
                    payload,
                }) => {
                    let record = (self.settings.decode)(&payload).map_err(|e| {
                        Permanent(
                            format!(
                                "{}: message {sequence} (subject {subject}) cannot be read: {e}",
                                self.where_
                            )
                            .into(),
                        )
                    })?;
                    out.push(record, Some(published_ms));
                    self.positions.insert(partition, sequence);
                }
                Ok(Event::Done) => reader.done = true,
                Ok(Event::Failed(e)) => return Err(e),
                Err(_) => break,
            }
        }
        let finished = self.settings.bounded && reader.done && out.is_empty();
        Ok(if finished {
            SourceStatus::Finished
        } else {
            SourceStatus::More
        })
    }
}
