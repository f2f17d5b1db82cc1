//! State schema evolution at a restore, on every backend: a value, list and
//! map state whose value type changes between a snapshot (checkpoint, and
//! savepoint) and the restore. Compatible changes read as is; a version
//! with migrations migrates every value (chained from any older version,
//! with or without a time to live, across a change of parallelism); an
//! incompatible change or a snapshot of a newer version fails at the
//! state's first use with an error naming the state and the field; a
//! snapshot taken after a migration holds the current version.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use weir::keys::key_group;
use weir::runtime::snapshot::{redistribute, OperatorSnapshot};
use weir::state::ttl::TtlConfig;
use weir::state::{ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor};
use weir::testing::OperatorHarness;
use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, UserError};

use crate::kit::MAX_P;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct V1 {
    count: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct V2 {
    count: u32,
    #[serde(default)]
    last_seen_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct V3 {
    count: u64,
    last_seen_ms: i64,
}

/// V1 with a field added that has no default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Required {
    count: u32,
    last_seen_ms: i64,
}

/// The three states of one version: `write n` stores `make(n)` in each,
/// `read` answers what they hold (Debug-printed).
#[derive(Clone)]
pub(crate) struct States<V> {
    value: ValueStateDescriptor<V>,
    list: ListStateDescriptor<V>,
    map: MapStateDescriptor<String, V>,
    make: fn(u32) -> V,
}

impl<V> Lifecycle for States<V> {}

/// `(key, Some(n))` writes, `(key, None)` reads.
type Cmd = (String, Option<u32>);

impl<V: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static>
    KeyedProcessFunction<String, Cmd, String> for States<V>
{
    fn process_element(
        &mut self,
        (_, cmd): Cmd,
        ctx: &mut KeyedContext<String>,
        out: &mut Collector<String>,
    ) -> Result<(), UserError> {
        match cmd {
            Some(n) => {
                let v = (self.make)(n);
                ctx.state(&self.value)?.update(v.clone());
                ctx.state(&self.list)?.add(v.clone());
                ctx.state(&self.map)?.put("m".into(), v);
            }
            None => {
                let value = ctx.state(&self.value)?.value();
                let list = ctx.state(&self.list)?.get();
                let map = ctx.state(&self.map)?.get(&"m".to_string());
                out.collect(format!("{value:?} {list:?} {map:?}"));
            }
        }
        Ok(())
    }
}

/// The states of one version, each built by `configure` from its name.
fn states<V>(
    make: fn(u32) -> V,
    value: impl Fn(ValueStateDescriptor<V>) -> ValueStateDescriptor<V>,
    list: impl Fn(ListStateDescriptor<V>) -> ListStateDescriptor<V>,
    map: impl Fn(MapStateDescriptor<String, V>) -> MapStateDescriptor<String, V>,
) -> States<V> {
    States {
        value: value(ValueStateDescriptor::new("value")),
        list: list(ListStateDescriptor::new("list")),
        map: map(MapStateDescriptor::new("map")),
        make,
    }
}

fn v1() -> States<V1> {
    states(|n| V1 { count: n }, |d| d, |d| d, |d| d)
}

fn v2() -> States<V2> {
    states(
        |n| V2 {
            count: n,
            last_seen_ms: i64::from(n) * 1000,
        },
        |d| d.version(2),
        |d| d.version(2),
        |d| d.version(2),
    )
}

fn to_v3(old: V2) -> V3 {
    V3 {
        count: u64::from(old.count) + 1_000_000,
        last_seen_ms: old.last_seen_ms,
    }
}

fn to_v2(old: V1) -> V2 {
    V2 {
        count: old.count * 10,
        last_seen_ms: -1,
    }
}

/// Version 3, with migrations from 2, and from 1 if `from_v1`.
fn v3(from_v1: bool) -> States<V3> {
    let make = |n| V3 {
        count: u64::from(n),
        last_seen_ms: 7,
    };
    if from_v1 {
        states(
            make,
            |d| {
                d.version(3)
                    .migrate_from::<V2>(2, to_v3)
                    .migrate_via::<V1, V2>(1, to_v2)
            },
            |d| {
                d.version(3)
                    .migrate_from::<V2>(2, to_v3)
                    .migrate_via::<V1, V2>(1, to_v2)
            },
            |d| {
                d.version(3)
                    .migrate_from::<V2>(2, to_v3)
                    .migrate_via::<V1, V2>(1, to_v2)
            },
        )
    } else {
        states(
            make,
            |d| d.version(3).migrate_from::<V2>(2, to_v3),
            |d| d.version(3).migrate_from::<V2>(2, to_v3),
            |d| d.version(3).migrate_from::<V2>(2, to_v3),
        )
    }
}

type Harness = OperatorHarness<Cmd, String>;

fn subtask<V>(
    states: States<V>,
    index: usize,
    parallelism: usize,
    restored: Option<OperatorSnapshot>,
) -> Result<Harness, UserError>
where
    States<V>: KeyedProcessFunction<String, Cmd, String>,
{
    let mut h = OperatorHarness::keyed(states, |c: &Cmd| c.0.clone(), index, parallelism, MAX_P);
    h.open(restored)?;
    Ok(h)
}

fn keys() -> Vec<String> {
    (0..12).map(|i| format!("k{i}")).collect()
}

fn owner(key: &str, parallelism: usize) -> usize {
    weir::keys::KeyGroupRange::owner_of(key_group(&key.to_string(), MAX_P), MAX_P, parallelism)
}

/// Writes `n` = the key's index + 1 for every key, at parallelism 1.
fn written<V>(states: States<V>) -> Harness
where
    States<V>: KeyedProcessFunction<String, Cmd, String>,
{
    let mut h = subtask(states, 0, 1, None).unwrap();
    let cmds = keys()
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k, Some(i as u32 + 1)))
        .collect();
    h.process(cmds).unwrap();
    h
}

/// What every key reads, at any parallelism.
fn read_all(hs: &mut [Harness]) -> Result<Vec<String>, UserError> {
    let p = hs.len();
    let mut out = Vec::new();
    for key in keys() {
        let h = &mut hs[owner(&key, p)];
        h.process(vec![(key, None)])?;
        out.extend(h.take_output());
    }
    Ok(out)
}

/// A checkpoint and a savepoint of `h`.
fn snapshots(h: &mut Harness) -> Vec<(&'static str, OperatorSnapshot)> {
    vec![
        ("checkpoint", h.snapshot(1).unwrap()),
        ("savepoint", h.savepoint(2).unwrap()),
    ]
}

fn restored<V>(
    make: impl Fn() -> States<V>,
    snapshot: OperatorSnapshot,
    parallelism: usize,
) -> Result<Vec<Harness>, UserError>
where
    States<V>: KeyedProcessFunction<String, Cmd, String>,
{
    redistribute(&[snapshot], parallelism, MAX_P)
        .into_iter()
        .enumerate()
        .map(|(i, s)| subtask(make(), i, parallelism, Some(s)))
        .collect()
}

fn expected<V: Debug>(values: impl Fn(u32) -> V) -> Vec<String> {
    (1..=keys().len() as u32)
        .map(|n| {
            let v = values(n);
            format!("Some({v:?}) [{v:?}] Some({v:?})")
        })
        .collect()
}

pub(crate) fn a_field_with_a_default_reads_as_is_and_a_later_snapshot_records_the_new_version() {
    let mut h = written(v1());
    for (kind, snapshot) in snapshots(&mut h) {
        let mut hs = restored(v2, snapshot, 1).unwrap();
        let read = read_all(&mut hs).unwrap();
        assert_eq!(
            read,
            expected(|n| V2 {
                count: n,
                last_seen_ms: 0
            }),
            "{kind}"
        );
        // Snapshots now hold version 2: version 3 migrates from it.
        let again = hs[0].savepoint(3).unwrap();
        let mut hs = restored(|| v3(false), again, 1).unwrap();
        let read = read_all(&mut hs).unwrap();
        assert_eq!(
            read,
            expected(|n| V3 {
                count: u64::from(n) + 1_000_000,
                last_seen_ms: 0
            }),
            "{kind}"
        );
    }
}

pub(crate) fn migrations_chain_from_any_older_version_across_a_change_of_parallelism() {
    let mut h = written(v1());
    for (kind, snapshot) in snapshots(&mut h) {
        let mut hs = restored(|| v3(true), snapshot, 3).unwrap();
        let read = read_all(&mut hs).unwrap();
        let v3 = |n: u32| V3 {
            count: u64::from(n * 10) + 1_000_000,
            last_seen_ms: -1,
        };
        assert_eq!(read, expected(v3), "{kind}");
        // Snapshots now hold version 3: restored without any migration,
        // at parallelism 2, they read the same.
        let again: Vec<OperatorSnapshot> = hs.iter_mut().map(|h| h.snapshot(5).unwrap()).collect();
        let mut hs: Vec<Harness> = redistribute(&again, 2, MAX_P)
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let plain = states(
                    |n| V3 {
                        count: u64::from(n),
                        last_seen_ms: 0,
                    },
                    |d| d.version(3),
                    |d| d.version(3),
                    |d| d.version(3),
                );
                subtask(plain, i, 2, Some(s)).unwrap()
            })
            .collect();
        assert_eq!(read_all(&mut hs).unwrap(), expected(v3), "{kind}");
    }
    let mut h = written(v2());
    for (kind, snapshot) in snapshots(&mut h) {
        let mut hs = restored(|| v3(false), snapshot, 2).unwrap();
        let read = read_all(&mut hs).unwrap();
        assert_eq!(
            read,
            expected(|n| V3 {
                count: u64::from(n) + 1_000_000,
                last_seen_ms: i64::from(n) * 1000
            }),
            "{kind}"
        );
    }
}

pub(crate) fn migrations_keep_the_expiries_of_a_state_with_a_time_to_live() {
    let ttl = || TtlConfig::from_millis(60_000).unwrap();
    let with_ttl_v2 = || {
        let mut s = v2();
        s.value = s.value.with_ttl(ttl());
        s.list = s.list.with_ttl(ttl());
        s.map = s.map.with_ttl(ttl());
        s
    };
    let with_ttl_v3 = || {
        let mut s = v3(false);
        s.value = s.value.with_ttl(ttl());
        s.list = s.list.with_ttl(ttl());
        s.map = s.map.with_ttl(ttl());
        s
    };
    let mut h = written(with_ttl_v2());
    for (kind, snapshot) in snapshots(&mut h) {
        let mut hs = restored(with_ttl_v3, snapshot.clone(), 1).unwrap();
        let read = read_all(&mut hs).unwrap();
        assert_eq!(
            read,
            expected(|n| V3 {
                count: u64::from(n) + 1_000_000,
                last_seen_ms: i64::from(n) * 1000
            }),
            "{kind}"
        );
        // Expired after the time to live, as before the migration.
        for h in &mut hs {
            h.set_processing_time(60_001);
        }
        assert!(
            read_all(&mut hs)
                .unwrap()
                .iter()
                .all(|r| r == "None [] None"),
            "{kind}"
        );
        // With the time to live switched off at the same restore.
        let mut hs = restored(|| v3(false), snapshot, 1).unwrap();
        assert_eq!(read_all(&mut hs).unwrap().len(), keys().len(), "{kind}");
        assert!(read_all(&mut hs).unwrap()[0].contains("1000001"), "{kind}");
    }
}

/// The message of the error `restored(..)` or the first read gives.
fn first_error<V>(make: impl Fn() -> States<V>, snapshot: OperatorSnapshot) -> String
where
    States<V>: KeyedProcessFunction<String, Cmd, String>,
{
    match restored(make, snapshot, 1) {
        Err(e) => e.to_string(),
        Ok(mut hs) => read_all(&mut hs)
            .expect_err("an incompatible state reads")
            .to_string(),
    }
}

pub(crate) fn an_incompatible_change_fails_naming_the_state_the_field_and_what_to_do() {
    let mut h = written(v1());
    for (kind, snapshot) in snapshots(&mut h) {
        let required = || {
            states(
                |n| Required {
                    count: n,
                    last_seen_ms: 0,
                },
                |d| d,
                |d| d,
                |d| d,
            )
        };
        let error = first_error(required, snapshot.clone());
        for part in [
            "state `value`",
            "last_seen_ms: added (i64)",
            "migrate_from::<Old>(1",
            "#[serde(default)]",
        ] {
            assert!(error.contains(part), "{kind}: {part} in {error}");
        }
        // Narrowing u64 -> u32 with no migration.
        let mut h3 = written(v3(false));
        let error = first_error(v1, h3.savepoint(9).unwrap());
        assert!(error.contains("cannot be restored"), "{kind}: {error}");
        assert!(error.contains("version 3"), "{kind}: {error}");
        // The same, at the same version: the field and the types.
        let narrowed = || {
            states(
                |n| V1 { count: n },
                |d| d.version(3),
                |d| d.version(3),
                |d| d.version(3),
            )
        };
        let error = first_error(narrowed, h3.savepoint(10).unwrap());
        assert!(error.contains("count: u64 -> u32"), "{kind}: {error}");
    }
}

pub(crate) fn a_snapshot_of_a_newer_version_is_refused_naming_both_versions() {
    let mut h = written(v3(false));
    for (kind, snapshot) in snapshots(&mut h) {
        let error = first_error(v2, snapshot);
        assert!(error.contains("version 3"), "{kind}: {error}");
        assert!(error.contains("version 2"), "{kind}: {error}");
    }
}

pub(crate) fn a_migration_from_the_current_version_is_refused() {
    let wrong = || {
        states(
            |n| V1 { count: n },
            |d| d.version(1).migrate_from::<V1>(1, |v| v),
            |d| d,
            |d| d,
        )
    };
    let mut h = subtask(wrong(), 0, 1, None).unwrap();
    let error = h
        .process(vec![("k".into(), Some(1))])
        .unwrap_err()
        .to_string();
    assert!(error.contains("must come from an older version"), "{error}");
}

pub(crate) fn a_snapshot_taken_before_every_key_was_read_holds_every_value_migrated() {
    let mut h = written(v2());
    for (kind, snapshot) in snapshots(&mut h) {
        let mut hs = restored(|| v3(false), snapshot, 1).unwrap();
        // One key read (RocksDB migrates its key group), then snapshots.
        hs[0].process(vec![("k0".into(), None)]).unwrap();
        let _ = hs[0].take_output();
        for again in [hs[0].snapshot(7).unwrap(), hs[0].savepoint(8).unwrap()] {
            let plain = || {
                states(
                    |n| V3 {
                        count: u64::from(n),
                        last_seen_ms: 0,
                    },
                    |d| d.version(3),
                    |d| d.version(3),
                    |d| d.version(3),
                )
            };
            let mut hs = restored(plain, again, 2).unwrap();
            let read = read_all(&mut hs).unwrap();
            let v3 = |n: u32| V3 {
                count: u64::from(n) + 1_000_000,
                last_seen_ms: i64::from(n) * 1000,
            };
            assert_eq!(read, expected(v3), "{kind}");
        }
    }
}

/// Thousands of keys: after a restore, RocksDB's lazy migration takes more
/// key groups into one scan as its memtables fill (the restored data of a
/// savepoint, the migrated values); every value reads migrated either way.
pub(crate) fn many_keys_migrate_whether_one_group_or_several_at_a_time() {
    let keys: Vec<String> = (0..6000).map(|i| format!("key-{i}")).collect();
    let mut h = subtask(v2(), 0, 1, None).unwrap();
    let writes = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), Some(i as u32 + 1)))
        .collect();
    h.process(writes).unwrap();
    let want: Vec<String> = (1..=keys.len() as u32)
        .map(|n| {
            let v = V3 {
                count: u64::from(n) + 1_000_000,
                last_seen_ms: i64::from(n) * 1000,
            };
            format!("Some({v:?}) [{v:?}] Some({v:?})")
        })
        .collect();
    for (kind, snapshot) in snapshots(&mut h) {
        let mut hs = restored(|| v3(false), snapshot, 1).unwrap();
        let mut read = Vec::new();
        for key in &keys {
            hs[0].process(vec![(key.clone(), None)]).unwrap();
            read.extend(hs[0].take_output());
        }
        assert_eq!(read.len(), want.len(), "{kind}");
        assert_eq!(read, want, "{kind}");
    }
}
