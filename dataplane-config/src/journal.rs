//! Containers that remember how to undo what was done to them since the
//! last commit.
//!
//! A change is staged by mutating the store and the compiled state in
//! place; if anything in it is refused (a cross-object check, a map that
//! would overflow, a failed map write) every container is rolled back,
//! and a refused change leaves nothing behind. Undoing costs what the change
//! cost, never a copy of the whole state, which is what keeps a one-port
//! change small in a configuration of 100,000 ports.
//!
//! The keys a container's journal holds are also the keys that changed
//! since the last commit: the datapath writes exactly those to the kernel.

use std::{
    collections::{BTreeMap, BTreeSet, btree_map},
    ops::RangeBounds,
};

/// A map with an undo journal.
#[derive(Clone, Debug)]
pub struct Journaled<K: Ord + Clone, V: Clone> {
    map: BTreeMap<K, V>,
    /// (key, value before the first change since the last commit).
    undo: Vec<(K, Option<V>)>,
    /// Keys already in `undo`: only the first change of a key is recorded.
    touched: BTreeSet<K>,
}

impl<K: Ord + Clone, V: Clone> Default for Journaled<K, V> {
    fn default() -> Self {
        Journaled {
            map: BTreeMap::new(),
            undo: Vec::new(),
            touched: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone, V: Clone> Journaled<K, V> {
    fn record(&mut self, key: &K) {
        if self.touched.insert(key.clone()) {
            self.undo.push((key.clone(), self.map.get(key).cloned()));
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.record(&key);
        self.map.insert(key, value)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        if !self.map.contains_key(key) {
            return None;
        }
        self.record(key);
        self.map.remove(key)
    }

    /// Changes a value in place (`None`: absent), journaled.
    pub fn update<R>(&mut self, key: &K, f: impl FnOnce(&mut Option<V>) -> R) -> R {
        self.record(key);
        let mut value = self.map.remove(key);
        let r = f(&mut value);
        if let Some(v) = value {
            self.map.insert(key.clone(), v);
        }
        r
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> btree_map::Iter<'_, K, V> {
        self.map.iter()
    }

    pub fn keys(&self) -> btree_map::Keys<'_, K, V> {
        self.map.keys()
    }

    pub fn values(&self) -> btree_map::Values<'_, K, V> {
        self.map.values()
    }

    pub fn range<R: RangeBounds<K>>(&self, range: R) -> btree_map::Range<'_, K, V> {
        self.map.range(range)
    }

    /// The whole map, read-only.
    pub fn map(&self) -> &BTreeMap<K, V> {
        &self.map
    }

    /// The value of `key` at the last commit.
    pub fn before(&self, key: &K) -> Option<V> {
        match self.undo.iter().find(|(k, _)| k == key) {
            Some((_, old)) => old.clone(),
            None => self.map.get(key).cloned(),
        }
    }

    /// Keys changed since the last commit (some may have changed back).
    pub fn changed(&self) -> impl Iterator<Item = &K> {
        self.undo.iter().map(|(k, _)| k)
    }

    pub fn has_changes(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Forgets the journal: what was done stays.
    pub fn commit(&mut self) {
        self.undo.clear();
        self.touched.clear();
    }

    /// Undoes everything since the last commit; returns the keys that
    /// were restored.
    pub fn rollback(&mut self) -> Vec<K> {
        let mut keys = Vec::with_capacity(self.undo.len());
        for (k, old) in self.undo.drain(..).rev() {
            match old {
                Some(v) => {
                    self.map.insert(k.clone(), v);
                }
                None => {
                    self.map.remove(&k);
                }
            }
            keys.push(k);
        }
        self.touched.clear();
        keys
    }
}

/// A set with an undo journal: a [`Journaled`] map to `()`. Reverse
/// indexes are sets of (owner, member) pairs, so that one member joining
/// or leaving records one key, not a copy of the owner's whole set.
pub type JSet<K> = Journaled<K, ()>;

impl<K: Ord + Clone> Journaled<K, ()> {
    pub fn add(&mut self, key: K) -> bool {
        if self.map.contains_key(&key) {
            return false;
        }
        self.insert(key, ());
        true
    }

    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }
}

/// One value with an undo journal.
#[derive(Clone, Debug, Default)]
pub struct JCell<T: Clone> {
    value: T,
    before: Option<T>,
}

impl<T: Clone> JCell<T> {
    pub fn new(value: T) -> Self {
        JCell {
            value,
            before: None,
        }
    }

    pub fn get(&self) -> &T {
        &self.value
    }

    pub fn set(&mut self, value: T) {
        if self.before.is_none() {
            self.before = Some(self.value.clone());
        }
        self.value = value;
    }

    pub fn commit(&mut self) {
        self.before = None;
    }

    pub fn rollback(&mut self) {
        if let Some(v) = self.before.take() {
            self.value = v;
        }
    }
}

/// The members of `owner` in a set of (owner, member) pairs.
pub fn members<'a, A: Ord + Clone, B: Ord + Clone + MinValue>(
    set: &'a JSet<(A, B)>,
    owner: &'a A,
) -> impl Iterator<Item = &'a B> + 'a {
    set.range((owner.clone(), B::min_value())..)
        .take_while(move |((a, _), _)| a == owner)
        .map(|((_, b), _)| b)
}

/// The smallest value of a type, to start a range scan at.
pub trait MinValue {
    fn min_value() -> Self;
}

impl MinValue for String {
    fn min_value() -> Self {
        String::new()
    }
}

impl MinValue for u32 {
    fn min_value() -> Self {
        0
    }
}

impl MinValue for ipnet::IpNet {
    fn min_value() -> Self {
        ipnet::IpNet::V4(ipnet::Ipv4Net::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_every_key_as_it_was_at_the_last_commit() {
        let mut j: Journaled<u32, &str> = Journaled::default();
        j.insert(1, "a");
        j.insert(2, "b");
        j.commit();
        j.insert(1, "x");
        j.insert(1, "y");
        j.remove(&2);
        j.insert(3, "c");
        j.update(&4, |v| *v = Some("d"));
        let mut changed: Vec<u32> = j.changed().copied().collect();
        changed.sort();
        assert_eq!(changed, [1, 2, 3, 4]);
        j.rollback();
        assert_eq!(
            j.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
            [(1, "a"), (2, "b")]
        );
        assert!(!j.has_changes());
    }

    #[test]
    fn members_of_an_owner_only() {
        let mut s: JSet<(String, u32)> = JSet::default();
        for (a, b) in [("n1", 3), ("n1", 1), ("n2", 2), ("n", 9)] {
            s.add((a.to_string(), b));
        }
        let n1 = "n1".to_string();
        assert_eq!(members(&s, &n1).copied().collect::<Vec<_>>(), [1, 3]);
    }

    #[test]
    fn a_cell_rolls_back_to_its_committed_value() {
        let mut c = JCell::new(5);
        c.set(6);
        c.set(7);
        c.rollback();
        assert_eq!(*c.get(), 5);
        c.set(8);
        c.commit();
        c.rollback();
        assert_eq!(*c.get(), 8);
    }
}
