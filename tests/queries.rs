//! Live queries of a running job's keyed state (`weir::query`): values,
//! lists and maps by key across subtasks, read-your-writes, and every
//! error a user can meet.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir::query::{Consistency, QueryError, QueryableState};
use weir::source::{Source, SourceStatus};
use weir::state::{ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor};
use weir::{
    Collector, JobClient, KeyedContext, KeyedProcessFunction, Lifecycle, StreamEnv, UserError,
};

/// (user, amount)
type Payment = (String, u64);

/// Emits what the test pushes, and never ends by itself.
#[derive(Clone)]
struct Pushed {
    queue: Arc<Mutex<VecDeque<Payment>>>,
}

impl Lifecycle for Pushed {}

impl Source<Payment> for Pushed {
    fn parallelism(&self) -> Option<usize> {
        Some(1)
    }

    fn poll_next(&mut self, out: &mut Vec<Payment>, max: usize) -> Result<SourceStatus, UserError> {
        let mut queue = self.queue.lock().unwrap();
        while out.len() < max {
            match queue.pop_front() {
                Some(p) => out.push(p),
                None => break,
            }
        }
        Ok(SourceStatus::More)
    }
}

/// Per user: the total (value state), every amount (list state) and the
/// payments per amount (map state), all queryable; counts what it processed.
#[derive(Clone)]
struct Totals {
    total: ValueStateDescriptor<u64>,
    amounts: ListStateDescriptor<u64>,
    per_amount: MapStateDescriptor<u64, u32>,
    processed: Arc<AtomicUsize>,
}

impl Lifecycle for Totals {}

impl KeyedProcessFunction<String, Payment, u64> for Totals {
    fn process_element(
        &mut self,
        (_, amount): Payment,
        ctx: &mut KeyedContext<String>,
        out: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        let total = ctx.state(&self.total)?.value().unwrap_or(0) + amount;
        ctx.state(&self.total)?.update(total);
        ctx.state(&self.amounts)?.add(amount);
        let mut per_amount = ctx.state(&self.per_amount)?;
        let n = per_amount.get(&amount).unwrap_or(0) + 1;
        per_amount.put(amount, n);
        out.collect(total);
        self.processed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct Running {
    client: JobClient,
    queue: Arc<Mutex<VecDeque<Payment>>>,
    processed: Arc<AtomicUsize>,
    pushed: usize,
}

impl Running {
    fn start(parallelism: usize) -> Running {
        Self::start_with(parallelism, |_| ())
    }

    fn start_with(parallelism: usize, configure: impl FnOnce(&StreamEnv)) -> Running {
        let queue = Arc::new(Mutex::new(VecDeque::new()));
        let processed = Arc::new(AtomicUsize::new(0));
        let env = StreamEnv::with_parallelism(parallelism);
        configure(&env);
        env.add_source(Pushed {
            queue: queue.clone(),
        })
        .uid("payments")
        .key_by(|p: &Payment| p.0.clone())
        .process(Totals {
            total: ValueStateDescriptor::new("total").queryable("total"),
            amounts: ListStateDescriptor::new("amounts").queryable("amounts"),
            per_amount: MapStateDescriptor::new("per-amount").queryable("per-amount"),
            processed: processed.clone(),
        })
        .uid("totals")
        .name("totals")
        .discard();
        let client = futures::executor::block_on(env.start("queries")).unwrap();
        Running {
            client,
            queue,
            processed,
            pushed: 0,
        }
    }

    /// Pushes `payments` and waits until the job has processed them.
    fn pay(&mut self, payments: &[(&str, u64)]) {
        let mut queue = self.queue.lock().unwrap();
        queue.extend(payments.iter().map(|(u, a)| (u.to_string(), *a)));
        drop(queue);
        self.pushed += payments.len();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.processed.load(Ordering::SeqCst) < self.pushed {
            assert!(Instant::now() < deadline, "payments not processed in 30 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn query<V: serde::de::DeserializeOwned>(
        &self,
        uid: &str,
        name: &str,
        user: &str,
    ) -> Result<Option<V>, QueryError> {
        futures::executor::block_on(self.client.query(
            (uid, name),
            &user.to_string(),
            Consistency::Live,
        ))
    }

    fn stop(self) {
        self.client.cancel();
        let mut client = self.client;
        let _ = futures::executor::block_on(client.wait());
    }
}

#[test]
fn queries_read_values_lists_and_maps_of_keys_on_every_subtask() {
    values_lists_and_maps(Running::start(2));
}

#[cfg(feature = "rocksdb")]
#[test]
fn queries_read_rocksdb_state_too() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().to_path_buf();
    values_lists_and_maps(Running::start_with(2, |env| {
        env.set_state_backend(weir::state::RocksDbBackend::new().with_local_dirs([local]));
    }));
}

fn values_lists_and_maps(mut job: Running) {
    let users: Vec<String> = (0..20).map(|i| format!("user-{i}")).collect();
    let payments: Vec<(&str, u64)> = users
        .iter()
        .enumerate()
        .flat_map(|(i, u)| [(u.as_str(), i as u64), (u.as_str(), 10), (u.as_str(), 10)])
        .collect();
    job.pay(&payments);
    for (i, user) in users.iter().enumerate() {
        let i = i as u64;
        assert_eq!(
            job.query::<u64>("totals", "total", user),
            Ok(Some(i + 20)),
            "{user}"
        );
        assert_eq!(
            job.query::<Vec<u64>>("totals", "amounts", user),
            Ok(Some(vec![i, 10, 10])),
            "{user}"
        );
        let mut expected = BTreeMap::new();
        *expected.entry(i).or_insert(0) += 1;
        *expected.entry(10).or_insert(0) += 2;
        assert_eq!(
            job.query::<BTreeMap<u64, u32>>("totals", "per-amount", user),
            Ok(Some(expected)),
            "{user}"
        );
    }
    assert_eq!(job.query::<u64>("totals", "total", "nobody"), Ok(None));
    // One map entry, without the whole map.
    let entry = |user: &str, amount: u64| {
        futures::executor::block_on(job.client.query_entry::<u32, String, u64>(
            ("totals", "per-amount"),
            &user.to_string(),
            &amount,
        ))
    };
    assert_eq!(entry("user-3", 10), Ok(Some(2)));
    assert_eq!(entry("user-3", 3), Ok(Some(1)));
    assert_eq!(entry("user-3", 4), Ok(None));
    assert_eq!(entry("nobody", 10), Ok(None));
    // An entry of a state that is not a map.
    let err = futures::executor::block_on(job.client.query_entry::<u32, String, u64>(
        ("totals", "total"),
        &"user-3".to_string(),
        &10,
    ))
    .unwrap_err();
    assert!(err.to_string().contains("not a map state"), "{err}");
    job.stop();
}

#[test]
fn a_query_sees_every_record_whose_processing_was_acknowledged() {
    let mut job = Running::start(2);
    for n in 1..=50_u64 {
        job.pay(&[("ann", 1)]);
        assert_eq!(job.query::<u64>("totals", "total", "ann"), Ok(Some(n)));
    }
    job.stop();
}

#[test]
fn query_errors_name_what_is_there() {
    let mut job = Running::start(2);
    job.pay(&[("ann", 5)]);
    let err = job.query::<u64>("nope", "total", "ann").unwrap_err();
    assert!(matches!(err, QueryError::UnknownOperator { .. }), "{err}");
    assert!(
        err.to_string().contains("payments") && err.to_string().contains("totals"),
        "{err}"
    );

    let err = job.query::<u64>("totals", "nope", "ann").unwrap_err();
    assert_eq!(
        err.to_string(),
        "operator `totals` has no queryable state `nope` (a state is queryable once the \
         operator has used it); its queryable states are: amounts, per-amount, total"
    );

    // An operator without queryable state.
    let err = job.query::<u64>("payments", "total", "ann").unwrap_err();
    assert!(matches!(err, QueryError::UnknownState { .. }), "{err}");

    // A key of another type than the operator's: refused, not answered
    // from the wrong subtask.
    let err = futures::executor::block_on(job.client.query::<u64, u64>(
        ("totals", "total"),
        &7,
        Consistency::Live,
    ))
    .unwrap_err();
    assert!(matches!(err, QueryError::Codec(_)), "{err}");

    // A value read as the wrong type.
    let err = job.query::<String>("totals", "total", "ann").unwrap_err();
    assert!(
        err.to_string()
            .contains("does not decode as `alloc::string::String`"),
        "{err}"
    );

    // A job that has ended.
    let control = job.client.control();
    job.stop();
    let err = futures::executor::block_on(control.query::<u64, String>(
        ("totals", "total"),
        &"ann".to_string(),
        Consistency::Live,
    ))
    .unwrap_err();
    assert!(
        matches!(err, QueryError::Unavailable { retry: false, .. }),
        "{err}"
    );
}

/// After a rescale from a savepoint (2 -> 3 subtasks) queries reach the new
/// owners of the keys: the restored totals, plus what came since.
#[test]
fn queries_are_routed_to_the_new_owners_after_a_rescale() {
    let dir = tempfile::tempdir().unwrap();
    let savepoints = dir.path().join("savepoints");
    let checkpoints = dir.path().join("checkpoints");
    let users: Vec<String> = (0..12).map(|i| format!("user-{i}")).collect();
    let configure = |env: &StreamEnv| {
        env.set_checkpoint_dir(checkpoints.to_str().unwrap());
        env.enable_checkpointing(Duration::from_secs(3600));
        env.set_savepoint_dir(savepoints.clone());
    };
    let mut job = Running::start_with(2, configure);
    let payments: Vec<(&str, u64)> = users.iter().map(|u| (u.as_str(), 7)).collect();
    job.pay(&payments);
    let path = futures::executor::block_on(job.client.stop_with_savepoint(None)).unwrap();
    let mut client = job.client;
    futures::executor::block_on(client.wait()).unwrap();

    let path = path.to_str().unwrap().to_string();
    let mut job = Running::start_with(3, |env| {
        configure(env);
        env.resume_from(&path);
    });
    // A state is queryable once its subtask has used it: one more payment
    // of every user.
    let payments: Vec<(&str, u64)> = users.iter().map(|u| (u.as_str(), 1)).collect();
    job.pay(&payments);
    for user in &users {
        assert_eq!(
            job.query::<u64>("totals", "total", user),
            Ok(Some(8)),
            "{user}"
        );
        assert_eq!(
            job.query::<Vec<u64>>("totals", "amounts", user),
            Ok(Some(vec![7, 1]))
        );
    }
    job.stop();
}

/// A bounded listing of the keys, page by page, over every subtask: each
/// key once, pages of at most the limit, the same keys as were written.
#[test]
fn keys_are_listed_page_by_page_across_subtasks() {
    let mut job = Running::start(3);
    let users: Vec<String> = (0..25).map(|i| format!("user-{i:02}")).collect();
    let payments: Vec<(&str, u64)> = users.iter().map(|u| (u.as_str(), 1)).collect();
    job.pay(&payments);
    let mut listed: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let page: Vec<String> =
            futures::executor::block_on(job.client.keys(("totals", "total"), 7, after.as_ref()))
                .unwrap();
        assert!(page.len() <= 7, "{page:?}");
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        listed.extend(page);
    }
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), listed.len(), "a key listed twice: {listed:?}");
    assert_eq!(sorted, users);
    // An unknown name lists the queryable ones.
    let err = futures::executor::block_on(job.client.keys::<String>(("totals", "nope"), 5, None))
        .unwrap_err();
    assert!(
        err.to_string().contains("amounts, per-amount, total"),
        "{err}"
    );
    job.stop();
}

/// A subtask that has not used the state yet has none of its keys: the
/// listing has the others' keys (one user: one subtask of three knows it).
#[test]
fn keys_of_subtasks_that_have_not_used_the_state_are_none() {
    let mut job = Running::start(3);
    job.pay(&[("solo", 3)]);
    let keys: Vec<String> =
        futures::executor::block_on(job.client.keys(("totals", "total"), 10, None)).unwrap();
    assert_eq!(keys, vec!["solo".to_string()]);
    job.stop();
}

/// Where the checkpoints of [`committed_reads_the_latest_completed_checkpoint`] go.
#[derive(Clone, Copy, PartialEq)]
enum Storage {
    Disk,
    /// In-memory checkpoint storage (no checkpoint directory).
    Memory,
}

fn committed_reads_the_latest_completed_checkpoint(rocksdb: bool, storage: Storage) {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let local = dir.path().join("local");
    let mut job = Running::start_with(2, |env| {
        if storage == Storage::Disk {
            env.set_checkpoint_dir(checkpoints.to_str().unwrap());
        }
        env.enable_checkpointing(Duration::from_secs(3600));
        if rocksdb {
            #[cfg(feature = "rocksdb")]
            env.set_state_backend(
                weir::state::RocksDbBackend::new().with_local_dirs([local.clone()]),
            );
        }
        let _ = &local;
    });
    let at = |job: &Running, consistency: Consistency| {
        futures::executor::block_on(job.client.query::<u64, String>(
            ("totals", "total"),
            &"ann".to_string(),
            consistency,
        ))
    };
    job.pay(&[("ann", 5), ("bob", 1)]);
    let err = at(&job, Consistency::Committed).unwrap_err();
    assert!(matches!(err, QueryError::NotYet { .. }), "{err}");

    let first = futures::executor::block_on(job.client.trigger_checkpoint())
        .unwrap()
        .id;
    assert_eq!(at(&job, Consistency::Committed), Ok(Some(5)));
    job.pay(&[("ann", 2)]);
    // Live sees the write; committed does not until the next checkpoint.
    assert_eq!(at(&job, Consistency::Live), Ok(Some(7)));
    assert_eq!(at(&job, Consistency::Committed), Ok(Some(5)));
    let err = at(&job, Consistency::AtLeast(first + 1)).unwrap_err();
    assert!(matches!(err, QueryError::NotYet { .. }), "{err}");

    let stats = futures::executor::block_on(job.client.trigger_checkpoint()).unwrap();
    let second = stats.id;
    assert!(second > first);
    let location = stats.location.clone().expect("a checkpoint's location");
    if storage == Storage::Disk {
        // What a committed query answers is what reading the checkpoint says.
        let mut read: Vec<(String, u64)> =
            weir::inspect::read_keyed_state(std::path::Path::new(&location), "totals", "total")
                .unwrap();
        read.sort();
        assert_eq!(read, vec![("ann".to_string(), 7), ("bob".to_string(), 1)]);
    } else {
        assert!(location.starts_with("memory:"), "{location}");
    }
    assert_eq!(at(&job, Consistency::Committed), Ok(Some(7)));
    assert_eq!(at(&job, Consistency::AtLeast(second)), Ok(Some(7)));
    let bob = futures::executor::block_on(job.client.query::<u64, String>(
        ("totals", "total"),
        &"bob".to_string(),
        Consistency::Committed,
    ));
    assert_eq!(bob, Ok(Some(1)));
    let nobody = futures::executor::block_on(job.client.query::<u64, String>(
        ("totals", "total"),
        &"nobody".to_string(),
        Consistency::Committed,
    ));
    assert_eq!(nobody, Ok(None));
    let lists = futures::executor::block_on(job.client.query::<Vec<u64>, String>(
        ("totals", "amounts"),
        &"ann".to_string(),
        Consistency::Committed,
    ));
    assert_eq!(lists, Ok(Some(vec![5, 2])));
    let err = futures::executor::block_on(job.client.query::<u64, String>(
        ("totals", "nope"),
        &"ann".to_string(),
        Consistency::Committed,
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("amounts, per-amount, total"),
        "{err}"
    );
    job.stop();
}

/// `Committed` answers from the latest completed checkpoint: a write after
/// it is invisible until the next one completes; `AtLeast(n)` waits for n.
#[test]
fn committed_queries_read_the_latest_completed_checkpoint() {
    committed_reads_the_latest_completed_checkpoint(false, Storage::Disk);
}

/// The same with in-memory checkpoint storage (checkpointing without a
/// checkpoint directory): committed queries read the snapshot it keeps.
#[test]
fn committed_queries_read_in_memory_checkpoints() {
    committed_reads_the_latest_completed_checkpoint(false, Storage::Memory);
}

/// The same on RocksDB, whose checkpoints are incremental.
#[cfg(feature = "rocksdb")]
#[test]
fn committed_queries_read_incremental_rocksdb_checkpoints() {
    committed_reads_the_latest_completed_checkpoint(true, Storage::Disk);
}

/// RocksDB with in-memory checkpoint storage (full snapshots).
#[cfg(feature = "rocksdb")]
#[test]
fn committed_queries_read_in_memory_rocksdb_checkpoints() {
    committed_reads_the_latest_completed_checkpoint(true, Storage::Memory);
}

/// Emits transfers between two accounts, debit and credit in one batch
/// (so a checkpoint barrier never falls between them), until stopped.
#[derive(Clone)]
struct Transfers {
    sent: u64,
}

impl Lifecycle for Transfers {}

impl Source<(String, i64)> for Transfers {
    fn parallelism(&self) -> Option<usize> {
        Some(1)
    }

    fn poll_next(
        &mut self,
        out: &mut Vec<(String, i64)>,
        _max: usize,
    ) -> Result<SourceStatus, UserError> {
        for _ in 0..8 {
            self.sent += 1;
            let amount = (self.sent % 7 + 1) as i64;
            let (from, to) = if self.sent.is_multiple_of(2) {
                ("alice", "bob")
            } else {
                ("bob", "alice")
            };
            out.push((from.to_string(), -amount));
            out.push((to.to_string(), amount));
        }
        std::thread::sleep(Duration::from_micros(200));
        Ok(SourceStatus::More)
    }
}

/// A balance per account, starting at 1 000.
#[derive(Clone)]
struct Balances {
    balance: weir::state::ValueStateWithDefault<i64>,
}

impl Lifecycle for Balances {}

impl KeyedProcessFunction<String, (String, i64), i64> for Balances {
    fn process_element(
        &mut self,
        (_, delta): (String, i64),
        ctx: &mut KeyedContext<String>,
        out: &mut Collector<i64>,
    ) -> Result<(), UserError> {
        let balance = self.balance.modify(ctx, |b| {
            *b += delta;
            *b
        })?;
        out.collect(balance);
        Ok(())
    }
}

/// Transfers between two accounts in different subtasks keep the sum of
/// their balances at 2 000. `Committed` reads both from one checkpoint, in
/// which every transfer is whole, so it never sees another sum (`Live` may:
/// a debit processed before its credit).
#[test]
fn committed_queries_never_see_a_transfer_half_done() {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamEnv::with_parallelism(2);
    env.set_checkpoint_dir(dir.path().to_str().unwrap());
    env.enable_checkpointing(Duration::from_secs(3600));
    env.add_source(Transfers { sent: 0 })
        .uid("transfers")
        .key_by(|t: &(String, i64)| t.0.clone())
        .process(Balances {
            balance: ValueStateDescriptor::new("balance")
                .queryable("balance")
                .with_default(1_000),
        })
        .uid("balances")
        .discard();
    let mut client = futures::executor::block_on(env.start("transfers")).unwrap();
    let balance = |client: &JobClient, who: &str| {
        futures::executor::block_on(client.query::<i64, String>(
            ("balances", "balance"),
            &who.to_string(),
            Consistency::Committed,
        ))
        .unwrap()
        .unwrap_or(1_000)
    };
    // Queryable once used: wait for the first transfers.
    let deadline = Instant::now() + Duration::from_secs(30);
    while futures::executor::block_on(client.keys::<String>(("balances", "balance"), 2, None))
        .map_or(true, |keys| keys.len() < 2)
    {
        assert!(Instant::now() < deadline, "no transfer in 30 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        // Checkpoints only when triggered: both reads see the same one.
        futures::executor::block_on(client.trigger_checkpoint()).unwrap();
        let (alice, bob) = (balance(&client, "alice"), balance(&client, "bob"));
        assert_eq!(alice + bob, 2_000, "alice {alice}, bob {bob}");
        seen.insert(alice);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(seen.len() > 1, "the balances never moved: {seen:?}");
    client.cancel();
    let _ = futures::executor::block_on(client.wait());
}

/// While the job restarts after a failure, a live query answers
/// `Unavailable` with a retry hint, and a committed one still answers, from
/// the checkpoint the restart restores.
#[test]
fn during_a_restart_live_queries_are_unavailable_and_committed_ones_answer() {
    during_a_restart(Storage::Disk);
}

/// The same with in-memory checkpoint storage.
#[test]
fn during_a_restart_committed_queries_answer_from_in_memory_checkpoints() {
    during_a_restart(Storage::Memory);
}

fn during_a_restart(storage: Storage) {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(weir::testing::Faults::new());
    // The third payment reaching a subtask of the operator fails it.
    faults.fail_at_record("totals", 3, None);
    let mut job = Running::start_with(2, |env| {
        if storage == Storage::Disk {
            env.set_checkpoint_dir(dir.path().to_str().unwrap());
        }
        env.enable_checkpointing(Duration::from_secs(3600));
        env.set_restart_strategy(weir::RestartStrategy::FixedDelay {
            attempts: 1,
            delay: Duration::from_secs(3),
        });
        env.set_faults(faults.clone());
    });
    // The fault counts per subtask: all of ann's payments reach one.
    job.pay(&[("ann", 2), ("ann", 3)]);
    futures::executor::block_on(job.client.trigger_checkpoint()).unwrap();
    job.queue.lock().unwrap().push_back(("ann".to_string(), 9));
    let deadline = Instant::now() + Duration::from_secs(10);
    while job.client.status() != weir::JobStatus::Restarting {
        assert!(
            Instant::now() < deadline,
            "no restart in 30 s: {:?}, fired {:?}, processed {}",
            job.client.status(),
            faults.fired(),
            job.processed.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let ann = |consistency| {
        futures::executor::block_on(job.client.query::<u64, String>(
            ("totals", "total"),
            &"ann".to_string(),
            consistency,
        ))
    };
    let live = ann(Consistency::Live).unwrap_err();
    assert!(
        matches!(live, QueryError::Unavailable { retry: true, .. }),
        "{live}"
    );
    assert_eq!(ann(Consistency::Committed), Ok(Some(5)));
    job.stop();
}

/// A query by name alone finds the operator that has the queryable state,
/// live and committed; a name no operator has lists those there are.
#[test]
fn a_query_by_name_finds_its_operator() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = Running::start_with(2, |env| {
        env.set_checkpoint_dir(dir.path().to_str().unwrap());
        env.enable_checkpointing(Duration::from_secs(3600));
    });
    job.pay(&[("ann", 5), ("bob", 2)]);
    let by_name = |name: &str, who: &str, consistency| {
        futures::executor::block_on(job.client.query::<u64, String>(
            name,
            &who.to_string(),
            consistency,
        ))
    };
    assert_eq!(by_name("total", "ann", Consistency::Live), Ok(Some(5)));
    assert_eq!(by_name("total", "bob", Consistency::Live), Ok(Some(2)));
    assert_eq!(by_name("total", "nobody", Consistency::Live), Ok(None));
    let err = by_name("nope", "ann", Consistency::Live).unwrap_err();
    assert!(matches!(err, QueryError::UnknownName { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("totals/amounts, totals/per-amount, totals/total"),
        "{err}"
    );
    futures::executor::block_on(job.client.trigger_checkpoint()).unwrap();
    assert_eq!(by_name("total", "ann", Consistency::Committed), Ok(Some(5)));
    let err = by_name("nope", "ann", Consistency::Committed).unwrap_err();
    assert!(matches!(err, QueryError::UnknownName { .. }), "{err}");
    let keys: Vec<String> =
        futures::executor::block_on(job.client.keys("total", 10, None)).unwrap();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, vec!["ann".to_string(), "bob".to_string()]);
    job.stop();
}

/// Two states queryable under one name: the job fails at once (no restart
/// can fix it), naming both.
#[derive(Clone)]
struct TwoUnderOneName {
    a: ValueStateDescriptor<u64>,
    b: ValueStateDescriptor<u64>,
}

impl Lifecycle for TwoUnderOneName {}

impl KeyedProcessFunction<String, Payment, u64> for TwoUnderOneName {
    fn process_element(
        &mut self,
        (_, amount): Payment,
        ctx: &mut KeyedContext<String>,
        _out: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        ctx.state(&self.a)?.update(amount);
        ctx.state(&self.b)?.update(amount);
        Ok(())
    }
}

#[test]
fn two_states_queryable_under_one_name_fail_the_job_once() {
    let env = StreamEnv::with_parallelism(1);
    env.set_restart_strategy(weir::RestartStrategy::FixedDelay {
        attempts: 5,
        delay: Duration::ZERO,
    });
    env.from_collection(vec![("ann".to_string(), 1_u64)])
        .key_by(|p: &Payment| p.0.clone())
        .process(TwoUnderOneName {
            a: ValueStateDescriptor::new("a").queryable("x"),
            b: ValueStateDescriptor::new("b").queryable("x"),
        })
        .discard();
    let error = futures::executor::block_on(async {
        let mut client = env.start("two-under-one").await.unwrap();
        let error = client.wait().await.unwrap_err();
        assert_eq!(client.restarts(), 0, "no restart can fix a declaration");
        error
    });
    assert!(!error.is_retryable());
    let err = error.to_string();
    assert!(
        err.contains("states `a` and `b` are both queryable as `x`"),
        "{err}"
    );
}
