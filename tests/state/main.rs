//! Managed state: keyed state, timers and operator state, as a function sees
//! them, and how they survive a snapshot and a change of parallelism.
//!
//! Most tests drive one operator instance by hand with
//! [`OperatorHarness`](weir::testing::OperatorHarness), so that every record,
//! watermark and processing time is given in a known order and the tests are
//! deterministic. One module per concept:
//! - [`keyed_state`]: keyed state semantics, a script of commands and
//!   expected replies per kind of state;
//! - [`declarations`]: mismatched declarations, shared names, and records of
//!   a key group the subtask does not own;
//! - [`snapshots`]: rescaling keyed state and timers from 1 to 3 to 2
//!   subtasks, and snapshots as of their synchronous part (copy-on-write);
//! - [`operator_state`]: operator state and its redistribution;
//! - [`timers`]: event-time and processing-time timers;
//! - [`jobs`]: whole jobs (rolling aggregations, keyed functions, timers by
//!   the wall clock);
//! - [`kit`]: what they share (the command harness, `Count`, ...).
//!
//! The keyed-state tests are one suite run for every backend
//! ([`every_backend!`]): the heap, and with the feature `rocksdb` RocksDB with
//! full snapshots and RocksDB with incremental snapshots (whose harness
//! snapshots put their SST files in a shared directory, so that restores and
//! rescaling go through incremental handles).

mod declarations;
mod jobs;
mod keyed_state;
mod kit;
mod operator_state;
mod snapshots;
mod timers;

/// Runs each keyed-state test once per backend, in a module per backend.
macro_rules! every_backend {
    ($($module:ident::$test:ident),* $(,)?) => {
        mod heap {
            $( #[test] fn $test() { super::$module::$test() } )*
        }

        #[cfg(feature = "rocksdb")]
        mod rocksdb_full {
            $( #[test] fn $test() { super::with_rocksdb(false, super::$module::$test) } )*
        }

        #[cfg(feature = "rocksdb")]
        mod rocksdb_incremental {
            $( #[test] fn $test() { super::with_rocksdb(true, super::$module::$test) } )*
        }

        #[cfg(feature = "rocksdb")]
        mod rocksdb_uncached {
            $( #[test] fn $test() { super::with_rocksdb_entry_cache(0, super::$module::$test) } )*
        }

        #[cfg(feature = "rocksdb")]
        mod rocksdb_evicting {
            $( #[test] fn $test() { super::with_rocksdb_entry_cache(300, super::$module::$test) } )*
        }
    };
}

/// Runs `test` with a RocksDB backend in a temporary directory (small caches,
/// so that state goes to disk), with incremental or full harness snapshots.
#[cfg(feature = "rocksdb")]
fn with_rocksdb(incremental: bool, test: fn()) {
    with_rocksdb_backend(incremental, |backend| backend, test)
}

/// Runs `test` with incremental RocksDB snapshots and an entry cache of
/// `bytes` (0: none, every access goes to the database; a few hundred: an
/// eviction every few writes).
#[cfg(feature = "rocksdb")]
fn with_rocksdb_entry_cache(bytes: usize, test: fn()) {
    with_rocksdb_backend(true, |backend| backend.with_entry_cache_bytes(bytes), test)
}

#[cfg(feature = "rocksdb")]
fn with_rocksdb_backend(
    incremental: bool,
    configure: impl FnOnce(weir::state::RocksDbBackend) -> weir::state::RocksDbBackend,
    test: fn(),
) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let backend = weir::state::RocksDbBackend::new()
        .with_local_dirs([dir.path().join("local-a"), dir.path().join("local-b")])
        .with_block_cache_bytes(4 << 20)
        .with_write_buffer_bytes(4 << 20);
    let shared = dir.path().join("shared");
    weir::testing::with_state_backend(
        configure(backend),
        incremental.then_some(shared.as_path()),
        test,
    );
}

every_backend!(
    keyed_state::value_state_reads_updates_modifies_and_clears,
    keyed_state::a_value_state_default_is_read_modified_and_restored_by_clear,
    keyed_state::list_state_appends_replaces_and_clears,
    keyed_state::map_state_puts_gets_removes_and_lists_its_entries,
    keyed_state::reducing_state_folds_in_order_and_clears,
    keyed_state::aggregating_state_accumulates_and_reads_a_result,
    keyed_state::every_key_has_its_own_state,
    declarations::a_name_declared_with_another_kind_or_type_is_a_mismatch_naming_the_state,
    declarations::restored_state_opened_with_another_type_is_a_mismatch_naming_the_state,
    declarations::two_descriptors_with_the_same_name_and_type_share_the_state,
    declarations::a_record_of_a_key_group_the_subtask_does_not_own_is_refused,
    snapshots::keyed_state_and_timers_continue_across_parallelism_1_3_2,
    snapshots::a_snapshot_restored_at_the_same_parallelism_keeps_every_key,
    snapshots::a_snapshot_holds_the_state_of_its_synchronous_part_whatever_changes_after,
    snapshots::overlapping_snapshots_each_restore_the_state_of_their_synchronous_part,
    timers::timers_fire_by_timestamp_then_registration_order_once_per_key_and_time,
    timers::event_time_timers_fire_only_when_the_watermark_reaches_them,
    timers::deleted_timers_do_not_fire,
    timers::processing_time_timers_fire_by_the_harness_clock,
    timers::on_timer_sees_its_key_domain_timestamp_watermark_and_state,
    timers::records_see_their_timestamp_and_the_watermark_and_keep_the_timestamp_on_output,
    timers::a_timer_registered_in_on_timer_at_or_before_the_watermark_fires_in_the_same_advance,
    timers::timers_survive_a_snapshot_and_restore,
    jobs::rolling_sum_min_max_and_reduce_end_with_the_value_of_every_key,
    jobs::rolling_aggregate_ends_with_the_result_of_every_key,
    jobs::a_keyed_process_function_counts_every_key_in_a_job,
    jobs::a_keyed_function_counts_right_when_its_state_outgrows_the_caches,
    jobs::a_keyed_function_with_its_own_max_parallelism_sees_every_key_at_its_owner,
);
