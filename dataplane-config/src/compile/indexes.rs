//! Stable small indexes for objects named by strings (port ids, network
//! ids, group names). An object keeps its index for as long as it exists,
//! because counters and state in the maps are keyed by it. A released
//! index is held back ("quarantined") until the agent says nothing in the
//! kernel refers to it any more (after the change is live and, for ports,
//! once their connections are flushed); then the lowest free index is
//! handed out first.

use crate::journal::{JCell, JSet, Journaled};

#[derive(Debug)]
pub struct Indexes {
    what: &'static str,
    by_id: Journaled<String, u32>,
    by_index: Journaled<u32, String>,
    free: JSet<u32>,
    quarantine: JSet<u32>,
    /// The lowest index never handed out.
    next: JCell<u32>,
    /// The largest index that may be handed out.
    max: u32,
    /// Set in every index handed out (CIDR identities).
    tag: u32,
}

/// No index left: the datapath was sized for fewer objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too many {what}: the datapath was sized for {max} (raise the limit with --max-ports)")]
pub struct Exhausted {
    pub what: &'static str,
    pub max: u32,
}

impl Indexes {
    pub fn new(what: &'static str, max: u32) -> Indexes {
        Self::tagged(what, max, 0)
    }

    pub fn tagged(what: &'static str, max: u32, tag: u32) -> Indexes {
        Indexes {
            what,
            by_id: Journaled::default(),
            by_index: Journaled::default(),
            free: JSet::default(),
            quarantine: JSet::default(),
            next: JCell::new(1),
            max,
            tag,
        }
    }

    pub fn get(&self, id: &str) -> Option<u32> {
        self.by_id.get(&id.to_string()).map(|i| i | self.tag)
    }

    /// The id holding `index`.
    pub fn id_of(&self, index: u32) -> Option<&String> {
        self.by_index.get(&(index & !self.tag))
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, u32)> {
        self.by_id.iter().map(|(id, i)| (id, i | self.tag))
    }

    /// `id`'s index, handing out one if it has none.
    pub fn assign(&mut self, id: &str) -> Result<u32, Exhausted> {
        if let Some(i) = self.get(id) {
            return Ok(i);
        }
        let index = match self.free.keys().next().copied() {
            Some(i) => {
                self.free.remove(&i);
                i
            }
            None => {
                let i = *self.next.get();
                if i > self.max {
                    return Err(Exhausted {
                        what: self.what,
                        max: self.max,
                    });
                }
                self.next.set(i + 1);
                i
            }
        };
        self.by_id.insert(id.to_string(), index);
        self.by_index.insert(index, id.to_string());
        Ok(index | self.tag)
    }

    /// Takes `id`'s index from it; it stays unused until released.
    pub fn unassign(&mut self, id: &str) -> Option<u32> {
        let i = self.by_id.remove(&id.to_string())?;
        self.by_index.remove(&i);
        self.quarantine.add(i);
        Some(i | self.tag)
    }

    /// Indexes taken from their objects and not yet reusable.
    pub fn quarantined(&self) -> impl Iterator<Item = u32> + '_ {
        self.quarantine.keys().map(|i| i | self.tag)
    }

    /// Makes a quarantined index reusable.
    pub fn release(&mut self, index: u32) {
        let i = index & !self.tag;
        if self.quarantine.remove(&i).is_some() {
            self.free.add(i);
        }
    }

    /// Holds `index` back although no object has it (a previous run left
    /// state behind under it that must be cleaned first).
    pub fn reserve(&mut self, index: u32) {
        let i = index & !self.tag;
        if i == 0 || i > self.max || self.by_index.contains_key(&i) {
            return;
        }
        let next = *self.next.get();
        for f in next..i {
            self.free.add(f);
        }
        if i >= next {
            self.next.set(i + 1);
        }
        self.free.remove(&i);
        self.quarantine.add(i);
    }

    /// Takes over an index a previous run gave `id` (restart): it keeps it.
    pub fn adopt(&mut self, id: &str, index: u32) {
        let i = index & !self.tag;
        if i == 0 || i > self.max || self.get(id).is_some() {
            return;
        }
        if self.by_index.contains_key(&i) {
            return;
        }
        self.by_id.insert(id.to_string(), i);
        self.by_index.insert(i, id.to_string());
        self.free.remove(&i);
        let next = *self.next.get();
        for f in next..i {
            self.free.add(f);
        }
        if i >= next {
            self.next.set(i + 1);
        }
    }

    pub fn commit(&mut self) {
        self.by_id.commit();
        self.by_index.commit();
        self.free.commit();
        self.quarantine.commit();
        self.next.commit();
    }

    pub fn rollback(&mut self) {
        self.by_id.rollback();
        self.by_index.rollback();
        self.free.rollback();
        self.quarantine.rollback();
        self.next.rollback();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_stable_and_reused_only_once_released() {
        let mut ix = Indexes::new("ports", 3);
        assert_eq!(["a", "b", "c"].map(|id| ix.assign(id).unwrap()), [1, 2, 3]);
        assert_eq!(ix.unassign("b"), Some(2));
        assert!(ix.assign("d").is_err(), "2 is quarantined");
        ix.release(2);
        assert_eq!(ix.assign("d").unwrap(), 2);
        assert_eq!(ix.assign("a").unwrap(), 1);
    }

    #[test]
    fn rollback_gives_back_what_was_handed_out() {
        let mut ix = Indexes::new("ports", 10);
        ix.assign("a").unwrap();
        ix.commit();
        ix.assign("b").unwrap();
        ix.unassign("a");
        ix.rollback();
        assert_eq!(ix.get("a"), Some(1));
        assert_eq!(ix.get("b"), None);
        assert_eq!(ix.assign("c").unwrap(), 2);
    }

    #[test]
    fn adopted_indexes_leave_the_gaps_free() {
        let mut ix = Indexes::tagged("identities", 100, 1 << 31);
        ix.adopt("x", 3 | 1 << 31);
        assert_eq!(ix.get("x"), Some(3 | 1 << 31));
        assert_eq!(ix.assign("y").unwrap(), 1 | 1 << 31);
        assert_eq!(ix.assign("z").unwrap(), 2 | 1 << 31);
        assert_eq!(ix.assign("w").unwrap(), 4 | 1 << 31);
    }
}
