//! The registration cache (o2iblnd's FMR pool with `fmr_cache=1`): MD
//! memory is registered once and reused by later messages over the same
//! window, not registered per message. An entry goes when the memory goes
//! (its registration is the last holder of the MD's fragments) or, when
//! the cache is over `fmr_pool_size`, when it is the least recently used
//! one not in use by an RDMA.

use std::collections::HashMap;
use std::time::Instant;

use lnd_api::PayloadSpan;

use crate::soft::{SoftDevice, SoftMr};
use crate::verbs::Access;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Key {
    /// Identity of the MD's shared fragment list (kept alive by the
    /// registration, so the address cannot be reused while cached).
    list: usize,
    offset: usize,
    len: usize,
    access: u32,
}

struct Entry {
    mr: SoftMr,
    in_use: u32,
    last: Instant,
}

/// Registrations by memory window.
pub struct RegCache {
    cap: usize,
    entries: HashMap<Key, Entry>,
    by_lkey: HashMap<u32, Key>,
    hits: u64,
}

impl RegCache {
    /// A cache of at most `cap` idle registrations.
    pub fn new(cap: usize) -> Self {
        RegCache {
            cap: cap.max(1),
            entries: HashMap::new(),
            by_lkey: HashMap::new(),
            hits: 0,
        }
    }

    /// The key and base address of a registration covering `span` with
    /// `access`, made now or found; counts a use until [`RegCache::release`].
    /// `None` for an empty span.
    pub fn get(
        &mut self,
        dev: &SoftDevice,
        span: &PayloadSpan,
        access: Access,
    ) -> Option<(u32, u64)> {
        if span.is_empty() {
            return None;
        }
        let key = Key {
            list: span.frags().as_ptr() as usize,
            offset: span.offset(),
            len: span.len(),
            access: access.0,
        };
        if let Some(e) = self.entries.get_mut(&key) {
            e.in_use += 1;
            e.last = Instant::now();
            self.hits += 1;
            return Some((e.mr.lkey(), 0));
        }
        if self.entries.len() >= self.cap {
            self.sweep(dev);
            self.evict_lru();
        }
        let mr = dev.reg_mr(span.clone(), access);
        let lkey = mr.lkey();
        self.by_lkey.insert(lkey, key);
        self.entries.insert(
            key,
            Entry {
                mr,
                in_use: 1,
                last: Instant::now(),
            },
        );
        Some((lkey, 0))
    }

    /// Ends one use of the registration under `lkey`.
    pub fn release(&mut self, lkey: u32) {
        if let Some(k) = self.by_lkey.get(&lkey) {
            if let Some(e) = self.entries.get_mut(k) {
                e.in_use = e.in_use.saturating_sub(1);
            }
        }
    }

    /// Drops idle registrations whose memory went away.
    pub fn sweep(&mut self, dev: &SoftDevice) {
        let gone: Vec<Key> = self
            .entries
            .iter()
            .filter(|(_, e)| e.in_use == 0 && dev.mr_orphaned(e.mr.lkey()))
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            if let Some(e) = self.entries.remove(&k) {
                self.by_lkey.remove(&e.mr.lkey());
            }
        }
    }

    fn evict_lru(&mut self) {
        while self.entries.len() >= self.cap {
            let Some(k) = self
                .entries
                .iter()
                .filter(|(_, e)| e.in_use == 0)
                .min_by_key(|(_, e)| e.last)
                .map(|(k, _)| *k)
            else {
                return;
            };
            if let Some(e) = self.entries.remove(&k) {
                self.by_lkey.remove(&e.mr.lkey());
            }
        }
    }

    /// Lookups answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Registrations cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
