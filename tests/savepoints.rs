//! Savepoints end to end: stop-with-savepoint and resume at another
//! parallelism under the exactly-once audit, relocated savepoints, every kind
//! of state (broadcast state and timers too) through parallelism 1 -> 3 -> 2,
//! how state follows uids, savepoints of a running job, and what a savepoint
//! refuses.

#[allow(dead_code)] // the example's `main` is not used here
#[path = "../examples/exactly_once.rs"]
mod example;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use weir::StreamEnv;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-savepoints-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn args(dir: &Path, records: u64, parallelism: usize) -> example::Args {
    example::Args {
        records,
        keys: 97,
        mode: "exactly-once".into(),
        unaligned: false,
        rate: Some(100_000),
        fail_at: Vec::new(),
        output: dir.join("out"),
        stop_with_savepoint_after_ms: None,
        audit: false,
        job: weir::cli::JobArgs {
            parallelism: Some(parallelism),
            checkpoint_interval_ms: Some(20),
            state_backend: Some("heap".into()),
            restart: Some("fixed-delay:10:0".into()),
            checkpoint_dir: Some(dir.join("checkpoints").display().to_string()),
            resume_from: None,
            savepoint_dir: Some(dir.join("savepoints").display().to_string()),
            ..Default::default()
        },
    }
}

/// Starts `env`'s job and, once `ready()` holds, stops it with a savepoint
/// into the configured savepoint directory; returns the savepoint's path
/// once the job has ended.
/// A job environment at `parallelism` with small batches, checkpointing on
/// (savepoints only, in practice), savepoints under `dir`, resuming `from`.
fn savepointing_env(parallelism: usize, from: Option<&Path>, dir: &Path) -> StreamEnv {
    let env = StreamEnv::with_parallelism(parallelism);
    env.set_batch_size(32);
    env.enable_checkpointing(Duration::from_secs(3600));
    env.set_savepoint_dir(dir);
    if let Some(from) = from {
        env.resume_from(&from.display().to_string());
    }
    env
}

fn stop_when(env: &StreamEnv, job: &str, ready: impl Fn() -> bool) -> PathBuf {
    futures::executor::block_on(async {
        let mut client = env.start(job).await.unwrap();
        // Wait (not for a time: for a fact) until the job is far enough along.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready() {
            assert!(Instant::now() < deadline, "{job}: not ready after 60 s");
            assert!(
                !client.status().is_terminal(),
                "{job} ended before it was stopped"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let path = client.stop_with_savepoint(None).await.unwrap();
        client.wait().await.unwrap();
        path
    })
}

/// Runs the verification job until it stops with a savepoint; returns its path.
fn stop_with_savepoint(args: &example::Args, after_ms: u64) -> PathBuf {
    let mut args = args.clone();
    args.stop_with_savepoint_after_ms = Some(after_ms);
    let env = StreamEnv::new();
    env.set_batch_size(64);
    example::build(&env, &args).unwrap();
    let (result, savepoint) = example::run(&env, &args).unwrap().unwrap();
    assert_eq!(result.restarts, 0);
    savepoint.expect("the job was still running: it stopped with a savepoint")
}

/// Resumes the verification job from `from` and runs it to its end.
fn resume(args: &example::Args, from: &Path) {
    let mut args = args.clone();
    args.job.resume_from = Some(from.display().to_string());
    args.rate = None;
    let env = StreamEnv::new();
    env.set_batch_size(64);
    example::build(&env, &args).unwrap();
    env.execute_blocking("exactly-once").unwrap();
}

#[test]
fn stop_with_savepoint_then_resume_at_other_parallelisms_is_exactly_once() {
    for (before, after) in [(2, 3), (3, 1)] {
        let dir = temp_dir(&format!("stop-{before}-{after}"));
        let records = 60_000;
        let first = args(&dir, records, before);
        let savepoint = stop_with_savepoint(&first, 150);
        assert!(
            savepoint.starts_with(dir.join("savepoints")),
            "{savepoint:?}"
        );
        assert!(savepoint.join("_metadata").is_file());
        // Stopped part-way: the output so far is incomplete, and nothing is duplicated.
        assert!(example::audit(&first.output, records, first.keys).is_err());
        resume(&args(&dir, records, after), &savepoint);
        let lines = example::audit(&first.output, records, first.keys)
            .unwrap_or_else(|e| panic!("{before} -> {after}: {e}"));
        assert_eq!(lines, records);
        assert!(
            savepoint.join("_metadata").is_file(),
            "a savepoint is never deleted"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_savepoint_moved_elsewhere_still_restores() {
    let dir = temp_dir("moved");
    let records = 40_000;
    let first = args(&dir, records, 2);
    let savepoint = stop_with_savepoint(&first, 100);
    let moved = dir.join("elsewhere").join("my-savepoint");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&savepoint, &moved).unwrap();
    resume(&args(&dir, records, 2), &moved);
    example::audit(&first.output, records, first.keys).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

mod every_state_kind {
    //! A job with every kind of state, stopped with a savepoint and resumed
    //! at parallelism 1 -> 3 -> 2: keyed Value, List, Map, Reducing and
    //! Aggregating state, the source's even-split list state and a union list state.

    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};
    use weir::Lifecycle;

    use weir::state::{
        AggregateFunction, AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor,
        ReducingStateDescriptor, StateInitContext, StateSnapshotContext, ValueStateDescriptor,
    };
    use weir::testing::{audit_exactly_once, CountLine};
    use weir::{
        Collector, JobClient, KeyedContext, KeyedProcessFunction, ProcessContext, ProcessFunction,
        UserError,
    };

    use super::example;

    const RECORDS: u64 = 30_000;
    const KEYS: u64 = 31;

    /// (key, count, list length, list sum, map total, reduced sum, aggregated count, sum)
    type Line = (u64, u64, u64, u64, u64, u64, u64, u64);

    struct Counter;
    impl AggregateFunction for Counter {
        type In = u64;
        type Acc = u64;
        type Out = u64;
        fn create_accumulator(&self) -> u64 {
            0
        }

        fn add(&self, _value: u64, acc: &mut u64) {
            *acc += 1;
        }

        fn merge(&self, acc: &mut u64, other: u64) {
            *acc += other;
        }

        fn get_result(&self, acc: &u64) -> u64 {
            *acc
        }
    }

    #[derive(Clone)]
    struct EveryKind {
        count: ValueStateDescriptor<u64>,
        list: ListStateDescriptor<u64>,
        map: MapStateDescriptor<u64, u64>,
        reduced: ReducingStateDescriptor<u64>,
        aggregated: AggregatingStateDescriptor<Counter>,
    }

    impl Lifecycle for EveryKind {}

    impl KeyedProcessFunction<u64, u64, Line> for EveryKind {
        fn process_element(
            &mut self,
            value: u64,
            ctx: &mut KeyedContext<u64>,
            out: &mut Collector<Line>,
        ) -> Result<(), UserError> {
            let key = *ctx.current_key();
            let count = {
                let mut count = ctx.state(&self.count)?;
                let n = count.value().unwrap_or(0) + 1;
                count.update(n);
                n
            };
            let (list_len, list_sum) = {
                let mut list = ctx.state(&self.list)?;
                list.add(value);
                let all = list.get();
                (all.len() as u64, all.iter().sum::<u64>())
            };
            let map_total = {
                let mut map = ctx.state(&self.map)?;
                let n = map.get(&(value % 3)).unwrap_or(0);
                map.put(value % 3, n + 1);
                map.entries().iter().map(|(_, n)| n).sum::<u64>()
            };
            let reduced = {
                let mut reduced = ctx.state(&self.reduced)?;
                reduced.add(value);
                reduced.get().unwrap_or(0)
            };
            let aggregated = {
                let mut aggregated = ctx.state(&self.aggregated)?;
                aggregated.add(value);
                aggregated.get().unwrap_or(0)
            };
            out.collect((
                key, count, list_len, list_sum, map_total, reduced, aggregated, list_sum,
            ));
            Ok(())
        }
    }

    /// The (run, subtask) pairs a union list state collects.
    type Tags = BTreeSet<(u64, u64)>;

    /// Passes records on; keeps a union list state of every (run, subtask)
    /// that ever ran, and records what each subtask restored.
    #[derive(Clone)]
    struct UnionTags {
        run: u64,
        tags: BTreeSet<(u64, u64)>,
        restored: Arc<Mutex<Vec<Tags>>>,
        subtask: u64,
    }

    fn tags() -> ListStateDescriptor<(u64, u64)> {
        ListStateDescriptor::new("tags")
    }

    impl Lifecycle for UnionTags {
        fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
            if ctx.is_restored() {
                let restored: BTreeSet<(u64, u64)> = ctx
                    .operator_state()
                    .union_list(&tags())?
                    .get()?
                    .into_iter()
                    .collect();
                self.restored.lock().unwrap().push(restored.clone());
                self.tags = restored;
            }
            Ok(())
        }

        fn open(&mut self, ctx: &weir::RuntimeContext) -> Result<(), UserError> {
            self.subtask = ctx.subtask_index() as u64;
            Ok(())
        }

        fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
            let mut all = self.tags.clone();
            all.insert((self.run, self.subtask));
            let all: Vec<(u64, u64)> = all.into_iter().collect();
            ctx.operator_state().union_list(&tags())?.update(&all)?;
            Ok(())
        }
    }

    impl ProcessFunction<u64, u64> for UnionTags {
        fn process_element(
            &mut self,
            value: u64,
            _ctx: &mut ProcessContext,
            out: &mut Collector<u64>,
        ) -> Result<(), UserError> {
            out.collect(value);
            Ok(())
        }
    }

    struct Run {
        lines: Vec<Line>,
        restored: Vec<BTreeSet<(u64, u64)>>,
        savepoint: Option<std::path::PathBuf>,
    }

    fn run(
        run: u64,
        parallelism: usize,
        from: Option<&std::path::Path>,
        stop: bool,
        dir: &std::path::Path,
    ) -> Run {
        let env = super::savepointing_env(parallelism, from, dir);
        let restored = Arc::new(Mutex::new(Vec::new()));
        let rate = stop.then_some(60_000);
        let lines = env
            .add_source(example::Values::new(RECORDS, rate))
            .uid("values")
            .process(UnionTags {
                run,
                tags: BTreeSet::new(),
                restored: restored.clone(),
                subtask: 0,
            })
            .uid("union-tags")
            .key_by(|v: &u64| v % KEYS)
            .process(EveryKind {
                count: ValueStateDescriptor::new("count"),
                list: ListStateDescriptor::new("values"),
                map: MapStateDescriptor::new("by-residue"),
                reduced: ReducingStateDescriptor::new("sum", |a, b| a + b),
                aggregated: AggregatingStateDescriptor::new("counted", Counter),
            })
            .uid("every-kind")
            .collect();
        let savepoint = futures::executor::block_on(async {
            let mut client: JobClient = env.start("every-kind").await.unwrap();
            let savepoint = if stop {
                std::thread::sleep(std::time::Duration::from_millis(120));
                Some(client.stop_with_savepoint(None).await.unwrap())
            } else {
                None
            };
            client.wait().await.unwrap();
            savepoint
        });
        let restored = restored.lock().unwrap().clone();
        Run {
            lines: lines.take(),
            restored,
            savepoint,
        }
    }

    #[test]
    fn every_state_kind_survives_savepoints_across_parallelism_1_3_2() {
        let dir = super::temp_dir("every-kind");
        let first = run(1, 1, None, true, &dir);
        let second = run(2, 3, first.savepoint.as_deref(), true, &dir);
        let third = run(3, 2, second.savepoint.as_deref(), false, &dir);
        assert!(!first.lines.is_empty() && !second.lines.is_empty() && !third.lines.is_empty());

        // Union state: every subtask of the second run got run 1's tag; every
        // subtask of the third got the tags of all subtasks of runs 1 and 2.
        assert_eq!(second.restored, vec![BTreeSet::from([(1, 0)]); 3]);
        let all = BTreeSet::from([(1, 0), (2, 0), (2, 1), (2, 2)]);
        assert_eq!(third.restored, vec![all; 2]);

        let mut lines = first.lines;
        lines.extend(second.lines);
        lines.extend(third.lines);
        for &(key, count, list_len, list_sum, map_total, reduced, aggregated, sum) in &lines {
            assert_eq!(
                (list_len, map_total, aggregated, reduced),
                (count, count, count, sum),
                "key {key}: list, map, aggregating and reducing state agree with the value state"
            );
            assert_eq!(list_sum, sum);
        }
        let counts: Vec<CountLine> = lines
            .iter()
            .map(|&(key, count, .., sum)| CountLine { key, count, sum })
            .collect();
        audit_exactly_once(counts, &example::expected(RECORDS, KEYS)).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

mod broadcast_state_and_timers {
    //! Broadcast state and keyed event-time timers through savepoints at
    //! parallelism 1 -> 3 -> 2: the rules reach the job only in the first
    //! run, yet every subtask of the later runs has them (from the
    //! savepoint); every record's timer fires exactly once over the three
    //! runs, timers registered before a savepoint fire after the restore,
    //! at another parallelism.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};
    use weir::Lifecycle;

    use serde::{Deserialize, Serialize};
    use weir::inspect::StateReportKind;
    use weir::state::MapStateDescriptor;
    use weir::time::WatermarkStrategy;
    use weir::{
        Collector, KeyedBroadcastContext, KeyedBroadcastProcessFunction, KeyedContext, UserError,
    };

    use super::example;

    const RECORDS: u64 = 30_000;
    const KEYS: u64 = 31;
    /// Each record `v` (event time `v`) sets a timer at `v + DELAY` for its key.
    const DELAY: i64 = 1_000;

    /// What the operator emits.
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    enum Event {
        Record(u64),
        Fired { key: u64, at: i64 },
    }

    /// What one run's subtasks saw, read while the job runs.
    #[derive(Debug, Default)]
    struct Seen {
        /// Per subtask: (records, records that saw every rule).
        records: BTreeMap<usize, (u64, u64)>,
        /// Timestamps of the timers that fired.
        fired: Vec<i64>,
    }

    fn rules() -> Vec<(String, u64)> {
        vec![("limit".into(), 100), ("alert".into(), 30)]
    }

    /// Stores the rules in broadcast state; per record, notes whether its
    /// subtask has every rule and sets an event-time timer.
    #[derive(Clone)]
    struct RulesAndTimers {
        rules: MapStateDescriptor<String, u64>,
        seen: Arc<Mutex<Seen>>,
    }

    impl Lifecycle for RulesAndTimers {}

    impl KeyedBroadcastProcessFunction<u64, u64, (String, u64), Event> for RulesAndTimers {
        fn process_element(
            &mut self,
            value: u64,
            ctx: &mut KeyedContext<u64>,
            out: &mut Collector<Event>,
        ) -> Result<(), UserError> {
            let subtask = ctx.runtime().subtask_index();
            let has_rules = {
                let state = ctx.broadcast_state(&self.rules)?;
                rules()
                    .iter()
                    .all(|(name, limit)| state.get(name) == Some(limit))
            };
            let mut seen = self.seen.lock().unwrap();
            let counts = seen.records.entry(subtask).or_default();
            counts.0 += 1;
            counts.1 += u64::from(has_rules);
            ctx.register_event_time_timer(value as i64 + DELAY);
            out.collect(Event::Record(value));
            Ok(())
        }

        fn process_broadcast_element(
            &mut self,
            (name, limit): (String, u64),
            ctx: &mut KeyedBroadcastContext<u64>,
            _out: &mut Collector<Event>,
        ) -> Result<(), UserError> {
            ctx.broadcast_state(&self.rules)?.put(name, limit);
            Ok(())
        }

        fn on_timer(
            &mut self,
            timestamp: i64,
            ctx: &mut KeyedContext<u64>,
            out: &mut Collector<Event>,
        ) -> Result<(), UserError> {
            self.seen.lock().unwrap().fired.push(timestamp);
            out.collect(Event::Fired {
                key: *ctx.current_key(),
                at: timestamp,
            });
            Ok(())
        }
    }

    struct Run {
        events: Vec<Event>,
        seen: Seen,
        savepoint: Option<PathBuf>,
    }

    impl Run {
        /// The record values the run processed.
        fn records(&self) -> impl Iterator<Item = u64> + '_ {
            self.events.iter().filter_map(|e| match e {
                Event::Record(v) => Some(*v),
                Event::Fired { .. } => None,
            })
        }

        /// The timestamps of the timers the run's records set.
        fn timers_set(&self) -> impl Iterator<Item = i64> + '_ {
            self.records().map(|v| v as i64 + DELAY)
        }

        /// The largest record value the run processed.
        fn last_record(&self) -> u64 {
            self.records().max().expect("the run processed records")
        }

        /// The timestamps of the timers that fired in the run.
        fn timers_fired(&self) -> impl Iterator<Item = i64> + '_ {
            self.events.iter().filter_map(|e| match e {
                Event::Fired { at, .. } => Some(*at),
                Event::Record(_) => None,
            })
        }

        fn fired(&self, key: u64, at: i64) -> bool {
            self.events.contains(&Event::Fired { key, at })
        }
    }

    /// Runs the job at `parallelism`, restored from `from` if given; with
    /// `stop_when`, stops it with a savepoint once that holds of what its
    /// subtasks saw, else runs it to its end. Only the first run (`from`
    /// `None`) is given the rules.
    fn run(
        parallelism: usize,
        from: Option<&Path>,
        dir: &Path,
        stop_when: Option<&dyn Fn(&Seen) -> bool>,
    ) -> Run {
        let env = super::savepointing_env(parallelism, from, dir);
        let descriptor = MapStateDescriptor::<String, u64>::new("rules");
        let given = if from.is_none() { rules() } else { Vec::new() };
        let rule_stream = env
            .from_collection(given)
            .uid("rules")
            .broadcast_state(std::slice::from_ref(&descriptor));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let events = env
            .add_source(example::Values::new(RECORDS, stop_when.map(|_| 60_000)))
            .uid("values")
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::punctuated(|_: &u64, ts| Some(ts))
                    .with_timestamp_assigner(|v: &u64| *v as i64),
            )
            .uid("timestamps")
            .key_by(|v: &u64| v % KEYS)
            .connect(rule_stream)
            .process(RulesAndTimers {
                rules: descriptor,
                seen: seen.clone(),
            })
            .uid("rules-and-timers")
            .collect();
        let savepoint = match stop_when {
            Some(ready) => Some(super::stop_when(&env, "rules-and-timers", || {
                ready(&seen.lock().unwrap())
            })),
            None => {
                env.execute_blocking("rules-and-timers").unwrap();
                None
            }
        };
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        Run {
            events: events.take(),
            seen,
            savepoint,
        }
    }

    fn records(seen: &Seen) -> u64 {
        seen.records.values().map(|(n, _)| n).sum()
    }

    #[test]
    fn broadcast_state_and_timers_survive_savepoints_across_parallelism_1_3_2() {
        let dir = super::temp_dir("broadcast-timers");
        // Stopped once its one subtask has the rules, so the savepoint holds them.
        let first = run(
            1,
            None,
            &dir,
            Some(&|seen: &Seen| records(seen) >= 500 && seen.records[&0].1 > 0),
        );
        let savepoint = first.savepoint.as_deref().unwrap();
        let report = weir::inspect::inspect(savepoint).unwrap();
        let operator = report
            .operators
            .iter()
            .find(|o| o.uid == "rules-and-timers")
            .unwrap();
        let entries = |kind: StateReportKind| {
            operator
                .states
                .iter()
                .find(|s| s.kind == kind)
                .and_then(|s| s.entries)
        };
        assert_eq!(entries(StateReportKind::Broadcast), Some(2), "{operator:?}");
        assert!(
            entries(StateReportKind::Timers).unwrap_or(0) > 0,
            "{operator:?}"
        );

        // Stopped once a timer set in the first run has fired in this one.
        let set_before: BTreeSet<i64> = first.timers_set().collect();
        let second = run(
            3,
            Some(savepoint),
            &dir,
            Some(&|seen: &Seen| {
                records(seen) >= 500 && seen.fired.iter().any(|at| set_before.contains(at))
            }),
        );
        let third = run(2, second.savepoint.as_deref(), &dir, None);

        // Every subtask of the restored runs had the rules for every record.
        for (run, parallelism) in [(&second, 3), (&third, 2)] {
            let subtasks: Vec<usize> = run.seen.records.keys().copied().collect();
            assert_eq!(subtasks, (0..parallelism).collect::<Vec<_>>());
            for (subtask, (records, with_rules)) in &run.seen.records {
                assert_eq!(
                    records, with_rules,
                    "parallelism {parallelism}, subtask {subtask}: records that saw the rules"
                );
            }
        }

        // Timers set before a savepoint fire after the restore: some of the
        // first run's in the second (it stopped once one had), and the last
        // record's timer of each stopped run, which cannot be due before
        // that run stopped, in a later one.
        assert!(second.timers_fired().any(|at| set_before.contains(&at)));
        let last = first.last_record();
        let (key, at) = (last % KEYS, last as i64 + DELAY);
        assert!(!first.fired(key, at) && (second.fired(key, at) || third.fired(key, at)));
        let last = second.last_record();
        let (key, at) = (last % KEYS, last as i64 + DELAY);
        assert!(!second.fired(key, at) && third.fired(key, at));

        // Over the three runs, every record once and every timer fired once.
        let mut times: BTreeMap<Event, usize> = BTreeMap::new();
        for event in [first.events, second.events, third.events].concat() {
            *times.entry(event).or_default() += 1;
        }
        let expected: Vec<Event> = (0..RECORDS)
            .map(Event::Record)
            .chain((0..RECORDS).map(|v| Event::Fired {
                key: v % KEYS,
                at: v as i64 + DELAY,
            }))
            .collect();
        let wrong: Vec<(&Event, Option<&usize>)> = expected
            .iter()
            .map(|e| (e, times.get(e)))
            .filter(|(_, n)| *n != Some(&1))
            .collect();
        assert!(
            wrong.is_empty() && times.len() == expected.len(),
            "records or timers lost or duplicated (event, times): {:?}",
            &wrong[..wrong.len().min(10)]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

mod uid_rules {
    //! Flink's rules for matching state to operators by uid, checked by
    //! `StreamEnv::check_restore` and enforced by the restore itself.

    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};
    use weir::Lifecycle;

    use weir::state::ValueStateDescriptor;
    use weir::{
        Collector, JobError, KeyedContext, KeyedProcessFunction, RestoreError, StreamEnv,
        UserError, Verdict,
    };

    use super::example;

    /// Values in the original job's source; the changed job reads the rest.
    const RECORDS: u64 = 20_000;

    /// What a counter saw: (input value, its key's count after it).
    type Seen = Arc<Mutex<Vec<(u64, u64)>>>;

    /// Counts records per key (value state "n") and passes them on; every
    /// count is also recorded in `seen`, so a test can see what state each
    /// counter started from.
    #[derive(Clone)]
    struct Count {
        n: ValueStateDescriptor<u64>,
        seen: Seen,
    }

    impl Lifecycle for Count {}

    impl<K: weir::state::Key> KeyedProcessFunction<K, u64, u64> for Count {
        fn process_element(
            &mut self,
            value: u64,
            ctx: &mut KeyedContext<K>,
            out: &mut Collector<u64>,
        ) -> Result<(), UserError> {
            let mut n = ctx.state(&self.n)?;
            let count = n.value().unwrap_or(0) + 1;
            n.update(count);
            self.seen.lock().unwrap().push((value, count));
            out.collect(value);
            Ok(())
        }
    }

    fn count() -> Count {
        Count {
            n: ValueStateDescriptor::new("n"),
            seen: Arc::default(),
        }
    }

    /// The counts in `seen` by key (`key` of the input value), sorted.
    fn counts_by_key(seen: &Seen, key: impl Fn(u64) -> u64) -> BTreeMap<u64, Vec<u64>> {
        let mut by_key: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for &(value, count) in seen.lock().unwrap().iter() {
            by_key.entry(key(value)).or_default().push(count);
        }
        by_key
            .values_mut()
            .for_each(|counts| counts.sort_unstable());
        by_key
    }

    /// The first and last of sorted `counts` if they are contiguous (each
    /// count once), else `None`.
    fn span(counts: &[u64]) -> Option<(u64, u64)> {
        let contiguous = counts.windows(2).all(|w| w[1] == w[0] + 1);
        Some((*counts.first()?, *counts.last()?)).filter(|_| contiguous)
    }

    /// The job the savepoint is taken of: source -> stateless map -> keyed
    /// count (keyed by the mapped value % 10); returns what the count saw.
    fn original(env: &StreamEnv) -> Seen {
        let counter = count();
        let seen = counter.seen.clone();
        env.add_source(example::Values::new(RECORDS, Some(50_000)))
            .uid("values")
            .map(|v: u64| v + 1)
            .uid("plus-one")
            .key_by(|v: &u64| v % 10)
            .process(counter)
            .uid("counter")
            .discard();
        seen
    }

    fn env(savepoints: &Path) -> StreamEnv {
        let env = StreamEnv::with_parallelism(2);
        env.enable_checkpointing(std::time::Duration::from_secs(3600));
        env.set_savepoint_dir(savepoints);
        env
    }

    /// Stops the original job with a savepoint once it has counted some
    /// records; returns the savepoint and the count of every key in it.
    fn savepoint(dir: &Path) -> (PathBuf, BTreeMap<u64, u64>) {
        let env = env(dir);
        let seen = original(&env);
        let path = super::stop_when(&env, "original", || seen.lock().unwrap().len() >= 500);
        let counts = counts_by_key(&seen, |v| v % 10)
            .into_iter()
            .map(|(key, counts)| (key, counts.last().copied().unwrap_or(0)))
            .collect();
        (path, counts)
    }

    fn verdicts(env: &StreamEnv, savepoint: &Path) -> Vec<(String, Verdict)> {
        env.check_restore(savepoint, "changed")
            .unwrap()
            .check
            .uids
            .into_iter()
            .map(|u| (u.uid, u.verdict))
            .collect()
    }

    /// Restores `env`'s job from `savepoint` on a bounded source and runs it.
    fn restore(env: &StreamEnv, savepoint: &Path) -> Result<(), String> {
        restore_typed(env, savepoint).map_err(|e| e.to_string())
    }

    fn restore_typed(env: &StreamEnv, savepoint: &Path) -> Result<(), JobError> {
        env.resume_from(&savepoint.display().to_string());
        env.execute_blocking("changed").map(|_| ())
    }

    #[test]
    fn state_follows_uids_through_reordering_additions_and_removals() {
        let dir = super::temp_dir("uid-rules");
        let (savepoint, saved_counts) = savepoint(&dir);
        let v = |s: &str| s.to_string();

        // Reordered, the stateless map removed, a stateless filter and a new
        // stateful operator added: the state goes where its uid is. The new
        // counter takes the old counter's position (and its key function),
        // so state mapped by position instead of uid would land in it.
        let changed = env(&dir);
        let (new_counter, counter) = (count(), count());
        let (new_seen, seen) = (new_counter.seen.clone(), counter.seen.clone());
        changed
            .add_source(example::Values::new(RECORDS, None))
            .uid("values")
            .filter(|v: &u64| *v < u64::MAX)
            .uid("new-filter")
            .key_by(|v: &u64| v % 10)
            .process(new_counter)
            .uid("new-counter")
            .key_by(|v: &u64| v % 7)
            .process(counter)
            .uid("counter")
            .discard();
        let got = verdicts(&changed, &savepoint);
        assert_eq!(
            got,
            vec![
                (v("values"), Verdict::Matched),
                (v("new-filter"), Verdict::New),
                (v("new-counter"), Verdict::New),
                (v("counter"), Verdict::Matched),
                (v("auto-4"), Verdict::New), // the sink
            ]
        );
        restore(&changed, &savepoint).unwrap();
        // `counter` goes on from the savepoint's count of each of its keys
        // (0..7 of the old keys 0..10), each count once.
        let resumed = counts_by_key(&seen, |v| v % 7);
        assert_eq!(resumed.len(), 7, "the restored job counted every key");
        for (key, counts) in &resumed {
            let saved = saved_counts.get(key).copied().unwrap_or(0);
            assert!(saved > 0, "key {key} was counted before the savepoint");
            assert_eq!(
                span(counts),
                Some((saved + 1, saved + counts.len() as u64)),
                "key {key}: `counter` continues from the savepoint's count {saved}"
            );
        }
        // `new-counter` starts empty: every key counts from 1.
        let fresh = counts_by_key(&new_seen, |v| v % 10);
        assert_eq!(fresh.len(), 10, "the new counter counted every key");
        for (key, counts) in &fresh {
            assert_eq!(
                span(counts),
                Some((1, counts.len() as u64)),
                "key {key}: `new-counter` starts empty"
            );
        }

        // At another parallelism: rescaled.
        let rescaled = env(&dir);
        rescaled.set_parallelism(3);
        let _ = original(&rescaled);
        assert!(verdicts(&rescaled, &savepoint)
            .contains(&(v("counter"), Verdict::Rescaled { from: 2, to: 3 })));

        // The stateful counter removed: an error naming its uid, unless allowed.
        let removed = |allow: bool| {
            let env = env(&dir);
            env.set_allow_non_restored_state(allow);
            env.add_source(example::Values::new(1_000, None))
                .uid("values")
                .discard();
            env
        };
        let refused = removed(false);
        assert!(verdicts(&refused, &savepoint).contains(&(v("counter"), Verdict::Missing)));
        let check = refused.check_restore(&savepoint, "changed").unwrap();
        assert!(!check.is_ok());
        assert!(check.to_string().contains("MISSING"), "{check}");
        let err = restore(&refused, &savepoint).unwrap_err();
        assert!(
            err.contains("operators this job does not have: counter")
                && err.contains("allow_non_restored_state"),
            "{err}"
        );
        let allowed = removed(true);
        assert!(allowed
            .check_restore(&savepoint, "changed")
            .unwrap()
            .is_ok());
        restore(&allowed, &savepoint).unwrap();

        // Another max parallelism: an error.
        let other_max = env(&dir);
        other_max.set_max_parallelism(64);
        let _ = original(&other_max);
        assert!(verdicts(&other_max, &savepoint).contains(&(
            v("counter"),
            Verdict::MaxParallelismChanged {
                snapshot: 128,
                job: 64
            }
        )));
        let error = restore_typed(&other_max, &savepoint).unwrap_err();
        match &error {
            JobError::RestoreFailed(RestoreError::Incompatible {
                snapshot, problems, ..
            }) => {
                assert!(snapshot.contains("savepoint"), "{snapshot}");
                assert!(
                    problems
                        .iter()
                        .any(|p| p.contains("max parallelism 128") && p.contains("counter")),
                    "{problems:?}"
                );
            }
            other => panic!("expected an incompatible snapshot, got {other:?}"),
        }
        assert!(
            !error.is_retryable(),
            "a restart cannot change the snapshot"
        );

        // Keyed state under another key type: a state type mismatch.
        let other_key = env(&dir);
        other_key
            .add_source(example::Values::new(1_000, None))
            .uid("values")
            .key_by(|v: &u64| format!("{}", v % 10))
            .process(count())
            .uid("counter")
            .discard();
        let got = verdicts(&other_key, &savepoint);
        assert!(
            matches!(&got[1], (uid, Verdict::StateTypeMismatch { snapshot, job })
                if uid == "counter" && snapshot.contains("u64") && job.contains("String")),
            "{got:?}"
        );
        let err = restore(&other_key, &savepoint).unwrap_err();
        assert!(err.contains("counter") && err.contains("key type"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    thread_local! {
        /// What this thread logged at warn level while capturing.
        static CAPTURED: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
    }

    /// Writes log output into this thread's capture, if one is on.
    struct ThisThread;

    impl std::io::Write for ThisThread {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            CAPTURED.with_borrow_mut(|c| {
                if let Some(captured) = c {
                    captured.extend_from_slice(bytes)
                }
            });
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The warnings planning `env`'s job logs (on this thread).
    ///
    /// One process-wide subscriber writes each thread's warnings to that
    /// thread's capture. A subscriber scoped to the test thread would not
    /// do: tracing caches per call site whether anyone listens, and a job of
    /// a concurrent test that reaches the call site first can leave "nobody"
    /// cached.
    fn build_warnings(env: &StreamEnv) -> String {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(|| ThisThread)
                .with_ansi(false)
                .with_max_level(tracing::Level::WARN)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other test of this binary installs a subscriber");
        });
        CAPTURED.set(Some(Vec::new()));
        env.plan("warned").unwrap();
        let text = CAPTURED.take().unwrap_or_default();
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn a_checkpointed_job_warns_about_operators_without_a_uid() {
        let dir = super::temp_dir("auto-uids");
        // A map (vertex 1) and the sink (vertex 3) have no uid.
        let declare = |env: &StreamEnv| {
            env.add_source(example::Values::new(10, None))
                .uid("values")
                .map(|v: u64| v + 1)
                .key_by(|v: &u64| v % 10)
                .process(count())
                .uid("counter")
                .print()
        };
        let checkpointed = env(&dir);
        declare(&checkpointed);
        let warnings = build_warnings(&checkpointed);
        assert!(
            warnings.contains("WARN")
                && warnings.contains("auto-1 (Map), auto-3 (Sink: Print)")
                && warnings.contains("set `.uid(..)` on every stateful operator"),
            "{warnings}"
        );
        assert!(
            !warnings.contains("values") && !warnings.contains("counter"),
            "{warnings}"
        );

        // Every operator with a uid, or no checkpointing: no warning.
        let all_uids = env(&dir);
        all_uids
            .add_source(example::Values::new(10, None))
            .uid("values")
            .map(|v: u64| v + 1)
            .uid("plus-one")
            .print()
            .uid("sink");
        assert_eq!(build_warnings(&all_uids), "");
        let plain = StreamEnv::with_parallelism(2);
        declare(&plain);
        assert_eq!(build_warnings(&plain), "");
    }

    #[test]
    fn a_restore_from_a_path_that_is_not_a_snapshot_names_the_path() {
        let dir = super::temp_dir("not-a-snapshot");
        std::fs::create_dir_all(&dir).unwrap();
        let env = env(&dir);
        let _ = original(&env);
        let err = env.check_restore(&dir, "x").unwrap_err().to_string();
        assert!(
            err.contains(&dir.display().to_string()) && err.contains("no _metadata"),
            "{err}"
        );
        let missing = dir.join("nope");
        let err = env.check_restore(&missing, "x").unwrap_err().to_string();
        assert!(
            err.contains("nope") && err.contains("not a directory"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

mod running_job {
    //! Savepoints of a job that goes on running, and what a savepoint refuses.

    use std::path::Path;

    use weir::StreamEnv;

    use super::{args, example, temp_dir};

    /// For every key, the counts in `dir` are contiguous up to the expected
    /// last one, each once, and the last has the exact sum: the run restored
    /// each key's state and went on without loss or duplicates.
    fn check_resumed_output(dir: &Path, records: u64, keys: u64) {
        let expected = example::expected(records, keys);
        let mut by_key: std::collections::BTreeMap<u64, Vec<(u64, u64)>> = Default::default();
        for line in example::committed_lines(dir).unwrap() {
            by_key
                .entry(line.key)
                .or_default()
                .push((line.count, line.sum));
        }
        for (key, want) in expected {
            let mut got = by_key.remove(&key).unwrap_or_default();
            got.sort();
            let Some(&(last, sum)) = got.last() else {
                continue;
            };
            assert_eq!((last, sum), (want.records, want.sum), "key {key}");
            let first = got[0].0;
            let counts: Vec<u64> = got.iter().map(|(c, _)| *c).collect();
            assert_eq!(
                counts,
                (first..=last).collect::<Vec<_>>(),
                "key {key}: contiguous, each once"
            );
        }
    }

    #[test]
    fn a_savepoint_of_a_running_job_restores_while_the_job_goes_on() {
        let dir = temp_dir("running");
        let records = 40_000;
        let first = args(&dir, records, 2);
        let env = StreamEnv::new();
        env.set_batch_size(64);
        example::build(&env, &first).unwrap();
        let savepoint = futures::executor::block_on(async {
            let mut client = env.start("running").await.unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
            let savepoint = client.trigger_savepoint(None).await.unwrap();
            client.wait().await.unwrap();
            savepoint
        });
        // The job went on to its end: its own output is complete and exact.
        example::audit(&first.output, records, first.keys).unwrap();
        assert!(savepoint.join("_metadata").is_file());

        let mut second = args(&dir, records, 3);
        second.output = dir.join("resumed");
        second.rate = None;
        second.job.resume_from = Some(savepoint.display().to_string());
        let env = StreamEnv::new();
        example::build(&env, &second).unwrap();
        env.execute_blocking("resumed").unwrap();
        check_resumed_output(&second.output, records, second.keys);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A savepoint taken while the job runs commits the sinks (as every
    /// completed checkpoint does), so a failure after it restarts from the
    /// savepoint, the newest snapshot of the job's lineage, not from the
    /// checkpoint before it: that would commit the records in between twice.
    #[test]
    fn a_failure_after_a_savepoint_restarts_from_the_savepoint() {
        let dir = temp_dir("after-savepoint");
        let records = 40_000;
        let mut job = args(&dir, records, 2);
        job.rate = Some(50_000);
        job.job.checkpoint_interval_ms = Some(3_600_000);
        job.fail_at = vec![records - 200];
        let env = StreamEnv::new();
        env.set_batch_size(64);
        example::build(&env, &job).unwrap();
        let (savepoint, result) = futures::executor::block_on(async {
            let mut client = env.start("after-savepoint").await.unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
            client.trigger_checkpoint().await.unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
            let savepoint = client.trigger_savepoint(None).await.unwrap();
            (savepoint, client.wait().await.unwrap())
        });
        assert_eq!(
            result.restarts, 1,
            "the injected failure came after the savepoint"
        );
        let savepoint_id: u64 = savepoint
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit('-').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert_eq!(savepoint_id, 2, "checkpoint 1, then savepoint 2");
        example::audit(&job.output, records, job.keys).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn savepoint_errors_name_what_is_missing_and_a_failed_stop_leaves_the_job_running() {
        let dir = temp_dir("refused");
        std::fs::create_dir_all(&dir).unwrap();
        let records = 30_000;
        let mut job = args(&dir, records, 2);
        job.job.savepoint_dir = None;
        let env = StreamEnv::new();
        env.set_batch_size(64);
        example::build(&env, &job).unwrap();
        let blocker = dir.join("a-file");
        std::fs::write(&blocker, "not a directory").unwrap();
        futures::executor::block_on(async {
            let mut client = env.start("refused").await.unwrap();
            let err = client
                .trigger_savepoint(None)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("no savepoint directory") && err.contains("savepoints_dir"),
                "{err}"
            );
            let err = client
                .stop_with_savepoint(Some(&blocker.join("savepoints")))
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("a-file") && err.contains("cannot create"),
                "{err}"
            );
            // The job goes on, and ends complete.
            client.wait().await.unwrap();
        });
        example::audit(&job.output, records, job.keys).unwrap();

        // A job without checkpointing cannot take savepoints.
        let plain = StreamEnv::with_parallelism(1);
        plain
            .add_source(example::Values::new(u64::MAX, Some(1_000)))
            .discard();
        futures::executor::block_on(async {
            let client = plain.start("plain").await.unwrap();
            let err = client
                .trigger_savepoint(Some(&dir))
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("no checkpointing"), "{err}");
            client.cancel();
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A job switches state backends through savepoints: heap -> RocksDB ->
/// heap, stopping with a savepoint each time, and the committed output of
/// the three runs together is exactly once.
#[cfg(feature = "rocksdb")]
#[test]
fn heap_to_rocksdb_to_heap_through_savepoints() {
    let dir = temp_dir("backends");
    let records = 60_000;
    let mut first = args(&dir, records, 2);
    first.job.state_backend = Some("heap".into());
    let savepoint = stop_with_savepoint(&first, 150);
    let mut second = args(&dir, records, 3);
    second.job.state_backend = Some("rocksdb".into());
    second.job.resume_from = Some(savepoint.display().to_string());
    let savepoint = stop_with_savepoint(&second, 150);
    let mut third = args(&dir, records, 1);
    third.job.state_backend = Some("heap".into());
    resume(&third, &savepoint);
    let lines = example::audit(&first.output, records, first.keys).unwrap();
    assert_eq!(lines, records);
    let _ = std::fs::remove_dir_all(&dir);
}
