//! A parallel generator: each subtask produces its share of `0..count`.

use crate::lifecycle::Lifecycle;
use weir_actors::UserError;

use super::{Source, SourceStatus};
use crate::state::{ListStateDescriptor, StateInitContext, StateSnapshotContext};

/// Per subtask: (subtask, parallelism, next index).
fn position_state() -> ListStateDescriptor<(u64, u64, u64)> {
    ListStateDescriptor::new("generator-position")
}
use crate::context::RuntimeContext;

/// Calls a function for the indices `0..count`; subtask `s` of `p` takes the
/// indices `i` with `i % p == s`, in increasing order.
#[derive(Clone)]
pub struct GeneratorSource<F> {
    count: u64,
    generate: F,
    next: u64,
    step: u64,
    subtask: u64,
    restored: Option<u64>,
}

impl<F> GeneratorSource<F> {
    /// A generator of `count` records made by `generate(index)`.
    pub fn new(count: u64, generate: F) -> Self {
        GeneratorSource {
            count,
            generate,
            next: 0,
            step: 1,
            subtask: 0,
            restored: None,
        }
    }

    /// The next index this instance will generate.
    pub fn position(&self) -> u64 {
        self.next
    }
}

impl<F> Lifecycle for GeneratorSource<F> {
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        if !ctx.is_restored() {
            return Ok(());
        }
        let (subtask, parallelism) = (
            ctx.runtime().subtask_index() as u64,
            ctx.runtime().parallelism() as u64,
        );
        let positions = ctx.operator_state().union_list(&position_state())?.get()?;
        if let Some(&(_, old_parallelism, _)) = positions.iter().find(|(_, p, _)| *p != parallelism)
        {
            return Err(format!(
                "the generator source was checkpointed at parallelism {old_parallelism} and cannot resume at \
                 parallelism {parallelism}"
            )
            .into());
        }
        match positions.iter().find(|(s, _, _)| *s == subtask) {
            Some(&(_, _, next)) => self.restored = Some(next),
            None => {
                return Err(format!(
                    "the generator source's checkpoint has no position for subtask {subtask}"
                )
                .into())
            }
        }
        Ok(())
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.subtask = ctx.subtask_index() as u64;
        self.step = ctx.parallelism() as u64;
        self.next = self.restored.take().unwrap_or(self.subtask);
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        let position = (self.subtask, self.step, self.next);
        ctx.operator_state()
            .union_list(&position_state())?
            .update(&[position])?;
        Ok(())
    }
}

impl<T, F> Source<T> for GeneratorSource<F>
where
    F: FnMut(u64) -> T + Clone + Send + 'static,
{
    fn poll_next(&mut self, out: &mut Vec<T>, max: usize) -> Result<SourceStatus, UserError> {
        let mut produced = 0;
        while produced < max && self.next < self.count {
            out.push((self.generate)(self.next));
            self.next += self.step;
            produced += 1;
        }
        Ok(if self.next >= self.count {
            SourceStatus::Finished
        } else {
            SourceStatus::More
        })
    }
}
