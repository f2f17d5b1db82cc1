//! Operator snapshots, opaque to the runtime, and how they are redistributed
//! when a job is restored at another parallelism.
//!
//! The runtime never decodes state. It only knows how each part moves:
//! - **keyed** state comes as bytes per key group; a new subtask takes the key
//!   groups of its range, from whichever old subtasks held them;
//! - **keyed state handles** (incremental snapshots of a RocksDB backend) cover
//!   a key-group range each; a new subtask gets every handle whose range
//!   overlaps its own and keeps only its key groups when it restores;
//! - **operator list** state is a list of elements per state name; with
//!   [`Redistribution::EvenSplit`] the elements of all old subtasks are dealt
//!   out in contiguous, even shares, with [`Redistribution::Union`] every new
//!   subtask gets all of them;
//! - **broadcast** state is the same on every subtask; each new subtask gets a
//!   copy (from old subtask `i % old_parallelism`);
//! - **raw** operator bytes stay with the subtask index that wrote them (a
//!   subtask index that did not exist before starts without).
//!
//! ```
//! use weir_actors::snapshot::{redistribute, ListStateSnapshot, OperatorSnapshot, Redistribution};
//! let old = vec![
//!     OperatorSnapshot { lists: vec![ListStateSnapshot::new("buf", Redistribution::EvenSplit, vec![vec![1], vec![2], vec![3]])], ..Default::default() },
//!     OperatorSnapshot { lists: vec![ListStateSnapshot::new("buf", Redistribution::EvenSplit, vec![vec![4]])], ..Default::default() },
//! ];
//! let new = redistribute(&old, 3, 128);
//! let shares: Vec<usize> = new.iter().map(|s| s.lists[0].elements.len()).collect();
//! assert_eq!(shares, vec![2, 1, 1]);
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::key_groups::KeyGroupRange;

/// How an operator list state is spread over subtasks on restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Redistribution {
    /// Each new subtask gets an even, contiguous share of all elements.
    EvenSplit,
    /// Each new subtask gets every element.
    Union,
}

/// One operator list state of one subtask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListStateSnapshot {
    /// The state's name.
    pub name: String,
    /// How it is redistributed.
    pub mode: Redistribution,
    /// The elements, each serialised on its own.
    pub elements: Vec<Vec<u8>>,
}

impl ListStateSnapshot {
    /// A list state snapshot.
    pub fn new(name: &str, mode: Redistribution, elements: Vec<Vec<u8>>) -> Self {
        ListStateSnapshot {
            name: name.to_string(),
            mode,
            elements,
        }
    }
}

/// A file in the checkpoint storage's `shared/` directory that an
/// incremental snapshot refers to (the runtime counts references to it across
/// retained checkpoints and deletes it when none is left).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedFile {
    /// The file's name within the shared directory.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The CRC-32 of its contents, checked on restore.
    pub crc32: u32,
}

/// Keyed state of a key-group range that is not stored per key group: an
/// incremental snapshot made of files in the storage's shared directory plus
/// opaque bytes of the backend that wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedStateHandle {
    /// The first key group covered.
    pub start: usize,
    /// One past the last key group covered.
    pub end: usize,
    /// Which backend wrote it (`"rocksdb"`).
    pub backend: String,
    /// The shared directory the files are in (absolute).
    pub shared_dir: std::path::PathBuf,
    /// The shared files it refers to.
    pub shared: Vec<SharedFile>,
    /// The backend's own bytes (small files, metadata).
    pub data: Vec<u8>,
}

impl KeyedStateHandle {
    /// Whether the handle holds any key group of `[start, end)`.
    pub fn overlaps(&self, start: usize, end: usize) -> bool {
        self.start < end && start < self.end
    }
}

/// Everything one operator subtask snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSnapshot {
    /// Keyed state (with timers), serialised per key group.
    pub keyed: BTreeMap<usize, Vec<u8>>,
    /// Keyed state held as handles over key-group ranges (incremental
    /// snapshots). Not written when empty, so that snapshots without handles
    /// keep the format they had before handles existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keyed_handles: Vec<KeyedStateHandle>,
    /// What describes the operator's state as a whole rather than a key
    /// group or an element (the schemas of its states), by name: written by
    /// every subtask, and on a change of parallelism given to every new
    /// subtask (the union over the old subtasks; the first of a name wins).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, Vec<u8>>,
    /// Operator list states.
    pub lists: Vec<ListStateSnapshot>,
    /// Broadcast states by name.
    pub broadcast: BTreeMap<String, Vec<u8>>,
    /// The operator's own bytes.
    pub raw: Option<Vec<u8>>,
}

impl OperatorSnapshot {
    /// Whether the snapshot holds nothing.
    pub fn is_empty(&self) -> bool {
        self.keyed.is_empty()
            && self.keyed_handles.is_empty()
            && self.meta.is_empty()
            && self.lists.is_empty()
            && self.broadcast.is_empty()
            && self.raw.is_none()
    }

    /// Whether the snapshot can go into a savepoint: a savepoint must stand
    /// alone, so it may not refer to shared files (they belong to the
    /// checkpoint storage and are deleted with the checkpoints that use them).
    /// The error names operator `uid` and the backend that wrote the handles.
    pub fn check_self_contained(&self, uid: &str) -> Result<(), String> {
        match self.keyed_handles.first() {
            None => Ok(()),
            Some(handle) => Err(format!(
                "operator `{uid}` wrote keyed state handles (shared files of the {:?} backend) \
                 into a savepoint, which must be self-contained: its \
                 StreamOperator::snapshot_savepoint must write canonical state",
                handle.backend
            )),
        }
    }

    /// Total bytes of state.
    pub fn size(&self) -> usize {
        self.keyed.values().map(Vec::len).sum::<usize>()
            + self
                .keyed_handles
                .iter()
                .map(|h| h.data.len())
                .sum::<usize>()
            + self
                .lists
                .iter()
                .flat_map(|l| &l.elements)
                .map(Vec::len)
                .sum::<usize>()
            + self.broadcast.values().map(Vec::len).sum::<usize>()
            + self.meta.values().map(Vec::len).sum::<usize>()
            + self.raw.as_ref().map_or(0, Vec::len)
    }
}

/// The snapshots for `new_parallelism` subtasks made from those of the old ones.
pub fn redistribute(
    old: &[OperatorSnapshot],
    new_parallelism: usize,
    max_parallelism: usize,
) -> Vec<OperatorSnapshot> {
    let mut new: Vec<OperatorSnapshot> = (0..new_parallelism)
        .map(|_| OperatorSnapshot::default())
        .collect();

    let mut keyed: BTreeMap<usize, &Vec<u8>> = BTreeMap::new();
    for snapshot in old {
        keyed.extend(snapshot.keyed.iter().map(|(g, b)| (*g, b)));
    }
    for (index, target) in new.iter_mut().enumerate() {
        let KeyGroupRange { start, end } =
            KeyGroupRange::of_subtask(index, max_parallelism, new_parallelism);
        target.keyed = keyed
            .range(start..end)
            .map(|(g, b)| (*g, (*b).clone()))
            .collect();
        target.keyed_handles = old
            .iter()
            .flat_map(|s| &s.keyed_handles)
            .filter(|h| h.overlaps(start, end))
            .cloned()
            .collect();
        for (name, bytes) in old.iter().flat_map(|s| &s.meta) {
            target
                .meta
                .entry(name.clone())
                .or_insert_with(|| bytes.clone());
        }
    }

    let mut names: Vec<(&str, Redistribution)> = Vec::new();
    for list in old.iter().flat_map(|s| &s.lists) {
        if !names.iter().any(|(n, _)| *n == list.name) {
            names.push((&list.name, list.mode));
        }
    }
    for (name, mode) in names {
        let all: Vec<&Vec<u8>> = old
            .iter()
            .flat_map(|s| s.lists.iter().filter(|l| l.name == name))
            .flat_map(|l| &l.elements)
            .collect();
        let (base, extra) = (all.len() / new_parallelism, all.len() % new_parallelism);
        let mut next = 0;
        for (index, target) in new.iter_mut().enumerate() {
            let elements: Vec<Vec<u8>> = match mode {
                Redistribution::Union => all.iter().map(|e| (*e).clone()).collect(),
                Redistribution::EvenSplit => {
                    let share = base + usize::from(index < extra);
                    let slice = all[next..next + share]
                        .iter()
                        .map(|e| (*e).clone())
                        .collect();
                    next += share;
                    slice
                }
            };
            target.lists.push(ListStateSnapshot {
                name: name.to_string(),
                mode,
                elements,
            });
        }
    }

    if !old.is_empty() {
        for (index, target) in new.iter_mut().enumerate() {
            target.broadcast = old[index % old.len()].broadcast.clone();
            target.raw = old.get(index).and_then(|s| s.raw.clone());
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(groups: &[usize]) -> OperatorSnapshot {
        OperatorSnapshot {
            keyed: groups.iter().map(|&g| (g, vec![g as u8])).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn meta_goes_to_every_subtask_with_keyed_state() {
        let with_meta = |groups: &[usize], meta: &[(&str, u8)]| OperatorSnapshot {
            meta: meta
                .iter()
                .map(|(n, b)| (n.to_string(), vec![*b]))
                .collect(),
            ..keyed(groups)
        };
        let old = [
            with_meta(&[0, 1, 2, 3], &[("a", 1)]),
            with_meta(&[4, 5, 6, 7], &[("a", 2), ("b", 3)]),
        ];
        let new = redistribute(&old, 4, 8);
        for target in &new {
            assert_eq!(target.meta.len(), 2, "{target:?}");
            assert_eq!(target.meta["a"], vec![1]);
        }
        // Also a subtask without keyed state (its operator state has some).
        let new = redistribute(&[with_meta(&[0], &[("a", 1)])], 2, 8);
        assert_eq!(new[1].meta["a"], vec![1]);
    }

    #[test]
    fn a_snapshot_with_shared_files_cannot_go_into_a_savepoint() {
        assert_eq!(keyed(&[1, 2]).check_self_contained("counts"), Ok(()));
        let incremental = OperatorSnapshot {
            keyed_handles: vec![KeyedStateHandle {
                start: 0,
                end: 4,
                backend: "rocksdb".into(),
                shared_dir: "/ck/shared".into(),
                shared: Vec::new(),
                data: Vec::new(),
            }],
            ..Default::default()
        };
        let error = incremental.check_self_contained("counts").unwrap_err();
        assert!(
            error.contains("`counts`")
                && error.contains("\"rocksdb\"")
                && error.contains("savepoint"),
            "{error}"
        );
    }

    #[test]
    fn key_groups_follow_the_new_ranges() {
        let old = vec![keyed(&[0, 1, 2, 3]), keyed(&[4, 5, 6, 7])];
        let new = redistribute(&old, 3, 8);
        let groups: Vec<Vec<usize>> = new
            .iter()
            .map(|s| s.keyed.keys().copied().collect())
            .collect();
        assert_eq!(groups, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]);
        assert_eq!(new[1].keyed[&4], vec![4]);
    }

    #[test]
    fn keyed_handles_go_to_every_subtask_whose_range_they_overlap() {
        let handle = |start, end| KeyedStateHandle {
            start,
            end,
            backend: "rocksdb".into(),
            shared_dir: "/ck/shared".into(),
            shared: Vec::new(),
            data: vec![start as u8],
        };
        let old = vec![
            OperatorSnapshot {
                keyed_handles: vec![handle(0, 4)],
                ..Default::default()
            },
            OperatorSnapshot {
                keyed_handles: vec![handle(4, 8)],
                ..Default::default()
            },
        ];
        let new = redistribute(&old, 3, 8);
        let starts: Vec<Vec<usize>> = new
            .iter()
            .map(|s| s.keyed_handles.iter().map(|h| h.start).collect())
            .collect();
        assert_eq!(starts, vec![vec![0], vec![0, 4], vec![4]]);
    }

    #[test]
    fn even_split_deals_every_element_once_and_union_gives_all_to_everyone() {
        let list = |mode, items: &[u8]| {
            ListStateSnapshot::new("l", mode, items.iter().map(|&i| vec![i]).collect())
        };
        for (old_p, new_p) in [(1, 3), (3, 2), (2, 2), (4, 1), (2, 5)] {
            let old: Vec<OperatorSnapshot> = (0..old_p)
                .map(|i| OperatorSnapshot {
                    lists: vec![
                        list(
                            Redistribution::EvenSplit,
                            &[i as u8 * 10, i as u8 * 10 + 1, i as u8 * 10 + 2],
                        ),
                        ListStateSnapshot::new("u", Redistribution::Union, vec![vec![i as u8]]),
                    ],
                    ..Default::default()
                })
                .collect();
            let new = redistribute(&old, new_p, 128);
            let mut dealt: Vec<Vec<u8>> = new
                .iter()
                .flat_map(|s| s.lists[0].elements.clone())
                .collect();
            let mut all: Vec<Vec<u8>> = old
                .iter()
                .flat_map(|s| s.lists[0].elements.clone())
                .collect();
            dealt.sort();
            all.sort();
            assert_eq!(dealt, all, "{old_p} -> {new_p}");
            let sizes: Vec<usize> = new.iter().map(|s| s.lists[0].elements.len()).collect();
            assert!(
                sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
                "{sizes:?}"
            );
            for s in &new {
                assert_eq!(s.lists[1].elements.len(), old_p, "union to everyone");
            }
        }
    }

    #[test]
    fn broadcast_is_copied_to_every_subtask_and_raw_stays_by_index() {
        let old: Vec<OperatorSnapshot> = (0..2u8)
            .map(|i| OperatorSnapshot {
                broadcast: BTreeMap::from([("rules".to_string(), vec![7])]),
                raw: Some(vec![i]),
                ..Default::default()
            })
            .collect();
        let new = redistribute(&old, 3, 128);
        assert!(new.iter().all(|s| s.broadcast["rules"] == vec![7]));
        assert_eq!(
            new.iter().map(|s| s.raw.clone()).collect::<Vec<_>>(),
            vec![Some(vec![0]), Some(vec![1]), None]
        );
    }
}
