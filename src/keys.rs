//! Keys and key groups.
//!
//! A key's *key group* is `hash(key) % max_parallelism`: the unit in which keyed
//! state is partitioned, stored and moved on rescaling (as in Flink's
//! `KeyGroupRangeAssignment`). Subtask `i` of `p` owns the contiguous range of key
//! groups `[i * max / p, (i + 1) * max / p)` (bounds rounded up), so records with one key always meet
//! the same subtask, and a restore at another parallelism reassigns whole groups.
//!
//! The hash is [`StableHasher`] (re-mixed, see [`key_group`]): weir's own, fixed algorithm, so a key's group
//! does not change between runs, builds or machines (as long as the key type's
//! `Hash` implementation feeds it the same values, which holds for integers,
//! strings, tuples and derived impls of those).
//!
//! The in-memory maps that hold state ([`KeyMap`]) hash differently: with
//! [`KeyMapHasher`], seeded at random once per process. Their layout is
//! rebuilt on every restore, so it need not be stable, and keys often come from
//! outside (user ids, addresses): with a fixed, public hash a sender could
//! choose keys that collide and turn every lookup into a scan (hash flooding).
//!
//! ```
//! use weir::keys::{key_group, KeyGroupRange};
//! let group = key_group(&"alice", 128);
//! let owner = KeyGroupRange::owner_of(group, 128, 4);
//! assert!(KeyGroupRange::of_subtask(owner, 128, 4).contains(group));
//! ```

use std::hash::{BuildHasherDefault, Hash, Hasher};

/// A fast, deterministic 64-bit hasher (multiply-rotate mixing, murmur3 finaliser):
/// the hash that places keys in key groups. It is not seeded, so it is not
/// used for in-memory maps (see [`KeyMap`]).
#[derive(Clone, Copy, Debug)]
pub struct StableHasher {
    state: u64,
}

impl Default for StableHasher {
    fn default() -> Self {
        // A non-zero start, so that zero-valued keys do not hash to zero.
        StableHasher {
            state: 0x243F_6A88_85A3_08D3,
        }
    }
}

const SEED_MUL: u64 = 0x9E37_79B9_7F4A_7C15;

impl StableHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(SEED_MUL);
    }
}

/// The murmur3 64-bit finaliser: spreads every input bit over every output bit.
#[inline]
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl Hasher for StableHasher {
    #[inline]
    fn finish(&self) -> u64 {
        fmix64(self.state)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.mix(i as u64);
        self.mix((i >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        // Widened so that 32- and 64-bit builds agree.
        self.mix(i as u64);
    }
    #[inline]
    fn write_i64(&mut self, i: i64) {
        self.mix(i as u64);
    }
    #[inline]
    fn write_isize(&mut self, i: isize) {
        self.mix(i as i64 as u64);
    }
}

/// `BuildHasher` of the stable hash, for a map that must iterate in the same
/// order in every process (never for keys a sender controls).
pub type StableBuildHasher = BuildHasherDefault<StableHasher>;

/// The hasher of weir's in-memory maps: [foldhash](https://docs.rs/foldhash)'s
/// fast hash, seeded from a per-process random seed, so that colliding keys
/// cannot be computed in advance (hash flooding).
pub type KeyMapHasher = foldhash::fast::RandomState;

/// The `HashMap` type weir's in-memory state uses (keyed state, map state,
/// broadcast state, timers), hashed with the seeded [`KeyMapHasher`]. The
/// `raw-loop` benchmark ceiling uses it too, so that keyed jobs are compared
/// with a loop over the same map.
///
/// ```
/// use weir::keys::KeyMap;
/// let mut counts: KeyMap<&str, u64> = KeyMap::default();
/// *counts.entry("alice").or_insert(0) += 1;
/// assert_eq!(counts["alice"], 1);
/// ```
pub type KeyMap<K, V> = std::collections::HashMap<K, V, KeyMapHasher>;

/// The stable 64-bit hash of a key.
#[inline]
pub fn stable_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut hasher = StableHasher::default();
    key.hash(&mut hasher);
    hasher.finish()
}

/// The key group of `key` among `max_parallelism` groups.
///
/// The key's hash is mixed once more before the modulo: keyed state keeps one
/// hash map per key group, hashed with the same [`StableHasher`], and keys that
/// share their hash's low bits (as all keys of a group would, without the extra
/// mix) would crowd into a few buckets of their group's map.
#[inline]
pub fn key_group<K: Hash + ?Sized>(key: &K, max_parallelism: usize) -> usize {
    let mixed = fmix64(stable_hash(key) ^ 0x5851_F42D_4C95_7F2D);
    // The high half of mixed * max: uniform over 0..max, and a multiply, not a division.
    ((u128::from(mixed) * max_parallelism as u128) >> 64) as usize
}

pub use weir_actors::key_groups::KeyGroupRange;

/// `n` distinct 16-byte keys whose [`stable_hash`] is one and the same (so they
/// share a key group too): what a sender who knows the stable hash can make.
/// Each key's second word cancels what its first did to the hasher's state.
#[cfg(test)]
pub(crate) fn colliding_keys(n: u64) -> Vec<Vec<u8>> {
    const TARGET: u64 = 0x0123_4567_89AB_CDEF;
    (0..n)
        .map(|i| {
            let mut hasher = StableHasher::default();
            hasher.write_usize(16); // a Vec<u8>'s length prefix
            hasher.mix(i);
            let second = hasher.state.rotate_left(5) ^ TARGET;
            let mut key = i.to_le_bytes().to_vec();
            key.extend_from_slice(&second.to_le_bytes());
            key
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn hashes_are_fixed_across_builds() {
        // These values pin the algorithm: changing them moves every key's group
        // and breaks restoring keyed state written before the change.
        let snapshot: Vec<usize> = ["alice", "bob", "carol"]
            .iter()
            .map(|k| key_group(k, 128))
            .collect();
        insta::assert_debug_snapshot!(snapshot);
        let ints: Vec<usize> = (0u64..8).map(|k| key_group(&k, 128)).collect();
        insta::assert_debug_snapshot!(ints);
    }

    #[test]
    fn colliding_keys_collide_in_the_stable_hash_only() {
        let keys = colliding_keys(1000);
        let stable: std::collections::HashSet<u64> = keys.iter().map(stable_hash).collect();
        assert_eq!(stable.len(), 1, "the keys collide in the stable hash");
        let seeded = KeyMapHasher::default();
        let hashes: std::collections::HashSet<u64> =
            keys.iter().map(|k| seeded.hash_one(k)).collect();
        assert_eq!(hashes.len(), 1000, "but not in the seeded map hash");
    }

    #[test]
    fn keys_spread_evenly_over_key_groups() {
        let mut counts = vec![0usize; 128];
        for k in 0u64..128_000 {
            counts[key_group(&k, 128)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }
}
