//! Writing slotted configuration maps.
//!
//! Each configuration map holds two copies of the configuration, one per
//! slot. A [`SlottedMap`] knows what each slot of its map holds (read back
//! when the datapath is opened, then tracked) and which keys of each slot
//! may differ from the desired contents (*pending*): the keys of every
//! change since that slot was last written. Writing a slot reconciles only
//! its pending keys, so a one-port change touches a handful of entries
//! however big the rest is; the other slot catches up at the next change.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Debug,
};

use anyhow::{Context, Result};
use aya::{
    Pod,
    maps::{
        HashMap, MapData, MapError,
        lpm_trie::{Key, LpmTrie},
    },
};
use common::{LpmKey, Slotted};
use dataplane_config::journal::Journaled;

/// Every entry of a slotted map: (slot, key with slot 0, value).
pub type SlotEntries<K, V> = Vec<(u32, K, V)>;

/// A map whose keys carry a slot. `K` is the key with slot 0.
pub trait SlotStore {
    type K: Slotted + Debug;
    type V: PartialEq + Copy + Debug;

    /// Every entry: (slot, key with slot 0, value).
    fn read_all(&self) -> Result<SlotEntries<Self::K, Self::V>>;
    fn put(&mut self, key: &Self::K, value: &Self::V) -> Result<()>;
    fn delete(&mut self, key: &Self::K) -> Result<()>;
}

pub struct SlottedMap<S: SlotStore> {
    pub name: &'static str,
    pub store: S,
    /// What each slot holds (keys with slot 0).
    contents: [BTreeMap<S::K, S::V>; 2],
    /// Keys of each slot that may differ from the desired contents.
    pending: [BTreeSet<S::K>; 2],
    /// Entries one slot may hold.
    pub capacity: usize,
}

impl<S: SlotStore> SlottedMap<S> {
    /// Wraps `store`, reading what both slots hold now; all of it is
    /// pending until written once.
    pub fn open(name: &'static str, store: S, capacity: usize) -> Result<Self> {
        let mut contents: [BTreeMap<S::K, S::V>; 2] = Default::default();
        for (slot, k, v) in store
            .read_all()
            .with_context(|| format!("reading map {name}"))?
        {
            if let Some(c) = contents.get_mut(slot as usize) {
                c.insert(k, v);
            }
        }
        let pending = [
            contents[0].keys().copied().collect(),
            contents[1].keys().copied().collect(),
        ];
        Ok(SlottedMap {
            name,
            store,
            contents,
            pending,
            capacity,
        })
    }

    pub fn contents(&self, slot: u32) -> &BTreeMap<S::K, S::V> {
        &self.contents[slot as usize]
    }

    /// Notes the keys a change touched: both slots must be reconciled.
    pub fn mark(&mut self, desired: &Journaled<S::K, S::V>) {
        for k in desired.changed() {
            self.pending[0].insert(*k);
            self.pending[1].insert(*k);
        }
    }

    /// Makes `slot` hold `desired` on every pending key. Entries are
    /// tracked as they are written, so after an error the next sync
    /// starts from the truth.
    pub fn sync(&mut self, slot: u32, desired: &Journaled<S::K, S::V>) -> Result<SyncStats> {
        let mut stats = SyncStats::default();
        let s = slot as usize;
        let keys: Vec<S::K> = self.pending[s].iter().copied().collect();
        for k in keys {
            let want = desired.get(&k);
            let have = self.contents[s].get(&k);
            if want != have {
                let key = k.in_slot(slot);
                match want {
                    Some(v) => {
                        self.store
                            .put(&key, v)
                            .with_context(|| format!("writing {key:?} to map {}", self.name))?;
                        self.contents[s].insert(k, *v);
                        stats.written += 1;
                    }
                    None => {
                        self.store
                            .delete(&key)
                            .with_context(|| format!("deleting {key:?} from map {}", self.name))?;
                        self.contents[s].remove(&k);
                        stats.deleted += 1;
                    }
                }
            }
            self.pending[s].remove(&k);
        }
        Ok(stats)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub written: usize,
    pub deleted: usize,
}

impl std::ops::AddAssign for SyncStats {
    fn add_assign(&mut self, o: SyncStats) {
        self.written += o.written;
        self.deleted += o.deleted;
    }
}

/// A hash map with slotted keys.
pub struct SlotHash<K, V>(pub HashMap<MapData, K, V>);

impl<K, V> SlotStore for SlotHash<K, V>
where
    K: Pod + Slotted + Debug,
    V: Pod + PartialEq + Debug,
{
    type K = K;
    type V = V;

    fn read_all(&self) -> Result<Vec<(u32, K, V)>> {
        let mut out = Vec::new();
        for item in self.0.iter() {
            let (k, v) = item?;
            out.push((k.slot(), k.in_slot(0), v));
        }
        Ok(out)
    }

    fn put(&mut self, key: &K, value: &V) -> Result<()> {
        retry_enomem(|| self.0.insert(key, value, 0))
    }

    fn delete(&mut self, key: &K) -> Result<()> {
        ignore_missing(self.0.remove(key))
    }
}

/// An LPM trie with slotted keys.
pub struct SlotLpm<K, V>(pub LpmTrie<MapData, K, V>);

impl<K, V> SlotStore for SlotLpm<K, V>
where
    K: Pod + Slotted + Debug,
    V: Pod + PartialEq + Debug,
{
    type K = LpmKey<K>;
    type V = V;

    fn read_all(&self) -> Result<Vec<(u32, LpmKey<K>, V)>> {
        let mut out = Vec::new();
        for item in self.0.iter() {
            let (k, v) = item?;
            let key = LpmKey {
                prefix_len: k.prefix_len(),
                data: k.data(),
            };
            out.push((key.slot(), key.in_slot(0), v));
        }
        Ok(out)
    }

    fn put(&mut self, key: &LpmKey<K>, value: &V) -> Result<()> {
        let k = Key::new(key.prefix_len, key.data);
        retry_enomem(|| self.0.insert(&k, value, 0))
    }

    fn delete(&mut self, key: &LpmKey<K>) -> Result<()> {
        ignore_missing(self.0.remove(&Key::new(key.prefix_len, key.data)))
    }
}

/// Tries an insert again when the kernel had no memory at hand for the
/// entry: these maps (no preallocation) take each entry from the BPF
/// memory allocator, whose per-CPU caches are refilled asynchronously, and
/// a burst of inserts (the first apply of a large configuration) can
/// outrun the refill. Seen at 100,000 ports on a busy machine: ENOMEM once
/// in a few million inserts, gone on the next try. A map that is really
/// full fails with another error (E2BIG, ENOSPC) at once.
fn retry_enomem(mut put: impl FnMut() -> Result<(), MapError>) -> Result<()> {
    let mut wait = std::time::Duration::from_micros(100);
    for _ in 0..ENOMEM_TRIES {
        match put() {
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOMEM) => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
    Ok(put()?)
}

/// Tries of an insert that failed with ENOMEM (about a second in all).
const ENOMEM_TRIES: usize = 60;

/// Deleting what is already gone is success: the goal is absence.
fn ignore_missing(r: Result<(), MapError>) -> Result<()> {
    match r {
        Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
