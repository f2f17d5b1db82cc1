//! A parallel generator: each subtask produces its share of `0..count`.

use weir_actors::UserError;

use super::{Source, SourceStatus};
use crate::context::RuntimeContext;

/// Calls a function for the indices `0..count`; subtask `s` of `p` takes the
/// indices `i` with `i % p == s`, in increasing order.
#[derive(Clone)]
pub struct GeneratorSource<F> {
    count: u64,
    generate: F,
    next: u64,
    step: u64,
}

impl<F> GeneratorSource<F> {
    /// A generator of `count` records made by `generate(index)`.
    pub fn new(count: u64, generate: F) -> Self {
        GeneratorSource {
            count,
            generate,
            next: 0,
            step: 1,
        }
    }

    /// The next index this instance will generate.
    pub fn position(&self) -> u64 {
        self.next
    }
}

impl<T, F> Source<T> for GeneratorSource<F>
where
    F: FnMut(u64) -> T + Clone + Send + 'static,
{
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.next = ctx.subtask_index() as u64;
        self.step = ctx.parallelism() as u64;
        Ok(())
    }

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
