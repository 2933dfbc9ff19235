//! A fast keyed hasher for the maps a message touches (issue 17), in the
//! engine (`lnet_core::hash` re-exports it) and in the LNDs.
//!
//! The standard library's SipHash-1-3 costs a few hundred instructions to
//! hash a NID; an `lst ping` RPC hashed about 40 keys on each side (peer
//! lookups, MD handles, portal match bits, selftest RPC ids), a fifth of all
//! its user-space instructions. [`FastState`] hashes a word with one 64×64→128
//! bit multiply folded to 64 bits (the mixing step of foldhash and aHash's
//! fallback) and is seeded once per process from the standard library's
//! random keys, so colliding keys (NIDs come from the network) cannot be
//! chosen in advance. It is not a cryptographic hash: it is what the kernel's
//! `hash_long` over a NID is, plus a secret seed.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// A `HashMap` with [`FastState`].
pub type FastMap<K, V> = HashMap<K, V, FastState>;
/// A `HashSet` with [`FastState`].
pub type FastSet<K> = HashSet<K, FastState>;

const MUL: u64 = 0x9E37_79B9_7F4A_7C15;
const FIN: u64 = 0xA076_1D64_78BD_642F;

#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// The process's seed, from the standard library's random hash keys.
fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        std::collections::hash_map::RandomState::new().hash_one(0x6c6e_6574_u64) | 1
    })
}

/// Builds [`FastHasher`]s seeded with the process's secret seed.
#[derive(Clone, Copy, Debug)]
pub struct FastState {
    seed: u64,
}

impl Default for FastState {
    fn default() -> Self {
        FastState { seed: seed() }
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;

    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher { h: self.seed }
    }
}

/// The hasher of [`FastState`].
#[derive(Clone, Copy, Debug)]
pub struct FastHasher {
    h: u64,
}

impl FastHasher {
    #[inline(always)]
    fn word(&mut self, w: u64) {
        self.h = fold_mul(self.h ^ w, MUL);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            // The length keeps "ab" and "ab\0" apart.
            self.word(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.word(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.word(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.word(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.word(i);
    }

    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.word(i as u64);
        self.word((i >> 64) as u64);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.word(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        fold_mul(self.h, FIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    fn h<T: Hash>(s: &FastState, v: T) -> u64 {
        s.hash_one(v)
    }

    #[test]
    fn equal_keys_hash_equal_and_different_keys_spread() {
        let s = FastState::default();
        assert_eq!(h(&s, 42u64), h(&s, 42u64));
        assert_eq!(h(&s, (1u32, [1u8, 2, 3])), h(&s, (1u32, [1u8, 2, 3])));
        assert_ne!(h(&s, b"ab".as_slice()), h(&s, b"ab\0".as_slice()));
        // Sequential ids (RPC ids, MD handles) land in many buckets: the
        // low 7 bits (a small table's index) and the top 7 (hashbrown's
        // tag) both take most of their 128 values over 1024 keys.
        let mut low = std::collections::BTreeSet::new();
        let mut top = std::collections::BTreeSet::new();
        for i in 0..1024u64 {
            let v = h(&s, i);
            low.insert(v & 127);
            top.insert(v >> 57);
        }
        assert!(low.len() > 120, "{} low buckets", low.len());
        assert!(top.len() > 120, "{} tags", top.len());
    }

    #[test]
    fn a_map_with_the_fast_state_works_as_a_map() {
        let mut m: FastMap<u64, u64> = FastMap::default();
        for i in 0..10_000 {
            m.insert(i * 7, i);
        }
        for i in 0..10_000 {
            assert_eq!(m.get(&(i * 7)), Some(&i));
            assert_eq!(m.get(&(i * 7 + 1)), None);
        }
        let mut s: FastSet<(u32, u64)> = FastSet::default();
        assert!(s.insert((1, 2)));
        assert!(!s.insert((1, 2)));
    }
}
