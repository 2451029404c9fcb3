//! Writing slotted configuration maps.
//!
//! Each configuration map holds two copies of the configuration, one per
//! slot. A [`SlottedMap`] knows what each slot of its map holds (read back
//! from the map when the datapath is opened, then tracked) and brings the
//! inactive slot to a desired content with the fewest updates, so that a
//! one-port change touches a handful of entries however big the rest is.

use std::{collections::BTreeMap, fmt::Debug};

use anyhow::{Context, Result};
use aya::{
    Pod,
    maps::{
        HashMap, MapData, MapError,
        lpm_trie::{Key, LpmTrie},
    },
};

/// Every entry of a slotted map: (slot, key without slot, value).
pub type SlotEntries<K, V> = Vec<(u32, K, V)>;

/// A map whose keys carry a slot.
pub trait SlotStore {
    /// The key without its slot.
    type K: Ord + Clone + Debug;
    type V: PartialEq + Clone + Debug;

    fn read_all(&self) -> Result<SlotEntries<Self::K, Self::V>>;
    fn put(&mut self, slot: u32, key: &Self::K, value: &Self::V) -> Result<()>;
    fn delete(&mut self, slot: u32, key: &Self::K) -> Result<()>;
}

pub struct SlottedMap<S: SlotStore> {
    pub name: &'static str,
    pub store: S,
    /// What each slot holds.
    contents: [BTreeMap<S::K, S::V>; 2],
    /// Entries one slot may hold.
    pub capacity: usize,
}

impl<S: SlotStore> SlottedMap<S> {
    /// Wraps `store`, reading what both slots hold now.
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
        Ok(SlottedMap {
            name,
            store,
            contents,
            capacity,
        })
    }

    pub fn contents(&self, slot: u32) -> &BTreeMap<S::K, S::V> {
        &self.contents[slot as usize]
    }

    /// Makes `slot` hold exactly `desired`. Entries are tracked as they are
    /// written, so after an error the next sync starts from the truth.
    pub fn sync(&mut self, slot: u32, desired: &BTreeMap<S::K, S::V>) -> Result<SyncStats> {
        let mut stats = SyncStats::default();
        let current = &mut self.contents[slot as usize];
        let stale: Vec<S::K> = current
            .keys()
            .filter(|k| !desired.contains_key(*k))
            .cloned()
            .collect();
        for k in stale {
            self.store
                .delete(slot, &k)
                .with_context(|| format!("deleting {k:?} from map {}", self.name))?;
            current.remove(&k);
            stats.deleted += 1;
        }
        for (k, v) in desired {
            if current.get(k) == Some(v) {
                continue;
            }
            self.store
                .put(slot, k, v)
                .with_context(|| format!("writing {k:?} to map {}", self.name))?;
            current.insert(k.clone(), v.clone());
            stats.written += 1;
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

/// Adapter between a slot-free key and the map's slotted key type.
pub trait SlotKey: Sized {
    type Bare: Ord + Clone + Debug;
    fn with_slot(slot: u32, bare: &Self::Bare) -> Self;
    fn split(&self) -> (u32, Self::Bare);
}

/// A hash map with slotted keys.
pub struct SlotHash<K, V>(pub HashMap<MapData, K, V>);

impl<K, V> SlotStore for SlotHash<K, V>
where
    K: Pod + SlotKey,
    V: Pod + PartialEq + Debug,
{
    type K = K::Bare;
    type V = V;

    fn read_all(&self) -> Result<SlotEntries<K::Bare, V>> {
        let mut out = Vec::new();
        for item in self.0.iter() {
            let (k, v) = item?;
            let (slot, bare) = k.split();
            out.push((slot, bare, v));
        }
        Ok(out)
    }

    fn put(&mut self, slot: u32, key: &K::Bare, value: &V) -> Result<()> {
        Ok(self.0.insert(K::with_slot(slot, key), value, 0)?)
    }

    fn delete(&mut self, slot: u32, key: &K::Bare) -> Result<()> {
        ignore_missing(self.0.remove(&K::with_slot(slot, key)))
    }
}

/// An LPM trie with slotted keys; the bare key includes the prefix length
/// of the address part.
pub struct SlotLpm<K, V>(pub LpmTrie<MapData, K, V>);

/// Converts between a slot-free (key, prefix) and an LPM key.
pub trait SlotLpmKey: Pod {
    type Bare: Ord + Clone + Debug;
    fn with_slot(slot: u32, bare: &Self::Bare) -> Key<Self>;
    fn split(key: &Key<Self>) -> (u32, Self::Bare);
}

impl<K, V> SlotStore for SlotLpm<K, V>
where
    K: SlotLpmKey,
    V: Pod + PartialEq + Debug,
{
    type K = K::Bare;
    type V = V;

    fn read_all(&self) -> Result<SlotEntries<K::Bare, V>> {
        let mut out = Vec::new();
        for item in self.0.iter() {
            let (k, v) = item?;
            let (slot, bare) = K::split(&k);
            out.push((slot, bare, v));
        }
        Ok(out)
    }

    fn put(&mut self, slot: u32, key: &K::Bare, value: &V) -> Result<()> {
        Ok(self.0.insert(&K::with_slot(slot, key), value, 0)?)
    }

    fn delete(&mut self, slot: u32, key: &K::Bare) -> Result<()> {
        ignore_missing(self.0.remove(&K::with_slot(slot, key)))
    }
}

/// Deleting what is already gone is success: the goal is absence.
fn ignore_missing(r: Result<(), MapError>) -> Result<()> {
    match r {
        Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
