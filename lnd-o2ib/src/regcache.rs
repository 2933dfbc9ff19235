//! The registration cache (o2iblnd's FMR pool with `fmr_cache=1`): MD
//! memory is registered once and reused by later messages over the same
//! window, not registered per message. An entry goes when the memory goes
//! (its registration is the last holder of the MD's fragments) or, when
//! the cache is over `fmr_pool_size`, when it is the least recently used
//! one not in use by an RDMA.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use lnd_api::PayloadSpan;

use crate::ni::provider::{Provider, Reg};
use crate::verbs::{Access, VerbsError};

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
    id: u32,
    reg: Arc<Reg>,
    in_use: u32,
    last: Instant,
}

/// Registrations by memory window.
pub struct RegCache {
    cap: usize,
    entries: HashMap<Key, Entry>,
    by_id: HashMap<u32, Key>,
    next_id: u32,
    hits: u64,
}

impl RegCache {
    /// A cache of at most `cap` idle registrations.
    pub fn new(cap: usize) -> Self {
        RegCache {
            cap: cap.max(1),
            entries: HashMap::new(),
            by_id: HashMap::new(),
            next_id: 1,
            hits: 0,
        }
    }

    /// A registration covering `span` with `access`, made now or found,
    /// and the id [`RegCache::release`] ends this use with. `Ok(None)` for
    /// an empty span; `Err` when the provider cannot register it.
    pub(crate) fn get(
        &mut self,
        dev: &Provider,
        span: &PayloadSpan,
        access: Access,
    ) -> Result<Option<(u32, Arc<Reg>)>, VerbsError> {
        if span.is_empty() {
            return Ok(None);
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
            return Ok(Some((e.id, e.reg.clone())));
        }
        if self.entries.len() >= self.cap {
            self.sweep();
            self.evict_lru();
        }
        let reg = Arc::new(dev.register(span, access)?);
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.by_id.insert(id, key);
        self.entries.insert(
            key,
            Entry {
                id,
                reg: reg.clone(),
                in_use: 1,
                last: Instant::now(),
            },
        );
        Ok(Some((id, reg)))
    }

    /// Ends one use of the registration `id`.
    pub fn release(&mut self, id: u32) {
        if let Some(k) = self.by_id.get(&id) {
            if let Some(e) = self.entries.get_mut(k) {
                e.in_use = e.in_use.saturating_sub(1);
            }
        }
    }

    /// Drops idle registrations whose memory went away.
    pub fn sweep(&mut self) {
        let gone: Vec<Key> = self
            .entries
            .iter()
            .filter(|(_, e)| e.in_use == 0 && e.reg.orphaned())
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            if let Some(e) = self.entries.remove(&k) {
                self.by_id.remove(&e.id);
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
                self.by_id.remove(&e.id);
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
