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
//! - [`ttl`]: state time-to-live: expiry, update types, visibility, event
//!   time, bad configurations;
//! - [`ttl_cleanup`]: time-to-live cleanups (timers, incremental, guaranteed
//!   erasure) and their metrics;
//! - [`ttl_restore`]: time-to-live across snapshots, restores, rescaling,
//!   switching it on, off or changing it, and downtime policies;
//! - [`schema`]: state schema evolution at a restore: compatible changes,
//!   migrations, incompatible changes and downgrades;
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
mod schema;
mod snapshots;
mod timers;
mod ttl;
mod ttl_cleanup;
mod ttl_restore;

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
    schema::a_field_with_a_default_reads_as_is_and_a_later_snapshot_records_the_new_version,
    schema::migrations_chain_from_any_older_version_across_a_change_of_parallelism,
    schema::migrations_keep_the_expiries_of_a_state_with_a_time_to_live,
    schema::an_incompatible_change_fails_naming_the_state_the_field_and_what_to_do,
    schema::a_snapshot_of_a_newer_version_is_refused_naming_both_versions,
    schema::a_migration_from_the_current_version_is_refused,
    schema::a_snapshot_taken_before_every_key_was_read_holds_every_value_migrated,
    schema::many_keys_migrate_whether_one_group_or_several_at_a_time,
);

/// The time-to-live suite on every backend, apart (`cargo test --test state ttl`).
mod ttl_suite {
    use super::{ttl, ttl_cleanup, ttl_restore};
    #[cfg(feature = "rocksdb")]
    use super::{with_rocksdb, with_rocksdb_entry_cache};

    every_backend!(
        ttl::every_kind_of_state_expires_exactly_ttl_after_its_write,
        ttl::a_read_restarts_the_clock_only_with_on_read_and_write,
        ttl::a_write_restarts_the_clock_of_what_it_writes,
        ttl::an_expired_entry_is_returned_once_if_visible_until_cleaned_up,
        ttl::never_return_expired_hides_an_expired_entry_and_removes_it_on_read,
        ttl::list_elements_expire_one_by_one_and_the_survivors_keep_their_order,
        ttl::map_entries_expire_one_by_one,
        ttl::event_time_entries_are_stamped_with_the_record_timestamp_and_expire_by_the_watermark,
        ttl::in_on_timer_an_event_time_entry_is_stamped_with_the_timer_time,
        ttl_cleanup::cleanup_timers_remove_each_entry_at_its_expiry_without_an_access,
        ttl_cleanup::cleanup_within_alone_removes_entries_of_keys_never_seen_again,
        ttl_cleanup::cleanup_within_removes_expired_list_elements_next_to_live_ones,
        ttl_cleanup::ttl_metrics_count_expired_entries_per_state_and_way_of_removal,
        ttl::bad_ttl_configurations_are_errors_naming_the_state,
        ttl::operator_and_broadcast_state_refuse_a_ttl,
        ttl::one_state_opened_with_two_different_times_to_live_is_an_error_naming_it,
        ttl_cleanup::an_event_time_entry_stamped_earlier_than_the_last_moves_its_key_cleanup_timer_earlier,
        ttl_restore::paused_cleanup_timers_wake_the_operator_at_their_expiry_in_processing_time,
        ttl_restore::event_time_ttl_switched_on_at_a_restore_stamps_entries_with_the_first_event_time,
        ttl_restore::event_time_entries_expired_at_the_snapshot_stay_expired_after_the_restore,
        ttl_restore::switching_off_the_ttl_of_a_paused_state_keeps_what_was_live_on_its_clock,
        ttl_restore::a_savepoint_after_expiry_holds_no_expired_entry,
        ttl_restore::a_savepoint_of_restored_state_no_record_touched_holds_no_expired_entry,
        ttl_restore::a_restored_entry_keeps_its_absolute_expiry,
        ttl_restore::ttl_state_keeps_its_expiries_across_parallelism_1_3_2,
        ttl_restore::switching_ttl_on_at_a_restore_stamps_restored_entries_with_the_restore_time,
        ttl_restore::switching_ttl_off_at_a_restore_keeps_live_values_and_drops_expired_ones,
        ttl_restore::changing_the_ttl_at_a_restore_keeps_the_stored_expiries,
        ttl_restore::with_the_clock_continuing_a_long_downtime_expires_everything,
        ttl_restore::paused_during_downtime_entries_are_shifted_by_the_downtime,
    );
}
