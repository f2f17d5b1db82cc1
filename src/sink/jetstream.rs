//! Publishing to NATS JetStream without duplicates (cargo feature `nats`):
//! [`JetStreamSink`].
//!
//! Every message carries a `Nats-Msg-Id` header, and the stream's
//! de-duplication drops a message whose id it has seen within its
//! `duplicate_window` (2 minutes by default: set it to more than the
//! longest restart you expect). The sink waits for every publish
//! acknowledgement before it acknowledges a checkpoint, so everything
//! before a checkpoint is in the stream when the checkpoint completes.
//!
//! The id is, by default, the message's position:
//! `{job}:{sink uid}:{subtask}:{lineage}:{epoch}:{n}`, the `n`-th message
//! the subtask published in the job's lineage (`epoch` is 0, or the restored
//! checkpoint after a restore at another parallelism). `n` is checkpointed:
//! a restore replays the records after the checkpoint, they get the ids they
//! had, and the server drops them. That holds when the records reach each
//! sink subtask in the same order on a replay (a source that replays in
//! order, connections forward or from one input); where several inputs
//! merge in an order that can change, give each message an id of its own
//! with [`JetStreamSink::message_id`] (an order id, say), or a replay could
//! be taken for what it is not. A restore at another parallelism starts a
//! new epoch: its replayed records may be published twice.
//!
//! ```no_run
//! use weir::sink::jetstream::JetStreamSink;
//! use weir::StreamEnv;
//!
//! let env = StreamEnv::with_parallelism(2);
//! env.from_collection(vec![("alice".to_string(), 5u64)])
//!     .add_sink(JetStreamSink::new("nats://127.0.0.1:4222", |(customer, total): (String, u64)| {
//!         (format!("totals.{customer}"), total.to_string().into_bytes())
//!     }))
//!     .uid("totals");
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::Context;
use weir_actors::UserError;

use super::Sink;
use crate::context::RuntimeContext;
use crate::io_runtime::run;
use crate::lifecycle::Lifecycle;
use crate::state::{ListStateDescriptor, StateInitContext, StateSnapshotContext};

type ToMessage<T> = Arc<dyn Fn(T) -> (String, Vec<u8>) + Send + Sync>;
type MessageId<T> = Arc<dyn Fn(&T) -> String + Send + Sync>;

/// Acknowledgements waited for at once, at most (a bound on memory).
const MAX_PENDING_ACKS: usize = 8192;

/// A sink publishing each record to a JetStream subject; see the [module](self).
pub struct JetStreamSink<T> {
    url: String,
    to_message: ToMessage<T>,
    message_id: Option<MessageId<T>>,
    duplicates: Arc<AtomicU64>,
    instance: Instance,
}

#[derive(Default)]
struct Instance {
    context: Option<Context>,
    /// `{job}:{uid}:{subtask}:{lineage}:{epoch}`.
    prefix: String,
    subtask: usize,
    parallelism: usize,
    epoch: u64,
    /// Messages published in this epoch.
    published: u64,
    acks: Vec<PublishAckFuture>,
}

/// A subtask's count of published messages, in the sink's operator state.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Published {
    subtask: usize,
    parallelism: usize,
    epoch: u64,
    count: u64,
}

fn published_state() -> ListStateDescriptor<Published> {
    ListStateDescriptor::new("jetstream-published")
}

impl<T> Clone for JetStreamSink<T> {
    /// The same sink, not connected (a new subtask's instance).
    fn clone(&self) -> Self {
        JetStreamSink {
            url: self.url.clone(),
            to_message: self.to_message.clone(),
            message_id: self.message_id.clone(),
            duplicates: self.duplicates.clone(),
            instance: Instance::default(),
        }
    }
}

impl<T: Send + 'static> JetStreamSink<T> {
    /// Publishes each record to the server at `url`, as the subject and
    /// payload `to_message` makes of it (the subject must belong to a stream).
    pub fn new(
        url: &str,
        to_message: impl Fn(T) -> (String, Vec<u8>) + Send + Sync + 'static,
    ) -> Self {
        JetStreamSink {
            url: url.to_string(),
            to_message: Arc::new(to_message),
            message_id: None,
            duplicates: Arc::default(),
            instance: Instance::default(),
        }
    }

    /// Gives each message the id `id` makes of its record (unique per
    /// message, the same on a replay) instead of its position.
    pub fn message_id(mut self, id: impl Fn(&T) -> String + Send + Sync + 'static) -> Self {
        self.message_id = Some(Arc::new(id));
        self
    }

    /// Messages the server reported as duplicates (replays it dropped), over
    /// every subtask of this sink.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Waits for every publish acknowledgement.
    fn settle(&mut self) -> Result<(), UserError> {
        if self.instance.acks.is_empty() {
            return Ok(());
        }
        let acks = std::mem::take(&mut self.instance.acks);
        let (url, duplicates) = (self.url.clone(), self.duplicates.clone());
        run(async move {
            for ack in acks {
                let ack = ack
                    .await
                    .map_err(|e| format!("NATS {url}: a publish was not acknowledged: {e}"))?;
                if ack.duplicate {
                    duplicates.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<(), UserError>(())
        })?
    }
}

impl<T: Send + 'static> Lifecycle for JetStreamSink<T> {
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        let runtime = ctx.runtime();
        let (subtask, parallelism) = (runtime.subtask_index(), runtime.parallelism());
        let restored_id = runtime.restored_checkpoint_id().unwrap_or(0);
        let restored = ctx.operator_state().union_list(&published_state())?.get()?;
        // The same subtask at the same parallelism goes on counting; any
        // other restore starts an epoch of its own.
        let mine = restored
            .iter()
            .find(|p| p.subtask == subtask && p.parallelism == parallelism);
        (self.instance.epoch, self.instance.published) = match mine {
            Some(p) => (p.epoch, p.count),
            None => (restored_id, 0),
        };
        self.instance.subtask = subtask;
        self.instance.parallelism = parallelism;
        Ok(())
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.instance.prefix = format!(
            "{}:{}:{}:{}:{}",
            ctx.job_name(),
            ctx.uid(),
            ctx.subtask_index(),
            ctx.lineage(),
            self.instance.epoch
        );
        let url = self.url.clone();
        self.instance.context = Some(run(async move { crate::nats::connect(&url).await })??);
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        self.settle()?;
        let published = Published {
            subtask: self.instance.subtask,
            parallelism: self.instance.parallelism,
            epoch: self.instance.epoch,
            count: self.instance.published,
        };
        ctx.operator_state()
            .union_list(&published_state())?
            .update(&[published])?;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        self.settle()
    }

    fn close(&mut self) -> Result<(), UserError> {
        self.instance.acks.clear();
        self.instance.context = None;
        Ok(())
    }
}

impl<T: Send + 'static> Sink<T> for JetStreamSink<T> {
    fn write(&mut self, record: T) -> Result<(), UserError> {
        self.write_batch(vec![record])
    }

    fn write_batch(&mut self, batch: Vec<T>) -> Result<(), UserError> {
        let Some(context) = self.instance.context.clone() else {
            return Err("the JetStream sink was written to before it was opened".into());
        };
        let mut messages = Vec::with_capacity(batch.len());
        for record in batch {
            let id = match &self.message_id {
                Some(id) => id(&record),
                None => format!("{}:{}", self.instance.prefix, self.instance.published),
            };
            self.instance.published += 1;
            let (subject, payload) = (self.to_message)(record);
            messages.push((subject, payload, id));
        }
        let url = self.url.clone();
        let acks = run(async move {
            let mut acks = Vec::with_capacity(messages.len());
            for (subject, payload, id) in messages {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
                let ack = context
                    .publish_with_headers(subject.clone(), headers, payload.into())
                    .await
                    .map_err(|e| format!("NATS {url}: cannot publish to {subject}: {e}"))?;
                acks.push(ack);
            }
            Ok::<_, UserError>(acks)
        })??;
        self.instance.acks.extend(acks);
        if self.instance.acks.len() >= MAX_PENDING_ACKS {
            self.settle()?;
        }
        Ok(())
    }
}
