//! Keyed state semantics: [`AllStates`](crate::kit::AllStates) turns each
//! input command into one call on a value, list, map, reducing or aggregating
//! state and replies with what it read, so each test is a script of commands
//! and expected replies; state is per key.
//!
//! The tests are plain functions: `main.rs` runs each of them once per
//! backend (`every_backend!`).

use crate::kit::{command_harness, run, Op, Reply};

fn list(items: &[u64]) -> Reply {
    Reply::List {
        items: items.to_vec(),
        len: items.len(),
        empty: items.is_empty(),
    }
}

fn map(entries: &[(&str, u64)]) -> Reply {
    Reply::Map {
        entries: entries.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        keys: entries.iter().map(|(k, _)| k.to_string()).collect(),
        len: entries.len(),
        empty: entries.is_empty(),
    }
}

pub(crate) fn value_state_reads_updates_modifies_and_clears() {
    let mut h = command_harness();
    assert_eq!(
        run(
            &mut h,
            "k",
            vec![
                Op::Value,
                Op::Default,
                // No value and no default: modify does nothing and stores nothing.
                Op::ModifyAdd(1),
                Op::Value,
                Op::Update(5),
                Op::Value,
                Op::ModifyAdd(2),
                Op::Value,
                Op::Update(1),
                Op::Value,
                Op::ValueClear,
                Op::Value,
            ]
        ),
        vec![
            Reply::Value(None),
            Reply::Value(Some(10)),
            Reply::Modified(None),
            Reply::Value(None),
            Reply::Value(Some(5)),
            Reply::Modified(Some(7)),
            Reply::Value(Some(7)),
            Reply::Value(Some(1)),
            Reply::Value(None),
        ]
    );
}

pub(crate) fn a_value_state_default_is_read_modified_and_restored_by_clear() {
    let mut h = command_harness();
    assert_eq!(
        run(
            &mut h,
            "k",
            vec![
                Op::DefaultModifyAdd(3), // from the default: 10 + 3
                Op::Default,
                Op::DefaultModifyAdd(1),
                Op::DefaultUpdate(0),
                Op::Default,
                Op::DefaultClear,
                Op::Default, // the default again
                             // The default itself is not changed by a modify of another key.
            ]
        ),
        vec![
            Reply::Modified(Some(13)),
            Reply::Value(Some(13)),
            Reply::Modified(Some(14)),
            Reply::Value(Some(0)),
            Reply::Value(Some(10)),
        ]
    );
    assert_eq!(
        run(&mut h, "other", vec![Op::Default]),
        vec![Reply::Value(Some(10))]
    );
}

pub(crate) fn list_state_appends_replaces_and_clears() {
    let mut h = command_harness();
    assert_eq!(
        run(
            &mut h,
            "k",
            vec![
                Op::ListGet,
                Op::ListAdd(3),
                Op::ListAdd(1),
                Op::ListGet,
                Op::ListAddAll(vec![4, 1, 5]),
                Op::ListGet,
                Op::ListAddAll(vec![]),
                Op::ListGet,
                Op::ListUpdate(vec![9, 2]),
                Op::ListGet,
                Op::ListUpdate(vec![]),
                Op::ListGet,
                Op::ListAdd(6),
                Op::ListClear,
                Op::ListGet,
                Op::ListAddAll(vec![7]),
                Op::ListGet,
            ]
        ),
        vec![
            list(&[]),
            list(&[3, 1]),
            list(&[3, 1, 4, 1, 5]),
            list(&[3, 1, 4, 1, 5]),
            list(&[9, 2]),
            list(&[]),
            list(&[]),
            list(&[7]),
        ]
    );
}

pub(crate) fn map_state_puts_gets_removes_and_lists_its_entries() {
    let mut h = command_harness();
    let s = |x: &str| x.to_string();
    assert_eq!(
        run(
            &mut h,
            "k",
            vec![
                Op::MapView,
                Op::MapGet(s("a")),
                Op::MapContains(s("a")),
                Op::MapRemove(s("a")),
                Op::MapPut(s("a"), 1),
                Op::MapPut(s("b"), 2),
                Op::MapPut(s("a"), 3), // replaces
                Op::MapGet(s("a")),
                Op::MapContains(s("a")),
                Op::MapContains(s("c")),
                Op::MapView,
                Op::MapRemove(s("a")),
                Op::MapRemove(s("a")),
                Op::MapView,
                Op::MapRemove(s("b")), // the last entry
                Op::MapView,
                Op::MapPut(s("c"), 4),
                Op::MapPut(s("d"), 5),
                Op::MapClear,
                Op::MapView,
                Op::MapGet(s("c")),
            ]
        ),
        vec![
            map(&[]),
            Reply::MapValue(None),
            Reply::Contains(false),
            Reply::Removed(None),
            Reply::MapValue(Some(3)),
            Reply::Contains(true),
            Reply::Contains(false),
            map(&[("a", 3), ("b", 2)]),
            Reply::Removed(Some(3)),
            Reply::Removed(None),
            map(&[("b", 2)]),
            Reply::Removed(Some(2)),
            map(&[]),
            map(&[]),
            Reply::MapValue(None),
        ]
    );
}

pub(crate) fn reducing_state_folds_in_order_and_clears() {
    let mut h = command_harness();
    let s = |x: &str| x.to_string();
    assert_eq!(
        run(
            &mut h,
            "k",
            vec![
                Op::ReduceGet,
                Op::ReduceAdd(s("a")),
                Op::ReduceGet,
                Op::ReduceAdd(s("b")),
                Op::ReduceAdd(s("c")),
                Op::ReduceGet, // reduce(accumulated, next), in order
                Op::ReduceClear,
                Op::ReduceGet,
                Op::ReduceAdd(s("z")),
                Op::ReduceGet,
            ]
        ),
        vec![
            Reply::Reduced(None),
            Reply::Reduced(Some(s("a"))),
            Reply::Reduced(Some(s("abc"))),
            Reply::Reduced(None),
            Reply::Reduced(Some(s("z"))),
        ]
    );
}

pub(crate) fn aggregating_state_accumulates_and_reads_a_result() {
    let mut h = command_harness();
    assert_eq!(
        run(
            &mut h,
            "k",
            vec![
                Op::AggGet,
                Op::AggAdd(1),
                Op::AggGet,
                Op::AggAdd(2),
                Op::AggAdd(6),
                Op::AggGet,
                Op::AggClear,
                Op::AggGet,
                Op::AggAdd(4),
                Op::AggGet,
            ]
        ),
        vec![
            Reply::Average(None),
            Reply::Average(Some(1.0)),
            Reply::Average(Some(3.0)),
            Reply::Average(None),
            Reply::Average(Some(4.0)),
        ]
    );
}

pub(crate) fn every_key_has_its_own_state() {
    let mut h = command_harness();
    let s = |x: &str| x.to_string();
    // Interleaved in one batch: each record's state is that of its own key.
    h.process(vec![
        (s("a"), Op::Update(1)),
        (s("b"), Op::Update(2)),
        (s("a"), Op::ListAdd(10)),
        (s("b"), Op::ListAdd(20)),
        (s("a"), Op::MapPut(s("x"), 1)),
        (s("b"), Op::MapPut(s("y"), 2)),
        (s("a"), Op::ReduceAdd(s("a"))),
        (s("b"), Op::ReduceAdd(s("b"))),
        (s("a"), Op::AggAdd(1)),
        (s("b"), Op::AggAdd(3)),
        (s("a"), Op::DefaultModifyAdd(1)),
        (s("a"), Op::ValueClear),
    ])
    .unwrap();
    h.take_output();
    let reads = || {
        vec![
            Op::Value,
            Op::Default,
            Op::ListGet,
            Op::MapView,
            Op::ReduceGet,
            Op::AggGet,
        ]
    };
    assert_eq!(
        run(&mut h, "a", reads()),
        vec![
            Reply::Value(None),
            Reply::Value(Some(11)),
            list(&[10]),
            map(&[("x", 1)]),
            Reply::Reduced(Some(s("a"))),
            Reply::Average(Some(1.0)),
        ]
    );
    assert_eq!(
        run(&mut h, "b", reads()),
        vec![
            Reply::Value(Some(2)),
            Reply::Value(Some(10)),
            list(&[20]),
            map(&[("y", 2)]),
            Reply::Reduced(Some(s("b"))),
            Reply::Average(Some(3.0)),
        ]
    );
    assert_eq!(
        run(&mut h, "c", reads()),
        vec![
            Reply::Value(None),
            Reply::Value(Some(10)),
            list(&[]),
            map(&[]),
            Reply::Reduced(None),
            Reply::Average(None),
        ]
    );
}
