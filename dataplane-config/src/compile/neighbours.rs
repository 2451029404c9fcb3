//! Who owns each MAC and address of a network, and what follows from it,
//! settled only for the keys a change touched:
//!
//! - one owner: the L2 (`FDB`) or L3 (`NEIGH_*`) entry points at the port;
//! - several owners: the MAC or address is a *group* (stable index by name)
//!   with its members, a flood set, and the owners' entries marked
//!   `ADDR_F_SHARED` so that the datapath records their claims;
//! - a router interface's MAC or address overrides the ports' entry (the
//!   network's gateway is the router's).

use std::collections::{BTreeMap, BTreeSet};

use common::{
    ADDR_F_FIXED, FLOOD_DOMAIN_GROUP_BASE, FdbEntry, FdbKey, GroupMember, GroupMemberKey,
    GroupMeta, LpmKey, NEIGH_F_HOST, NEIGH_PREFIX_BITS, Neigh, NeighV4Key, NeighV6Key,
    TARGET_GROUP, TARGET_PORT,
};

use super::{
    CompileError, Engine, copy_str,
    entries::{Addr, mac_key, put, set_flood, shared, v4_key, v6_key},
};
use crate::{journal::Journaled, neutron::MacAddr};

/// (network index, address, prefix length).
pub type NetAddr<const N: usize> = (u32, [u8; N], u8);

/// The owners of each address (or prefix) of each network: port index ->
/// the MACs it binds the address to, with their origin flags.
#[derive(Debug, Default)]
pub struct AddrOwners<const N: usize> {
    owners: Journaled<NetAddr<N>, BTreeMap<u32, BTreeMap<[u8; 6], u32>>>,
    /// Router interface addresses (override the ports').
    pub routers: Journaled<NetAddr<N>, Neigh>,
    dirty: BTreeSet<NetAddr<N>>,
}

impl<const N: usize> AddrOwners<N> {
    pub fn add(&mut self, net: u32, (mac, addr, plen): Addr<N>, port: u32, flags: u32) {
        let key = (net, addr, plen);
        self.owners.update(&key, |o| {
            o.get_or_insert_default()
                .entry(port)
                .or_default()
                .insert(mac, flags);
        });
        self.dirty.insert(key);
    }

    pub fn remove(&mut self, net: u32, (mac, addr, plen): Addr<N>, port: u32) {
        let key = (net, addr, plen);
        self.owners.update(&key, |o| {
            if let Some(owners) = o {
                if let Some(macs) = owners.get_mut(&port) {
                    macs.remove(&mac);
                    if macs.is_empty() {
                        owners.remove(&port);
                    }
                }
                if owners.is_empty() {
                    *o = None;
                }
            }
        });
        self.dirty.insert(key);
    }

    pub fn set_router(&mut self, key: NetAddr<N>, entry: Option<Neigh>) {
        match entry {
            Some(n) => self.routers.insert(key, n),
            None => self.routers.remove(&key),
        };
        self.dirty.insert(key);
    }

    fn commit(&mut self) {
        self.owners.commit();
        self.routers.commit();
        self.dirty.clear();
    }

    fn rollback(&mut self) {
        self.owners.rollback();
        self.routers.rollback();
        self.dirty.clear();
    }
}

#[derive(Debug, Default)]
pub struct Owners {
    /// (network, MAC) -> ports using it.
    macs: Journaled<(u32, [u8; 6]), BTreeSet<u32>>,
    /// Router interface MACs (override the ports').
    pub router_macs: Journaled<(u32, [u8; 6]), FdbEntry>,
    dirty_macs: BTreeSet<(u32, [u8; 6])>,
    pub v4: AddrOwners<4>,
    pub v6: AddrOwners<16>,
}

impl Owners {
    pub fn add_mac(&mut self, net: u32, mac: [u8; 6], port: u32) {
        self.macs
            .update(&(net, mac), |o| o.get_or_insert_default().insert(port));
        self.dirty_macs.insert((net, mac));
    }

    pub fn remove_mac(&mut self, net: u32, mac: [u8; 6], port: u32) {
        self.macs.update(&(net, mac), |o| {
            if let Some(set) = o {
                set.remove(&port);
                if set.is_empty() {
                    *o = None;
                }
            }
        });
        self.dirty_macs.insert((net, mac));
    }

    pub fn set_router_mac(&mut self, key: (u32, [u8; 6]), entry: Option<FdbEntry>) {
        match entry {
            Some(e) => self.router_macs.insert(key, e),
            None => self.router_macs.remove(&key),
        };
        self.dirty_macs.insert(key);
    }

    pub fn commit(&mut self) {
        self.macs.commit();
        self.router_macs.commit();
        self.dirty_macs.clear();
        self.v4.commit();
        self.v6.commit();
    }

    pub fn rollback(&mut self) {
        self.macs.rollback();
        self.router_macs.rollback();
        self.dirty_macs.clear();
        self.v4.rollback();
        self.v6.rollback();
    }
}

/// Settles every key a change touched.
pub fn settle(e: &mut Engine) -> Result<(), CompileError> {
    for key in std::mem::take(&mut e.owners.dirty_macs) {
        settle_mac(e, key)?;
    }
    for key in std::mem::take(&mut e.owners.v4.dirty) {
        settle_v4(e, key)?;
    }
    for key in std::mem::take(&mut e.owners.v6.dirty) {
        settle_v6(e, key)?;
    }
    Ok(())
}

fn network_id(e: &Engine, net: u32) -> String {
    e.ix.networks.id_of(net).cloned().unwrap_or_default()
}

fn settle_mac(e: &mut Engine, (net, mac): (u32, [u8; 6])) -> Result<(), CompileError> {
    let owners: Vec<u32> = e
        .owners
        .macs
        .get(&(net, mac))
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default();
    let name = format!("{} {}", network_id(e, net), MacAddr(mac));
    let members: BTreeMap<u32, [u8; 6]> = owners.iter().map(|&p| (p, mac)).collect();
    let group = set_group(e, &name, &members)?;
    for &p in &owners {
        shared(
            &mut e.desired.slotted.port_macs,
            mac_key(p, mac),
            group.is_some(),
            |v| &mut v.flags,
        );
    }
    let key = FdbKey {
        slot: 0,
        network: net,
        mac,
        _pad: [0; 2],
    };
    let entry = match (e.owners.router_macs.get(&(net, mac)), group, owners.first()) {
        (Some(r), _, _) => Some(*r),
        (None, Some(g), _) => Some(FdbEntry {
            kind: TARGET_GROUP,
            target: g,
        }),
        (None, None, Some(&p)) => Some(FdbEntry {
            kind: TARGET_PORT,
            target: p,
        }),
        (None, None, None) => None,
    };
    put(&mut e.desired.slotted.fdb, key, entry);
    Ok(())
}

/// The MAC a port uses for an address: the one its fixed IP binds, else
/// the lowest.
fn chosen_mac(macs: &BTreeMap<[u8; 6], u32>) -> [u8; 6] {
    macs.iter()
        .find(|(_, f)| **f & ADDR_F_FIXED != 0)
        .or_else(|| macs.iter().next())
        .map(|(m, _)| *m)
        .unwrap_or_default()
}

/// What an address's owners make of its L3 entry and group; the caller
/// writes the entry.
fn settle_addr<const N: usize>(
    e: &mut Engine,
    owners: &BTreeMap<u32, BTreeMap<[u8; 6], u32>>,
    (net, addr, plen): NetAddr<N>,
    text: String,
) -> Result<(Option<u32>, Option<Neigh>), CompileError> {
    let name = format!("{} {text}/{plen}", network_id(e, net));
    let members: BTreeMap<u32, [u8; 6]> = owners
        .iter()
        .map(|(&p, macs)| (p, chosen_mac(macs)))
        .collect();
    let group = set_group(e, &name, &members)?;
    let flags = if usize::from(plen) == N * 8 {
        NEIGH_F_HOST
    } else {
        0
    };
    let entry = match (group, members.iter().next()) {
        (Some(g), _) => Some(Neigh {
            kind: TARGET_GROUP,
            target: g,
            mac: [0; 6],
            flags,
        }),
        (None, Some((&p, &mac))) => Some(Neigh {
            kind: TARGET_PORT,
            target: p,
            mac,
            flags,
        }),
        (None, None) => None,
    };
    let _ = addr;
    Ok((group, entry))
}

fn settle_v4(e: &mut Engine, key: NetAddr<4>) -> Result<(), CompileError> {
    let owners = e.owners.v4.owners.get(&key).cloned().unwrap_or_default();
    let text = std::net::Ipv4Addr::from(key.1).to_string();
    let (group, entry) = settle_addr(e, &owners, key, text)?;
    for (&p, macs) in &owners {
        for &mac in macs.keys() {
            let k = v4_key(p, (mac, key.1, key.2));
            shared(&mut e.desired.slotted.addrs_v4, k, group.is_some(), |v| {
                &mut v.flags
            });
        }
    }
    let entry = e.owners.v4.routers.get(&key).copied().or(entry);
    let (net, addr, plen) = key;
    let k = LpmKey {
        prefix_len: NEIGH_PREFIX_BITS + u32::from(plen),
        data: NeighV4Key {
            slot: 0,
            network: net,
            addr,
        },
    };
    put(&mut e.desired.slotted.neigh_v4, k, entry);
    Ok(())
}

fn settle_v6(e: &mut Engine, key: NetAddr<16>) -> Result<(), CompileError> {
    let owners = e.owners.v6.owners.get(&key).cloned().unwrap_or_default();
    let text = std::net::Ipv6Addr::from(key.1).to_string();
    let (group, entry) = settle_addr(e, &owners, key, text)?;
    for (&p, macs) in &owners {
        for &mac in macs.keys() {
            let k = v6_key(p, (mac, key.1, key.2));
            shared(&mut e.desired.slotted.addrs_v6, k, group.is_some(), |v| {
                &mut v.flags
            });
        }
    }
    let entry = e.owners.v6.routers.get(&key).copied().or(entry);
    let (net, addr, plen) = key;
    let k = LpmKey {
        prefix_len: NEIGH_PREFIX_BITS + u32::from(plen),
        data: NeighV6Key {
            slot: 0,
            network: net,
            addr,
        },
    };
    put(&mut e.desired.slotted.neigh_v6, k, entry);
    Ok(())
}

/// Makes the group `name` hold exactly `members` (port -> the MAC it uses)
/// if there are two or more, or removes it; returns its index.
fn set_group(
    e: &mut Engine,
    name: &str,
    members: &BTreeMap<u32, [u8; 6]>,
) -> Result<Option<u32>, CompileError> {
    if members.len() < 2 {
        if let Some(g) = e.ix.groups.unassign(name) {
            sync_group(e, g, &BTreeMap::new());
            e.desired.group_meta.remove(&g);
        }
        return Ok(None);
    }
    let g = e.ix.groups.assign(name)?;
    let meta = GroupMeta {
        name: copy_str(name),
    };
    if e.desired.group_meta.get(&g) != Some(&meta) {
        e.desired.group_meta.insert(g, meta);
    }
    sync_group(e, g, members);
    Ok(Some(g))
}

/// Members and flood set of group `g`.
fn sync_group(e: &mut Engine, g: u32, members: &BTreeMap<u32, [u8; 6]>) {
    let d = &mut e.desired;
    let key = |port| GroupMemberKey {
        slot: 0,
        group: g,
        port,
    };
    let stale: Vec<u32> = d
        .slotted
        .group_members
        .range(key(0)..=key(u32::MAX))
        .map(|(k, _)| k.port)
        .filter(|p| !members.contains_key(p))
        .collect();
    for p in stale {
        d.slotted.group_members.remove(&key(p));
    }
    for (&p, &mac) in members {
        let m = GroupMember { mac, _pad: [0; 2] };
        if d.slotted.group_members.get(&key(p)) != Some(&m) {
            d.slotted.group_members.insert(key(p), m);
        }
    }
    let domain = FLOOD_DOMAIN_GROUP_BASE + g;
    set_flood(&mut e.members, domain, members.keys().copied().collect());
}
