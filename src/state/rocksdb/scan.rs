//! `GroupScan`: reading a state's entries key group by key group, through
//! one iterator in total order.
//!
//! The memtable hashes whole state keys (see [`format::hash_prefix`]), so
//! the entries of one state in one key group lie in many hash buckets: a
//! prefix seek to `key group | state name` would read one bucket and miss
//! the rest. A total-order iterator sees them all, but on a hashed memtable
//! its creation copies the memtable into one sorted list; a scan therefore
//! makes one iterator and seeks it to each group and state it reads,
//! instead of one iterator per group.

use rocksdb::{DBRawIterator, ReadOptions, DB};

use super::format;

/// A raw iterator over the keys of `db` that start with `prefix`,
/// positioned at the first: a prefix seek within one hash bucket when
/// `prefix` holds a whole state key (a key's map entries, or its one value),
/// else in total order.
pub(crate) fn prefix_iter<'a>(db: &'a DB, prefix: &[u8]) -> DBRawIterator<'a> {
    let mut read = if format::has_hash_prefix(prefix) {
        ReadOptions::default()
    } else {
        total_order_read(true)
    };
    if let Some(end) = format::prefix_end(prefix) {
        read.set_iterate_upper_bound(end);
    }
    let mut iter = db.raw_iterator_opt(read);
    iter.seek(prefix);
    iter
}

/// Read options for an iterator in total order: every scan but one key's
/// entries (see [`RocksKeyedDb::prefix_iter`](super::db::RocksKeyedDb::prefix_iter)).
pub(crate) fn total_order_read(fill_cache: bool) -> ReadOptions {
    let mut read = ReadOptions::default();
    read.set_total_order_seek(true);
    read.fill_cache(fill_cache);
    read
}

/// One total-order iterator, positioned on one state in one key group at a
/// time.
///
/// ```text
/// let mut scan = GroupScan::new(&db, true);
/// for group in range.start..range.end {
///     scan.seek(group, "count");
///     while let Some((suffix, value)) = scan.entry() {
///         // suffix: the data key after `group | name`
///         scan.next();
///     }
///     scan.status()?;
/// }
/// ```
pub(crate) struct GroupScan<'a> {
    iter: DBRawIterator<'a>,
    /// `key group | name length | state name` of the entries being read.
    prefix: Vec<u8>,
}

impl<'a> GroupScan<'a> {
    /// A scan of `db`; `fill_cache: false` keeps a one-off pass (a full
    /// snapshot) from evicting the block cache's working set.
    pub(crate) fn new(db: &'a DB, fill_cache: bool) -> Self {
        GroupScan {
            iter: db.raw_iterator_opt(total_order_read(fill_cache)),
            prefix: Vec::new(),
        }
    }

    /// Positions the scan at the first entry of state `name` in key group `group`.
    pub(crate) fn seek(&mut self, group: usize, name: &str) {
        format::data_prefix(&mut self.prefix, group, name.as_bytes());
        self.iter.seek(&self.prefix);
    }

    /// The current entry: its data key after `key group | state name` (the
    /// msgpack key, and a map entry's user key), and its value; `None` past
    /// the state's last entry in the group.
    pub(crate) fn entry(&self) -> Option<(&[u8], &[u8])> {
        let key = self.iter.key()?;
        let suffix = key.strip_prefix(self.prefix.as_slice())?;
        Some((suffix, self.iter.value()?))
    }

    /// The current entry's whole data key.
    pub(crate) fn key(&self) -> Option<&[u8]> {
        self.iter.key()
    }

    /// Moves to the next entry.
    pub(crate) fn next(&mut self) {
        self.iter.next();
    }

    /// Whether the iterator failed (a read error ends the scan early: check
    /// after every state, or the scan would seem to have read it all).
    pub(crate) fn status(&self) -> Result<(), rocksdb::Error> {
        self.iter.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::codec;
    use crate::state::rocksdb::db::db_options;
    use crate::state::RocksDbBackend;
    use rocksdb::{BlockBasedOptions, MemtableFactory, Options, SliceTransform};

    const GROUPS: usize = 3;

    fn data_key(group: usize, name: &str, key: u32, user_key: Option<u32>) -> Vec<u8> {
        let mut out = Vec::new();
        format::data_prefix(&mut out, group, name.as_bytes());
        codec::encode_into(&mut out, &key).unwrap();
        if let Some(user_key) = user_key {
            codec::encode_into(&mut out, &user_key).unwrap();
        }
        out
    }

    /// How databases were opened before the memtable hashed state keys: a
    /// skip list per key group, and SST prefix filters of key groups.
    fn group_prefix_options() -> Options {
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_allow_concurrent_memtable_write(false);
        options.set_block_based_table_factory(&table);
        options.set_prefix_extractor(SliceTransform::create_fixed_prefix(format::GROUP_BYTES));
        options.set_memtable_factory(MemtableFactory::HashSkipList {
            bucket_count: 4096,
            height: 12,
            branching_factor: 4,
        });
        options
    }

    /// Value state `count` and map state `fields` (two entries) for `keys`.
    fn write(db: &DB, keys: std::ops::Range<u32>) {
        for group in 0..GROUPS {
            for key in keys.clone() {
                db.put(data_key(group, "count", key, None), [1]).unwrap();
                for field in [7, 9] {
                    db.put(data_key(group, "fields", key, Some(field)), [2])
                        .unwrap();
                }
            }
        }
    }

    /// Every key of `count` in each group, by a scan, in key order.
    fn scanned_keys(db: &DB) -> Vec<Vec<u32>> {
        let mut scan = GroupScan::new(db, true);
        let keys = (0..GROUPS)
            .map(|group| {
                scan.seek(group, "count");
                let mut keys = Vec::new();
                while let Some((suffix, value)) = scan.entry() {
                    assert_eq!(value, [1]);
                    keys.push(codec::decode::<u32>(suffix).unwrap());
                    scan.next();
                }
                keys
            })
            .collect();
        scan.status().unwrap();
        keys
    }

    #[test]
    fn every_entry_is_read_from_hashed_memtables_and_older_sst_files() {
        let dir = tempfile::tempdir().unwrap();
        // Written with key-group prefixes and flushed: SST files whose
        // prefix filters hold key groups, not state keys.
        {
            let db = DB::open(&group_prefix_options(), dir.path()).unwrap();
            write(&db, 0..300);
            db.flush().unwrap();
        }
        let db = DB::open(&db_options(&RocksDbBackend::new()), dir.path()).unwrap();
        // Newer entries in the memtable, spread over its hash buckets.
        write(&db, 300..600);
        // Integer keys sort by their msgpack form: by size class, then value.
        let mut expected: Vec<u32> = (0..600).collect();
        expected.sort_by_key(|k| codec::encode(k).unwrap());
        for (group, keys) in scanned_keys(&db).iter().enumerate() {
            assert_eq!(keys.len(), expected.len(), "keys of group {group}");
            assert_eq!(keys, &expected);
        }
        for key in [0, 299, 300, 599] {
            for group in 0..GROUPS {
                let value = db.get(data_key(group, "count", key, None)).unwrap();
                assert_eq!(value.as_deref(), Some(&[1][..]), "key {key}");
                // A key's map entries: a prefix seek in its bucket.
                let prefix = data_key(group, "fields", key, None);
                assert!(format::has_hash_prefix(&prefix));
                let mut iter = prefix_iter(&db, &prefix);
                let mut fields = Vec::new();
                while let Some(k) = iter.key() {
                    fields.push(codec::decode::<u32>(&k[prefix.len()..]).unwrap());
                    iter.next();
                }
                assert_eq!(fields, [7, 9], "key {key} in group {group}");
            }
        }
        // A state's keys in one group, by prefix: not one bucket, total order.
        let mut group_prefix = Vec::new();
        format::data_prefix(&mut group_prefix, 1, b"count");
        let mut iter = prefix_iter(&db, &group_prefix);
        let mut n = 0;
        while iter.key().is_some() {
            n += 1;
            iter.next();
        }
        assert_eq!(n, 600);
    }
}
