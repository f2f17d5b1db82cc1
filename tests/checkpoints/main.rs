//! Checkpoints end to end: what a checkpoint holds, when it completes or
//! fails, what it leaves on disk, and the format it is written in.
//!
//! Every test is deterministic: no assertion depends on timing. Barrier
//! placement is controlled by sources that emit fixed *phases* of records
//! ([`Feed`](kit::Feed)): phase 0 at once, phase `i` only after the source
//! snapshotted `i` times *and* the test opened the gate to `i`. A checkpoint
//! triggered with `JobClient::trigger_checkpoint` once a phase is out
//! therefore sees exactly the records of the phases before it. Each source
//! also writes the number of records it emitted before its barrier as raw
//! operator state, so any checkpoint (also a periodic one, whose barrier
//! position is not known in advance) says which records must be in it.
//!
//! State is read back from the files with `FsStorage`, decoded with
//! `SubtaskState::decode`, and keyed state is inspected by restoring the
//! keyed operator's snapshot into an `OperatorHarness` and *probing* each
//! key ([`Tally`](kit::Tally) answers a probe record with the ids it holds for
//! the key): see [`reading`].
//!
//! What is checked, one module each:
//! - [`content`]: what an aligned, unaligned or at-least-once checkpoint
//!   holds, for one source, two sources with a held-up channel, and a
//!   keyed/broadcast two-input operator;
//! - [`concurrent`]: periodic checkpoints, up to 3 at once, each consistent
//!   with the source's position, and checkpoints overtaken (subsumed) by a
//!   newer barrier;
//! - [`final_checkpoint`]: the checkpoint a bounded job ends with;
//! - [`failures`]: declined and expired checkpoints, broken checkpoint
//!   directories and the in-memory size limit;
//! - [`storage`]: corrupted files, checkpoints without `_metadata`, retention;
//! - [`statistics`]: what `CheckpointStats` reports;
//! - [`format`]: the pinned bytes of `_metadata` and of state files.
//!
//! [`kit`] holds the sources, operators, sinks and job plumbing they share.

mod concurrent;
mod content;
mod failures;
mod final_checkpoint;
mod format;
mod kit;
mod reading;
mod statistics;
mod storage;
