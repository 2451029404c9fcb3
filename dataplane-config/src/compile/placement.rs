//! Where each port is, from this host's point of view, and what follows:
//! a local port is reached through its tap, a port on another live chassis
//! through the tunnel (`REMOTE_PORTS`), a port bound nowhere live not at
//! all. Flood domains are kept twice: the *logical* members (every port of
//! a network or group, wherever it is) and the *physical* flood set this
//! host sends to (its local members, and the tunnel once if any member is
//! remote, with the chassis to replicate to in `REMOTE_FLOOD`). The
//! chassis this host accepts tunnelled frames from (`CHASSIS`) and the
//! networks by VNI (`VNIS`) are compiled here too.

use std::collections::{BTreeMap, BTreeSet};

use common::{
    Chassis, ChassisKey, FLOOD_DOMAIN_GROUP_BASE, FloodKey, MAX_FLOOD_CHASSIS, RemoteFlood, VniKey,
    VniNetwork,
};

use super::{CompileError, Engine, copy_str, entries::set_flood};
use crate::{
    objects::Port,
    store::{Store, Touched},
};

/// The id under which the tunnel pseudo port gets its index (counters,
/// flood-set entry); no Neutron port id has parentheses.
pub const TUNNEL_PORT_ID: &str = "(tunnel)";

/// What this host is, for placing ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locality {
    /// This host's chassis name. None: one host, every port is local.
    pub chassis: Option<String>,
    /// The interface remote destinations are redirected to, once the
    /// tunnel is set up.
    pub tunnel_ifindex: Option<u32>,
    /// This host's uplinks (`dataplane run --uplink PHYSNET=IFNAME`): the
    /// interface index that reaches each physical network. An external
    /// network whose `provider:physical_network` is here is reached
    /// through it (`GATEWAYS`, `UPLINKS`).
    pub uplinks: BTreeMap<String, u32>,
}

/// Where a port is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// On this host, behind its tap (None while the tap does not exist).
    Local(Option<u32>),
    /// On another live chassis: reached through the tunnel.
    Remote { chassis: u32, ip: [u8; 4], vni: u32 },
    /// Bound to no live chassis, or on a network that does not span hosts:
    /// known (its addresses, its groups) but not reachable from here.
    Unreachable,
}

/// Where `port` is; `tap` resolves a local port's tap.
pub fn place(e: &Engine, store: &Store, port: &Port, tap: &dyn Fn(&str) -> Option<u32>) -> Place {
    let Some(me) = &e.locality.chassis else {
        return Place::Local(tap(&port.spec.tap));
    };
    match &port.spec.host {
        Some(h) if h == me => Place::Local(tap(&port.spec.tap)),
        Some(h) => {
            let chassis = store.chassis().get(h);
            let vni = store
                .networks()
                .get(&port.spec.network_id)
                .and_then(|n| n.vni);
            match (chassis, vni, e.ix.chassis.get(h), e.locality.tunnel_ifindex) {
                (Some(c), Some(vni), Some(index), Some(_)) => Place::Remote {
                    chassis: index,
                    ip: c.underlay_ip.octets(),
                    vni,
                },
                _ => Place::Unreachable,
            }
        }
        None => Place::Unreachable,
    }
}

/// Chassis and networks by VNI, for what `touched` changed.
pub fn chassis_and_vnis(
    e: &mut Engine,
    store: &Store,
    touched: &Touched,
) -> Result<(), CompileError> {
    for name in &touched.chassis {
        if let Some(old) = e.chassis_ips.remove(name) {
            e.desired
                .slotted
                .chassis
                .remove(&ChassisKey { slot: 0, ip: old });
        }
        match store.chassis().get(name) {
            Some(c) => {
                let index = e.ix.chassis.assign(name)?;
                let ip = c.underlay_ip.octets();
                let value = Chassis {
                    index,
                    name: copy_str(name),
                };
                e.desired
                    .slotted
                    .chassis
                    .insert(ChassisKey { slot: 0, ip }, value);
                e.chassis_ips.insert(name.clone(), ip);
            }
            None => {
                e.ix.chassis.unassign(name);
            }
        }
    }
    for id in &touched.networks {
        let index = e.ix.networks.get(id);
        let old = index.and_then(|i| e.net_vni.get(&i).copied());
        let now = store.networks().get(id).and_then(|n| n.vni);
        if old == now {
            continue;
        }
        if let Some(vni) = old {
            e.desired.slotted.vnis.remove(&VniKey { slot: 0, vni });
        }
        if let Some(i) = index {
            match now {
                Some(vni) => {
                    e.net_vni.insert(i, vni);
                    e.desired
                        .slotted
                        .vnis
                        .insert(VniKey { slot: 0, vni }, VniNetwork { network: i });
                }
                None => {
                    e.net_vni.remove(&i);
                }
            }
        }
    }
    Ok(())
}

/// The physical flood sets (and the chassis they replicate to) of every
/// domain whose logical members, or whose members' places, changed.
pub fn flood_sets(e: &mut Engine) -> Result<(), CompileError> {
    let mut domains = std::mem::take(&mut e.dirty_domains);
    domains.extend(e.members.changed_domains());
    let tunnel = e.ix.ports.get(TUNNEL_PORT_ID);
    for domain in domains {
        let mut local = BTreeSet::new();
        let mut remote: BTreeMap<[u8; 4], u32> = BTreeMap::new();
        for p in e.members.members(domain) {
            let Some(id) = e.ix.ports.id_of(p) else {
                continue;
            };
            match e.ports.get(id).map(|r| r.place) {
                Some(Place::Local(Some(_))) => {
                    local.insert(p);
                }
                Some(Place::Remote { ip, vni, .. }) => {
                    remote.insert(ip, vni);
                }
                _ => {}
            }
        }
        if remote.len() > MAX_FLOOD_CHASSIS {
            return Err(CompileError::TooManyChassis {
                domain: domain_name(e, domain),
                chassis: remote.len(),
            });
        }
        let key = FloodKey { slot: 0, domain };
        match (tunnel, remote.values().next().copied()) {
            (Some(t), Some(vni)) => {
                local.insert(t);
                let mut f = RemoteFlood {
                    count: remote.len() as u32,
                    vni,
                    ..RemoteFlood::default()
                };
                for (slot, ip) in f.ips.iter_mut().zip(remote.keys()) {
                    *slot = *ip;
                }
                if e.desired.slotted.remote_flood.get(&key) != Some(&f) {
                    e.desired.slotted.remote_flood.insert(key, f);
                }
            }
            _ => {
                e.desired.slotted.remote_flood.remove(&key);
            }
        }
        set_flood(&mut e.desired.flood, domain, local);
    }
    Ok(())
}

/// A flood domain as errors name it.
fn domain_name(e: &Engine, domain: u32) -> String {
    if domain >= FLOOD_DOMAIN_GROUP_BASE {
        let g = domain - FLOOD_DOMAIN_GROUP_BASE;
        e.ix.groups.id_of(g).cloned().unwrap_or_default()
    } else {
        format!(
            "network {}",
            e.ix.networks.id_of(domain).cloned().unwrap_or_default()
        )
    }
}

/// The tunnel pseudo port: an index (its counters, its flood-set entry)
/// and the interface its device-map entry points at.
pub fn tunnel_port(e: &mut Engine) -> Result<(), CompileError> {
    match e.locality.tunnel_ifindex {
        Some(ifindex) => {
            let index = e.ix.ports.assign(TUNNEL_PORT_ID)?;
            if e.desired.tx_ports.get(&index) != Some(&ifindex) {
                e.desired.tx_ports.insert(index, ifindex);
            }
            let meta = common::PortMeta {
                id: copy_str(TUNNEL_PORT_ID),
                tap: copy_str("tunnel"),
            };
            if e.desired.port_meta.get(&index) != Some(&meta) {
                e.desired.port_meta.insert(index, meta);
            }
        }
        None => {
            if let Some(index) = e.ix.ports.unassign(TUNNEL_PORT_ID) {
                e.desired.tx_ports.remove(&index);
                e.desired.port_meta.remove(&index);
            }
        }
    }
    Ok(())
}

/// The active member the database names for each group a change touched
/// (its record, the group itself, or its members): what the agent makes
/// the group's active member, once.
pub fn active_members(e: &mut Engine, store: &Store, touched: &Touched) {
    // New groups, groups gone, and groups whose members changed: the
    // record may name a member only now, or no longer.
    let mut groups: BTreeSet<u32> = e
        .desired
        .group_meta
        .changed()
        .copied()
        .chain(e.desired.slotted.group_members.changed().map(|k| k.group))
        .collect();
    groups.extend(
        touched
            .actives
            .iter()
            .filter_map(|id| e.ix.groups.get(&id.replacen('/', " ", 1))),
    );
    for g in groups {
        let member = e.ix.groups.id_of(g).and_then(|name| {
            let record = store.actives().get(&name.replacen(' ', "/", 1))?;
            let p = e.ix.ports.get(&record.port)?;
            let key = common::GroupMemberKey {
                slot: 0,
                group: g,
                port: p,
            };
            e.desired
                .slotted
                .group_members
                .contains_key(&key)
                .then_some(p)
        });
        match member {
            Some(p) if e.desired.group_active.get(&g) != Some(&p) => {
                e.desired.group_active.insert(g, p);
            }
            Some(_) => {}
            None => {
                e.desired.group_active.remove(&g);
            }
        }
    }
}
