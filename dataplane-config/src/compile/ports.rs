//! A VM port's own entries: the port bound to its tap, the MACs and
//! addresses it may use, its place in its network's flood set, and its
//! security-group policy. What the port shares with others (groups, the
//! L2 and L3 tables) is settled per key by `neighbours`.

use std::{collections::BTreeMap, net::IpAddr};

use common::{
    ADDR_F_FIXED, ADDR_F_LINK_LOCAL, ADDR_F_PAIR, PORT_F_REMOTE, PORT_F_SECURITY, PortAddr,
    PortInfo, PortKey, PortMac, PortMeta, RemotePort, RemotePortKey,
};
use ipnet::IpNet;

use super::{
    CompileError, Engine, copy_str,
    entries::{Addr, mac_key, v4_key, v6_key},
    placement::{self, Place},
};
use crate::{neutron::MacAddr, objects::Port, store::Store};

/// What a port compiled to: enough to take it all back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRecord {
    pub index: u32,
    pub info: PortInfo,
    /// Where it is.
    pub place: Place,
    /// The tap's interface index, for a local port whose tap exists.
    pub ifindex: Option<u32>,
    /// Its security-group set (see `policy`).
    pub set: String,
    /// MACs with their `ADDR_F_*` origin flags.
    pub macs: BTreeMap<[u8; 6], u32>,
    pub v4: BTreeMap<Addr<4>, u32>,
    pub v6: BTreeMap<Addr<16>, u32>,
}

/// Compiles port `id` again: takes back what it added, then adds what it
/// adds now (nothing if it is gone or is a router interface).
pub fn recompile(
    e: &mut Engine,
    store: &Store,
    id: &String,
    tap: &dyn Fn(&str) -> Option<u32>,
) -> Result<(), CompileError> {
    let now = store.port(id).filter(|p| p.spec.router.is_none());
    if let Some(old) = e.ports.remove(id) {
        // Its domains' flood sets follow it wherever it goes.
        let domains: Vec<u32> = e.members.domains_of(old.index).collect();
        e.dirty_domains.extend(domains);
        take_back(e, &old, now.is_none());
        if now.is_none() {
            e.ix.ports.unassign(id);
        }
    }
    if let Some(port) = now {
        let place = placement::place(e, store, port, tap);
        let record = add(e, port, place)?;
        e.ports.insert(id.clone(), record);
    }
    Ok(())
}

/// The security-group set of a port: its groups, or none without port
/// security.
pub fn set_of(port: &Port) -> Vec<String> {
    if port.port_security_enabled {
        port.security_groups.clone()
    } else {
        Vec::new()
    }
}

fn add(e: &mut Engine, port: &Port, place: Place) -> Result<PortRecord, CompileError> {
    let ifindex = match place {
        Place::Local(ifindex) => ifindex,
        _ => None,
    };
    let index = e.ix.ports.assign(port.id())?;
    let network =
        e.ix.networks
            .get(&port.spec.network_id)
            .expect("a port's network is compiled before it");
    let groups = set_of(port);
    let (set, policy) = e.policy.use_set(&mut e.ix.policies, &groups)?;
    let info = PortInfo {
        index,
        network,
        ifindex: ifindex.unwrap_or(0),
        policy,
        mac: port.spec.mac.octets(),
        flags: if port.port_security_enabled {
            PORT_F_SECURITY
        } else {
            0
        },
        identity: policy,
    };
    let tunnel = e.locality.tunnel_ifindex;
    let d = &mut e.desired;
    match place {
        Place::Local(Some(ifindex)) => {
            d.slotted.ports.insert(PortKey { slot: 0, ifindex }, info);
            d.tx_ports.insert(index, ifindex);
        }
        Place::Remote { chassis, ip, vni } => {
            let remote = RemotePort {
                info: PortInfo {
                    flags: info.flags | PORT_F_REMOTE,
                    ..info
                },
                chassis_ip: ip,
                vni,
                chassis,
            };
            d.slotted.remote_ports.insert(
                RemotePortKey {
                    slot: 0,
                    port: index,
                },
                remote,
            );
            if let Some(t) = tunnel {
                d.tx_ports.insert(index, t);
            }
        }
        _ => {}
    }
    let meta = PortMeta {
        id: copy_str(port.id()),
        tap: copy_str(&port.spec.tap),
    };
    if d.port_meta.get(&index) != Some(&meta) {
        d.port_meta.insert(index, meta);
    }
    let (macs, v4, v6) = addresses(port);
    for (&mac, &flags) in &macs {
        d.slotted
            .port_macs
            .insert(mac_key(index, mac), PortMac { flags });
        e.owners.add_mac(network, mac, index);
    }
    for (&a, &flags) in &v4 {
        d.slotted
            .addrs_v4
            .insert(v4_key(index, a), PortAddr { flags });
        e.owners.v4.add(network, a, index, flags);
    }
    for (&a, &flags) in &v6 {
        d.slotted
            .addrs_v6
            .insert(v6_key(index, a), PortAddr { flags });
        e.owners.v6.add(network, a, index, flags);
    }
    e.members.add(network, index);
    Ok(PortRecord {
        index,
        info,
        place,
        ifindex,
        set,
        macs,
        v4,
        v6,
    })
}

/// Removes what `old` added; its index stays unless the port is gone.
fn take_back(e: &mut Engine, old: &PortRecord, gone: bool) {
    let (index, network) = (old.index, old.info.network);
    let d = &mut e.desired;
    match old.place {
        Place::Local(Some(ifindex)) => {
            d.slotted.ports.remove(&PortKey { slot: 0, ifindex });
            d.tx_ports.remove(&index);
        }
        Place::Remote { .. } => {
            d.slotted.remote_ports.remove(&RemotePortKey {
                slot: 0,
                port: index,
            });
            d.tx_ports.remove(&index);
        }
        _ => {}
    }
    if gone {
        d.port_meta.remove(&index);
    }
    for &mac in old.macs.keys() {
        d.slotted.port_macs.remove(&mac_key(index, mac));
        e.owners.remove_mac(network, mac, index);
    }
    for &a in old.v4.keys() {
        d.slotted.addrs_v4.remove(&v4_key(index, a));
        e.owners.v4.remove(network, a, index);
    }
    for &a in old.v6.keys() {
        d.slotted.addrs_v6.remove(&v6_key(index, a));
        e.owners.v6.remove(network, a, index);
    }
    e.members.remove(network, index);
    e.policy.release_set(&old.set);
}

type Addresses = (
    BTreeMap<[u8; 6], u32>,
    BTreeMap<Addr<4>, u32>,
    BTreeMap<Addr<16>, u32>,
);

/// The MACs and (MAC, prefix) entries a port may send from, with where
/// each comes from: its own MAC and fixed IPs, its pairs (each bound to
/// its MAC, a prefix without its host bits), and the link-local address
/// of every MAC it may use.
fn addresses(port: &Port) -> Addresses {
    let (mut macs, mut v4, mut v6) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let mut add = |mac: MacAddr, net: IpNet, flags: u32| match net.trunc() {
        IpNet::V4(n) => {
            *v4.entry((mac.octets(), n.network().octets(), n.prefix_len()))
                .or_insert(0) |= flags
        }
        IpNet::V6(n) => {
            *v6.entry((mac.octets(), n.network().octets(), n.prefix_len()))
                .or_insert(0) |= flags
        }
    };
    let mac = port.spec.mac;
    *macs.entry(mac.octets()).or_insert(0) |= ADDR_F_FIXED;
    for f in &port.fixed_ips {
        add(mac, IpNet::from(f.ip), ADDR_F_FIXED);
    }
    for pair in &port.spec.allowed_address_pairs {
        *macs.entry(pair.mac.octets()).or_insert(0) |= ADDR_F_PAIR;
        add(pair.mac, pair.ip, ADDR_F_PAIR);
    }
    for &m in macs.keys() {
        let ll = IpAddr::V6(MacAddr(m).ipv6_link_local());
        add(MacAddr(m), IpNet::from(ll), ADDR_F_LINK_LOCAL);
    }
    (macs, v4, v6)
}
