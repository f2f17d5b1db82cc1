//! Operator state: [`Buffering`] keeps an even-split list, a union list and
//! raw bytes; their redistribution from 1 to 3 to 2 subtasks is checked
//! element by element; a list state opened in both modes is a mismatch.

use serde::{Deserialize, Serialize};
use weir::ops::process::Process;
use weir::runtime::snapshot::{redistribute, OperatorSnapshot};
use weir::state::{ListStateDescriptor, StateError, StateInitContext, StateSnapshotContext};
use weir::testing::OperatorHarness;
use weir::{Collector, Lifecycle, ProcessContext, ProcessFunction, RuntimeContext, UserError};

use crate::kit::{state_error, MAX_P};

/// What [`Buffering`] is fed.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Input {
    Add(u64),
    Report,
}

/// What [`Buffering`] knew when it was initialised, and its buffer now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Restored {
    subtask: usize,
    is_restored: bool,
    even_split: Vec<u64>,
    union: Vec<String>,
    raw: Option<String>,
    buffer: Vec<u64>,
}

/// Buffers records in an even-split operator list state, says who it is in a
/// union list state, and writes raw bytes.
#[derive(Clone)]
struct Buffering {
    even_split: ListStateDescriptor<u64>,
    union: ListStateDescriptor<String>,
    buffer: Vec<u64>,
    restored: Option<Restored>,
    subtask: (usize, usize),
}

impl Buffering {
    fn new() -> Self {
        Buffering {
            even_split: ListStateDescriptor::new("buffer"),
            union: ListStateDescriptor::new("members"),
            buffer: Vec::new(),
            restored: None,
            subtask: (0, 0),
        }
    }
}

impl Lifecycle for Buffering {
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        let runtime = ctx.runtime();
        self.subtask = (runtime.subtask_index(), runtime.parallelism());
        let even_split = ctx.operator_state().list(&self.even_split)?.get()?;
        let union = ctx.operator_state().union_list(&self.union)?.get()?;
        let raw = ctx
            .raw_state()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
        if ctx.is_restored() {
            self.buffer = even_split.clone();
        }
        self.restored = Some(Restored {
            subtask: self.subtask.0,
            is_restored: ctx.is_restored(),
            even_split,
            union,
            raw,
            buffer: Vec::new(),
        });
        Ok(())
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        assert_eq!(
            (ctx.subtask_index(), ctx.parallelism()),
            self.subtask,
            "initialize_state runs before open, with the same runtime"
        );
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        let (i, p) = self.subtask;
        ctx.operator_state()
            .list(&self.even_split)?
            .update(&self.buffer)?;
        let mut union = ctx.operator_state().union_list(&self.union)?;
        union.clear();
        union.add(&format!("{i}/{p} held {}", self.buffer.len()))?;
        ctx.write_raw_state(format!("raw of {i}/{p} at {}", ctx.checkpoint_id()).into_bytes());
        Ok(())
    }
}

impl ProcessFunction<Input, Restored> for Buffering {
    fn process_element(
        &mut self,
        input: Input,
        _ctx: &mut ProcessContext,
        out: &mut Collector<Restored>,
    ) -> Result<(), UserError> {
        match input {
            Input::Add(v) => self.buffer.push(v),
            Input::Report => {
                let mut report = self.restored.clone().ok_or("not initialised")?;
                report.buffer = self.buffer.clone();
                out.collect(report);
            }
        }
        Ok(())
    }
}

type BufferingHarness = OperatorHarness<Input, Restored>;

fn buffering(
    parallelism: usize,
    snapshots: Option<Vec<OperatorSnapshot>>,
) -> Vec<BufferingHarness> {
    let mut snapshots = snapshots.map(|s| s.into_iter());
    (0..parallelism)
        .map(|i| {
            let mut h = OperatorHarness::new(Process::new(Buffering::new()), i, parallelism, MAX_P);
            h.open(snapshots.as_mut().and_then(Iterator::next)).unwrap();
            h
        })
        .collect()
}

fn report(h: &mut BufferingHarness) -> Restored {
    h.process(vec![Input::Report]).unwrap();
    let mut out = h.take_output();
    assert_eq!(out.len(), 1);
    out.remove(0)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn operator_list_state_is_split_evenly_or_unioned_and_raw_state_stays_by_index() {
    // Parallelism 1, fresh: nothing restored.
    let mut p1 = buffering(1, None);
    p1[0].process((0..10).map(Input::Add).collect()).unwrap();
    assert_eq!(
        report(&mut p1[0]),
        Restored {
            subtask: 0,
            is_restored: false,
            even_split: vec![],
            union: vec![],
            raw: None,
            buffer: (0..10).collect(),
        }
    );

    // 1 -> 3: 10 elements dealt 4, 3, 3 in order; the union to everyone; the
    // raw bytes to subtask 0 only.
    let old: Vec<OperatorSnapshot> = p1.iter_mut().map(|h| h.snapshot(1).unwrap()).collect();
    let mut p3 = buffering(3, Some(redistribute(&old, 3, MAX_P)));
    let shares: [&[u64]; 3] = [&[0, 1, 2, 3], &[4, 5, 6], &[7, 8, 9]];
    for (i, h) in p3.iter_mut().enumerate() {
        assert_eq!(
            report(h),
            Restored {
                subtask: i,
                is_restored: true,
                even_split: shares[i].to_vec(),
                union: strings(&["0/1 held 10"]),
                raw: (i == 0).then(|| "raw of 0/1 at 1".to_string()),
                buffer: shares[i].to_vec(),
            }
        );
        h.process(vec![Input::Add(100 + i as u64)]).unwrap();
    }

    // 3 -> 2: all 13 elements, in old subtask order, dealt 7 and 6.
    let old: Vec<OperatorSnapshot> = p3.iter_mut().map(|h| h.snapshot(2).unwrap()).collect();
    let mut p2 = buffering(2, Some(redistribute(&old, 2, MAX_P)));
    let shares: [&[u64]; 2] = [&[0, 1, 2, 3, 100, 4, 5], &[6, 101, 7, 8, 9, 102]];
    for (i, h) in p2.iter_mut().enumerate() {
        assert_eq!(
            report(h),
            Restored {
                subtask: i,
                is_restored: true,
                even_split: shares[i].to_vec(),
                union: strings(&["0/3 held 5", "1/3 held 4", "2/3 held 4"]),
                raw: Some(format!("raw of {i}/3 at 2")),
                buffer: shares[i].to_vec(),
            }
        );
    }

    // 2 -> 1: everything back in one place.
    let old: Vec<OperatorSnapshot> = p2.iter_mut().map(|h| h.snapshot(3).unwrap()).collect();
    let mut back = buffering(1, Some(redistribute(&old, 1, MAX_P)));
    let all = report(&mut back[0]);
    assert_eq!(
        all.even_split,
        vec![0, 1, 2, 3, 100, 4, 5, 6, 101, 7, 8, 9, 102]
    );
    assert_eq!(all.union, strings(&["0/2 held 7", "1/2 held 6"]));
    assert_eq!(all.raw.as_deref(), Some("raw of 0/2 at 3"));
}

#[test]
fn an_operator_list_state_opened_in_both_modes_is_a_mismatch() {
    #[derive(Clone)]
    struct Both(ListStateDescriptor<u64>);
    impl Lifecycle for Both {
        fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
            ctx.operator_state().list(&self.0)?;
            ctx.operator_state().union_list(&self.0)?;
            Ok(())
        }
    }

    impl ProcessFunction<u64, u64> for Both {
        fn process_element(
            &mut self,
            _value: u64,
            _ctx: &mut ProcessContext,
            _out: &mut Collector<u64>,
        ) -> Result<(), UserError> {
            Ok(())
        }
    }
    let mut h: OperatorHarness<u64, u64> = OperatorHarness::new(
        Process::new(Both(ListStateDescriptor::new("l"))),
        0,
        1,
        MAX_P,
    );
    let err = state_error(h.open(None).unwrap_err());
    assert!(
        matches!(&err, StateError::Mismatch { name, .. } if name == "l"),
        "{err:?}"
    );
}
