//! Compact, deterministic lookup index: sorted `(key fingerprint, value)`
//! pairs, searched by binary search. No per-key allocation; building is a
//! push and one sort, so 100,000 directory users index in milliseconds.
//!
//! Keys are 64-bit fingerprints (foldhash `quality`, fixed seed) of the
//! normalised key text. Two different keys share a fingerprint with
//! probability about 2^-64 per pair (for a million keys, roughly one in
//! 10^7 runs of a trillion lookups); values come back in ascending order.

use std::hash::BuildHasher;

fn seed() -> foldhash::quality::FixedState {
    foldhash::quality::FixedState::with_seed(0x6f33_3635_6d69_6772)
}

/// The fingerprint of a key.
pub(crate) fn fingerprint(key: &str) -> u64 {
    seed().hash_one(key)
}

/// The fingerprint of a key tagged with a small field number, without
/// building the combined string.
pub(crate) fn fingerprint_tagged(tag: u8, key: &str) -> u64 {
    seed().hash_one((tag, key))
}

/// Sorted `(fingerprint, value)` pairs, plus a radix directory on the top
/// fingerprint bits so a lookup touches one small bucket.
#[derive(Debug, Default)]
pub(crate) struct KeyIndex<V> {
    entries: Vec<(u64, V)>,
    /// `starts[b]..starts[b + 1]` are the entries whose top `bits` bits are `b`.
    starts: Vec<u32>,
    bits: u32,
}

impl<V: Copy + Ord> KeyIndex<V> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
            starts: Vec::new(),
            bits: 0,
        }
    }

    pub(crate) fn add(&mut self, key: &str, v: V) {
        self.entries.push((fingerprint(key), v));
    }

    /// Adds under a precomputed fingerprint.
    pub(crate) fn add_fp(&mut self, fp: u64, v: V) {
        self.entries.push((fp, v));
    }

    /// Sorts and removes exact duplicates; call once after the last `add`.
    pub(crate) fn finish(mut self) -> Self {
        self.entries.sort_unstable();
        self.entries.dedup();
        self.directory()
    }

    /// Builds the radix directory (about four entries per bucket).
    fn directory(mut self) -> Self {
        self.entries.shrink_to_fit();
        let n = self.entries.len();
        self.bits = (usize::BITS - (n / 4).leading_zeros()).clamp(1, 24);
        let buckets = 1usize << self.bits;
        let mut starts = vec![0u32; buckets + 1];
        let mut pos = 0usize;
        for (b, slot) in starts.iter_mut().enumerate().take(buckets) {
            while pos < n && self.bucket(self.entries[pos].0) < b {
                pos += 1;
            }
            *slot = pos as u32;
        }
        starts[buckets] = n as u32;
        self.starts = starts;
        self
    }

    fn bucket(&self, fp: u64) -> usize {
        (fp >> (64 - self.bits)) as usize
    }

    /// Sorts, then keeps only the first value per (key, `same`) group.
    pub(crate) fn finish_by(mut self, same: impl Fn(&V, &V) -> bool) -> Self {
        self.entries.sort_unstable();
        self.entries.dedup_by(|b, a| a.0 == b.0 && same(&a.1, &b.1));
        self.directory()
    }

    /// Values stored under `key`, ascending.
    pub(crate) fn get(&self, key: &str) -> impl Iterator<Item = V> + '_ {
        self.get_fp(fingerprint(key))
    }

    /// Values stored under a precomputed fingerprint, ascending.
    pub(crate) fn get_fp(&self, fp: u64) -> impl Iterator<Item = V> + '_ {
        let b = self.bucket(fp);
        let lo = self.starts.get(b).map_or(0, |&x| x as usize);
        let hi = self.starts.get(b + 1).map_or(0, |&x| x as usize);
        let bucket = self.entries.get(lo..hi).unwrap_or(&[]);
        let start = bucket.partition_point(|e| e.0 < fp);
        bucket[start..]
            .iter()
            .take_while(move |e| e.0 == fp)
            .map(|e| e.1)
    }

    /// Whether anything is stored under `key`.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.get(key).next().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::KeyIndex;

    #[test]
    fn lookup_and_dedup() {
        let mut i = KeyIndex::with_capacity(4);
        i.add("b", 2u32);
        i.add("a", 9);
        i.add("a", 1);
        i.add("a", 1);
        let i = i.finish();
        assert_eq!(i.get("a").collect::<Vec<_>>(), vec![1, 9]);
        assert_eq!(i.get("b").collect::<Vec<_>>(), vec![2]);
        assert!(i.get("c").next().is_none());
        assert!(!i.contains("c"));
        let empty: KeyIndex<u32> = KeyIndex::with_capacity(0).finish();
        assert!(empty.get("a").next().is_none());
        let mut big = KeyIndex::with_capacity(10_000);
        for n in 0..10_000u32 {
            big.add(&n.to_string(), n);
        }
        let big = big.finish();
        for n in (0..10_000u32).step_by(7) {
            assert_eq!(big.get(&n.to_string()).collect::<Vec<_>>(), vec![n]);
        }
    }
}
