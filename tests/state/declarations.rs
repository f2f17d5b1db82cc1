//! What a function may declare and touch: a name declared twice with
//! different kinds or types fails with [`StateError::Mismatch`] naming the
//! state (also when restored state is opened with another type), two
//! descriptors with one name and type share the state, and a record of a key
//! group the subtask does not own fails with [`StateError::ForeignKeyGroup`].
//!
//! The tests are plain functions: `main.rs` runs each of them once per
//! backend (`every_backend!`).

use weir::keys::{key_group, KeyGroupRange};
use weir::state::{ListStateDescriptor, ReducingStateDescriptor, StateError, ValueStateDescriptor};
use weir::testing::OperatorHarness;
use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, UserError};

use crate::kit::{state_error, Count, MAX_P};

/// Two descriptors with one name: opens `first`, then `second`, for every record.
#[derive(Clone)]
struct TwoDeclarations<A, B> {
    first: A,
    second: B,
}

impl<A, B> Lifecycle for TwoDeclarations<A, B>
where
    A: weir::state::StateDescriptor + Clone + Send + 'static,
    B: weir::state::StateDescriptor + Clone + Send + 'static,
{
}

impl<A, B> KeyedProcessFunction<u32, u32, u64> for TwoDeclarations<A, B>
where
    A: weir::state::StateDescriptor + Clone + Send + 'static,
    B: weir::state::StateDescriptor + Clone + Send + 'static,
{
    fn process_element(
        &mut self,
        _value: u32,
        ctx: &mut KeyedContext<u32>,
        out: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        ctx.state(&self.first)?;
        ctx.state(&self.second)?;
        out.collect(0);
        Ok(())
    }
}

fn mismatch_of<A, B>(first: A, second: B) -> (String, StateError)
where
    A: weir::state::StateDescriptor + Clone + Send + 'static,
    B: weir::state::StateDescriptor + Clone + Send + 'static,
{
    let mut h: OperatorHarness<u32, u64> =
        OperatorHarness::keyed(TwoDeclarations { first, second }, |v: &u32| *v, 0, 1, MAX_P);
    h.open(None).unwrap();
    let err = h.process(vec![1]).unwrap_err();
    let message = err.to_string();
    (message, state_error(err))
}

pub(crate) fn a_name_declared_with_another_kind_or_type_is_a_mismatch_naming_the_state() {
    // Another kind.
    let (message, err) = mismatch_of(
        ValueStateDescriptor::<u64>::new("shared"),
        ListStateDescriptor::<u64>::new("shared"),
    );
    assert!(
        matches!(&err, StateError::Mismatch { name, .. } if name == "shared"),
        "{err:?}"
    );
    assert!(message.contains("`shared`"), "{message}");
    assert!(
        message.contains("Value") && message.contains("List"),
        "{message}"
    );

    // Same kind, another type.
    let (message, err) = mismatch_of(
        ValueStateDescriptor::<u64>::new("shared"),
        ValueStateDescriptor::<String>::new("shared"),
    );
    assert!(
        matches!(&err, StateError::Mismatch { name, .. } if name == "shared"),
        "{err:?}"
    );
    assert!(
        message.contains("u64") && message.contains("String"),
        "{message}"
    );

    // A value state and a reducing state of the same type.
    let (_, err) = mismatch_of(
        ValueStateDescriptor::<u64>::new("n"),
        ReducingStateDescriptor::<u64>::new("n", |a, b| a + b),
    );
    assert!(
        matches!(&err, StateError::Mismatch { name, .. } if name == "n"),
        "{err:?}"
    );
}

pub(crate) fn restored_state_opened_with_another_type_is_a_mismatch_naming_the_state() {
    let mut h = OperatorHarness::keyed(
        Count(ValueStateDescriptor::<u64>::new("n")),
        |v: &u32| *v,
        0,
        1,
        MAX_P,
    );
    h.open(None).unwrap();
    h.process(vec![1, 1]).unwrap();
    let snapshot = h.snapshot(1).unwrap();

    let mut restored = OperatorHarness::keyed(
        Count(ValueStateDescriptor::<String>::new("n")),
        |v: &u32| *v,
        0,
        1,
        MAX_P,
    );
    restored.open(Some(snapshot)).unwrap();
    let err = state_error(restored.process(vec![1]).unwrap_err());
    // The snapshot recorded the state's schema: the restore judges it.
    match &err {
        StateError::Schema { name, message, .. } => {
            assert_eq!(name, "n");
            assert!(message.contains("the value: u64 -> String"), "{err}");
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
}

pub(crate) fn two_descriptors_with_the_same_name_and_type_share_the_state() {
    #[derive(Clone)]
    struct Twins(ValueStateDescriptor<u64>, ValueStateDescriptor<u64>);
    impl Lifecycle for Twins {}

    impl KeyedProcessFunction<u32, u32, (u64, u64)> for Twins {
        fn process_element(
            &mut self,
            _value: u32,
            ctx: &mut KeyedContext<u32>,
            out: &mut Collector<(u64, u64)>,
        ) -> Result<(), UserError> {
            let n = ctx.state(&self.0)?.value().unwrap_or(0) + 1;
            ctx.state(&self.0)?.update(n);
            let seen = ctx.state(&self.1)?.value().unwrap_or(0);
            out.collect((n, seen));
            Ok(())
        }
    }
    let mut h = OperatorHarness::keyed(
        Twins(
            ValueStateDescriptor::new("n"),
            ValueStateDescriptor::new("n"),
        ),
        |v: &u32| *v,
        0,
        1,
        MAX_P,
    );
    h.open(None).unwrap();
    h.process(vec![1, 1, 2]).unwrap();
    assert_eq!(h.take_output(), vec![(1, 1), (2, 2), (1, 1)]);
}

pub(crate) fn a_record_of_a_key_group_the_subtask_does_not_own_is_refused() {
    let key = (0u32..)
        .find(|k| KeyGroupRange::owner_of(key_group(k, MAX_P), MAX_P, 2) == 1)
        .unwrap();
    let mut h = OperatorHarness::keyed(
        Count(ValueStateDescriptor::<u64>::new("n")),
        |v: &u32| *v,
        0,
        2,
        MAX_P,
    );
    h.open(None).unwrap();
    let err = state_error(h.process(vec![key]).unwrap_err());
    let range = KeyGroupRange::of_subtask(0, MAX_P, 2);
    assert_eq!(
        err,
        StateError::ForeignKeyGroup {
            group: key_group(&key, MAX_P),
            start: range.start,
            end: range.end,
        }
    );
}
