//! What the datapath's maps should hold: the compiler keeps it up to date
//! change by change, and the agent writes what changed.
//!
//! [`SlottedMaps`] has one journaled map per slotted map of
//! `common::pinned_maps!` (same field names as the agent's map handles),
//! keyed by the map's own key type with slot 0: the agent puts the slot in
//! when it writes. The journal of each map holds exactly the keys that
//! changed since the last commit.

use std::collections::BTreeSet;

use common::{GroupMeta, LpmKey, PortMeta, SgMeta};

use crate::journal::{JSet, Journaled};

macro_rules! slotted_maps {
    (@acc [$($out:tt)*]) => {
        /// The desired contents of every slotted map.
        #[derive(Debug, Default)]
        pub struct SlottedMaps { $($out)* }
    };
    (@acc [$($out:tt)*] $(#[$doc:meta])* $name:ident $field:ident : slot_hash < $k:ty, $v:ty > = $size:expr ; $($rest:tt)*) => {
        slotted_maps!(@acc [$($out)* $(#[$doc])* pub $field: Journaled<$k, $v>,] $($rest)*);
    };
    (@acc [$($out:tt)*] $(#[$doc:meta])* $name:ident $field:ident : slot_lpm < $k:ty, $v:ty > = $size:expr ; $($rest:tt)*) => {
        slotted_maps!(@acc [$($out)* $(#[$doc])* pub $field: Journaled<LpmKey<$k>, $v>,] $($rest)*);
    };
    (@acc [$($out:tt)*] $(#[$doc:meta])* $name:ident $field:ident : $kind:ident < $k:ty, $v:ty > = $size:expr ; $($rest:tt)*) => {
        slotted_maps!(@acc [$($out)*] $($rest)*);
    };
    ($($all:tt)*) => { slotted_maps!(@acc [] $($all)*); };
}
common::pinned_maps!(slotted_maps);

macro_rules! each_slotted {
    ($( $(#[$doc:meta])* $name:ident $field:ident : $kind:ident < $k:ty, $v:ty > = $size:expr ; )*) => {
        impl SlottedMaps {
            fn commit(&mut self) {
                $( each_slotted!(@one $kind self.$field.commit()); )*
            }
            fn rollback(&mut self) {
                $( each_slotted!(@one $kind { self.$field.rollback(); }); )*
            }
            fn dump(&self, out: &mut Vec<String>) {
                $( each_slotted!(@one $kind out.push(format!("{}: {:?}", stringify!($name), self.$field.map()))); )*
            }
            /// Entries of every slotted map, by map name.
            pub fn sizes(&self) -> Vec<(&'static str, usize)> {
                let mut out = Vec::new();
                $( each_slotted!(@one $kind out.push((stringify!($name), self.$field.len()))); )*
                out
            }
        }
    };
    (@one slot_hash $e:expr) => { $e };
    (@one slot_lpm $e:expr) => { $e };
    (@one $other:ident $e:expr) => { () };
}
common::pinned_maps!(each_slotted);

/// Everything the maps should hold.
#[derive(Debug, Default)]
pub struct Desired {
    pub slotted: SlottedMaps,
    /// Port index -> id and tap (`PORT_META`).
    pub port_meta: Journaled<u32, PortMeta>,
    /// Port index -> ifindex of its tap (`TX_PORTS`).
    pub tx_ports: Journaled<u32, u32>,
    /// Flood domains (`FLOOD`, one device map per domain and slot).
    pub flood: Flood,
    /// Group index -> name (`GROUP_META`; a new name resets `GROUP_STATE`).
    pub group_meta: Journaled<u32, GroupMeta>,
    /// Security-group index -> id (`SG_META`; a new id resets `SG_STATS`).
    pub sg_meta: Journaled<u32, SgMeta>,
    /// Group index -> the member the database says is active: the agent
    /// makes it the group's active member (`GROUP_STATE`) when this
    /// changes, and the datapath's own learning goes on from there.
    pub group_active: Journaled<u32, u32>,
}

impl Desired {
    pub fn commit(&mut self) {
        self.slotted.commit();
        self.port_meta.commit();
        self.tx_ports.commit();
        self.flood.commit();
        self.group_meta.commit();
        self.sg_meta.commit();
        self.group_active.commit();
    }

    pub fn rollback(&mut self) {
        self.slotted.rollback();
        self.port_meta.rollback();
        self.tx_ports.rollback();
        self.flood.rollback();
        self.group_meta.rollback();
        self.sg_meta.rollback();
        self.group_active.rollback();
    }

    /// Every map's contents as text, one line per map (to compare two
    /// compilations).
    pub fn dump(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.slotted.dump(&mut out);
        out.push(format!("PORT_META: {:?}", self.port_meta.map()));
        out.push(format!("TX_PORTS: {:?}", self.tx_ports.map()));
        out.push(format!("FLOOD: {}", self.flood.dump()));
        out.push(format!("GROUP_META: {:?}", self.group_meta.map()));
        out.push(format!("SG_META: {:?}", self.sg_meta.map()));
        out.push(format!("active: {:?}", self.group_active.map()));
        out
    }

    /// The member the database named for group `g` before this change.
    pub fn group_active_before(&self, g: u32) -> Option<u32> {
        self.group_active.before(&g)
    }

    /// The ports of a flood domain.
    pub fn flood_members(&self, domain: u32) -> impl Iterator<Item = u32> + '_ {
        self.flood.members(domain)
    }
}

/// The ports of each flood domain: a network's ports, and a group's
/// members from `FLOOD_DOMAIN_GROUP_BASE`; and the domains of each port, so
/// that a port whose tap changes can be followed into all of them.
#[derive(Debug, Default)]
pub struct Flood {
    /// (domain, port)
    by_domain: JSet<(u32, u32)>,
    /// (port, domain)
    by_port: JSet<(u32, u32)>,
}

impl Flood {
    pub fn add(&mut self, domain: u32, port: u32) {
        self.by_domain.add((domain, port));
        self.by_port.add((port, domain));
    }

    pub fn remove(&mut self, domain: u32, port: u32) {
        self.by_domain.remove(&(domain, port));
        self.by_port.remove(&(port, domain));
    }

    pub fn members(&self, domain: u32) -> impl Iterator<Item = u32> + '_ {
        self.by_domain
            .range((domain, 0)..=(domain, u32::MAX))
            .map(|((_, port), _)| *port)
    }

    pub fn domains_of(&self, port: u32) -> impl Iterator<Item = u32> + '_ {
        self.by_port
            .range((port, 0)..=(port, u32::MAX))
            .map(|((_, domain), _)| *domain)
    }

    /// Domains whose members changed since the last commit.
    pub fn changed_domains(&self) -> BTreeSet<u32> {
        self.by_domain
            .changed()
            .map(|(domain, _)| *domain)
            .collect()
    }

    /// Every domain and its number of ports.
    pub fn sizes(&self) -> std::collections::BTreeMap<u32, usize> {
        let mut out = std::collections::BTreeMap::new();
        for ((domain, _), _) in self.by_domain.iter() {
            *out.entry(*domain).or_insert(0) += 1;
        }
        out
    }

    pub fn commit(&mut self) {
        self.by_domain.commit();
        self.by_port.commit();
    }

    pub fn rollback(&mut self) {
        self.by_domain.rollback();
        self.by_port.rollback();
    }

    pub fn dump(&self) -> String {
        format!("{:?}", self.by_domain.map())
    }
}
