//! Compiles a validated [`Topology`] into the exact set of map entries the
//! datapath needs ([`Desired`]). Pure: no kernel, no syscalls, so every rule
//! of the translation is unit-tested here.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use anyhow::{Result, bail};
use common::{
    ADDR_F_FIXED, ADDR_F_LINK_LOCAL, ADDR_F_PAIR, ADDR_F_SHARED, FdbEntry, GroupMember,
    NEIGH_F_HOST, Neigh, PORT_F_SECURITY, PortAddr, PortInfo, PortMac, PortMeta, Route,
    TARGET_GROUP, TARGET_PORT, TARGET_ROUTER,
};
use ipnet::IpNet;

use crate::config::{MacAddr, Topology};

/// Stable small indexes for objects named by strings (port ids, network
/// ids). An object keeps its index for as long as it exists, because
/// counters and state are keyed by it; indexes of removed objects become
/// free only after the configuration that dropped them is live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Indexes {
    pub by_id: BTreeMap<String, u32>,
    /// Largest index that may be assigned.
    pub max: u32,
}

impl Indexes {
    pub fn new(max: u32) -> Self {
        Indexes {
            by_id: BTreeMap::new(),
            max,
        }
    }

    /// Indexes for exactly `ids`: existing ones are kept, new ones take the
    /// lowest index that neither this set nor `reserved` uses. Index 0 is
    /// never assigned.
    pub fn assign<'a>(
        &self,
        what: &str,
        ids: impl IntoIterator<Item = &'a str>,
        reserved: &BTreeSet<u32>,
    ) -> Result<Indexes> {
        let ids: Vec<&str> = ids.into_iter().collect();
        let mut out = Indexes::new(self.max);
        let mut used: BTreeSet<u32> = reserved.clone();
        for id in &ids {
            if let Some(&i) = self.by_id.get(*id) {
                out.by_id.insert((*id).to_string(), i);
                used.insert(i);
            }
        }
        let mut next = 1u32;
        for id in ids {
            if out.by_id.contains_key(id) {
                continue;
            }
            while used.contains(&next) {
                next += 1;
            }
            if next > self.max {
                bail!(
                    "too many {what}: the datapath was sized for {} (raise the limit with --max-ports)",
                    self.max
                );
            }
            out.by_id.insert(id.to_string(), next);
            used.insert(next);
        }
        Ok(out)
    }

    pub fn get(&self, id: &str) -> u32 {
        self.by_id[id]
    }

    pub fn values(&self) -> BTreeSet<u32> {
        self.by_id.values().copied().collect()
    }
}

/// Key of a (MAC, prefix) entry of a port: (port index, MAC, network
/// address, prefix length).
pub type Addr<const N: usize> = (u32, [u8; 6], [u8; N], u8);
pub type AddrV4 = Addr<4>;
pub type AddrV6 = Addr<16>;

/// Key of a network's address entry: (network index, network address,
/// prefix length).
pub type NetAddr<const N: usize> = (u32, [u8; N], u8);

/// Everything the configuration maps should hold, independent of slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// ifindex -> port.
    pub ports: BTreeMap<u32, PortInfo>,
    /// (port index, MAC) the port may use.
    pub port_macs: BTreeMap<(u32, [u8; 6]), PortMac>,
    pub addrs_v4: BTreeMap<AddrV4, PortAddr>,
    pub addrs_v6: BTreeMap<AddrV6, PortAddr>,
    /// Port index -> identity, for inspection and adoption (not slotted).
    pub port_meta: BTreeMap<u32, PortMeta>,
    /// (network, MAC) -> port or group.
    pub fdb: BTreeMap<(u32, [u8; 6]), FdbEntry>,
    /// (network, address, prefix length) -> owner.
    pub neigh_v4: BTreeMap<NetAddr<4>, Neigh>,
    pub neigh_v6: BTreeMap<NetAddr<16>, Neigh>,
    /// (group, port) -> the MAC the member uses for the shared address.
    pub group_members: BTreeMap<(u32, u32), GroupMember>,
    /// Flood domain (network index, or FLOOD_DOMAIN_GROUP_BASE + group) ->
    /// port indexes.
    pub flood: BTreeMap<u32, BTreeSet<u32>>,
    /// Groups by their stable name ("<network id> <address>" or
    /// "<network id> <MAC>").
    pub groups: Indexes,
    /// Port index -> port id, to name group members.
    pub port_ids: BTreeMap<u32, String>,
    /// (router, subnet address, prefix length) -> where the subnet is.
    pub routes_v4: BTreeMap<(u32, [u8; 4], u8), Route>,
    pub routes_v6: BTreeMap<(u32, [u8; 16], u8), Route>,
    /// Security groups (see `policy`).
    pub policy: BTreeMap<crate::policy::PolicyRule, common::PolicyEntry>,
    pub remote_v4: BTreeMap<([u8; 4], u8), common::RemoteIdentity>,
    pub remote_v6: BTreeMap<([u8; 16], u8), common::RemoteIdentity>,
}

/// The stable indexes a compilation uses.
pub struct AllIndexes<'a> {
    pub ports: &'a Indexes,
    pub networks: &'a Indexes,
    /// Groups of the live configuration (kept by name).
    pub groups: &'a Indexes,
    pub routers: &'a Indexes,
    pub security_groups: &'a Indexes,
}

/// Indexes for every object of a topology, assigned from nothing: for
/// compiling a configuration outside a running datapath (tests, tools),
/// where no index has to survive an earlier configuration.
pub struct FreshIndexes {
    pub ports: Indexes,
    pub networks: Indexes,
    pub groups: Indexes,
    pub routers: Indexes,
    pub security_groups: Indexes,
}

impl FreshIndexes {
    pub fn new(t: &Topology, max: u32) -> Result<FreshIndexes> {
        let none = BTreeSet::new();
        Ok(FreshIndexes {
            ports: Indexes::new(max).assign(
                "ports",
                t.ports.iter().map(|p| p.id.as_str()),
                &none,
            )?,
            networks: Indexes::new(max).assign(
                "networks",
                t.networks.iter().map(|n| n.id.as_str()),
                &none,
            )?,
            groups: Indexes::new(max),
            routers: Indexes::new(max).assign(
                "routers",
                t.routers.iter().map(|r| r.id.as_str()),
                &none,
            )?,
            security_groups: Indexes::new(max).assign(
                "security groups",
                t.security_groups.iter().map(|g| g.id.as_str()),
                &none,
            )?,
        })
    }

    pub fn all(&self) -> AllIndexes<'_> {
        AllIndexes {
            ports: &self.ports,
            networks: &self.networks,
            groups: &self.groups,
            routers: &self.routers,
            security_groups: &self.security_groups,
        }
    }
}

/// Who owns one address (or MAC) of a network: port index -> the MAC it
/// uses for it.
type Owners = BTreeMap<u32, [u8; 6]>;

pub fn copy_str<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let bytes = s.as_bytes();
    let n = bytes.len().min(N);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

fn add_addr(desired: &mut Desired, port: u32, mac: MacAddr, net: IpNet, flags: u32) {
    let net = net.trunc();
    match net {
        IpNet::V4(n) => {
            let key = (port, mac.octets(), n.network().octets(), n.prefix_len());
            desired.addrs_v4.entry(key).or_default().flags |= flags;
        }
        IpNet::V6(n) => {
            let key = (port, mac.octets(), n.network().octets(), n.prefix_len());
            desired.addrs_v6.entry(key).or_default().flags |= flags;
        }
    }
}

/// Compiles `topology` with the given port and network indexes and the
/// ifindex of each port's tap (in `topology.ports` order).
pub fn compile(topology: &Topology, ix: &AllIndexes, ifindexes: &[u32]) -> Result<Desired> {
    let (ports_ix, networks_ix) = (ix.ports, ix.networks);
    let mut d = Desired::default();
    let policies = crate::policy::compile(topology, ix.security_groups);
    for ((port, &ifindex), &policy) in topology
        .ports
        .iter()
        .zip(ifindexes)
        .zip(&policies.port_policy)
    {
        let index = ports_ix.get(&port.id);
        let network = networks_ix.get(&topology.networks[port.network].id);
        let flags = if port.port_security_enabled {
            PORT_F_SECURITY
        } else {
            0
        };
        d.ports.insert(
            ifindex,
            PortInfo {
                index,
                network,
                ifindex,
                policy,
                mac: port.mac.octets(),
                flags,
                identity: policy,
            },
        );
        d.port_meta.insert(
            index,
            PortMeta {
                id: copy_str(&port.id),
                tap: copy_str(&port.tap),
            },
        );

        // The port's own MAC and addresses.
        d.port_macs
            .entry((index, port.mac.octets()))
            .or_default()
            .flags |= ADDR_F_FIXED;
        for f in &port.fixed_ips {
            add_addr(&mut d, index, port.mac, IpNet::from(f.ip), ADDR_F_FIXED);
        }
        // Pairs: a pair without a MAC uses the port's MAC (validation
        // already filled it in).
        for pair in &port.allowed_address_pairs {
            d.port_macs
                .entry((index, pair.mac.octets()))
                .or_default()
                .flags |= ADDR_F_PAIR;
            add_addr(&mut d, index, pair.mac, pair.ip, ADDR_F_PAIR);
        }
        // Each allowed MAC may use the link-local address derived from it.
        let macs: Vec<[u8; 6]> = d
            .port_macs
            .range((index, [0; 6])..=(index, [0xff; 6]))
            .map(|(&(_, mac), _)| mac)
            .collect();
        for mac in macs {
            let mac = MacAddr(mac);
            let ll = IpNet::from(IpAddr::V6(mac.ipv6_link_local()));
            add_addr(&mut d, index, mac, ll, ADDR_F_LINK_LOCAL);
        }
        d.port_ids.insert(index, port.id.clone());
        d.flood.entry(network).or_default().insert(index);
    }
    forwarding_tables(topology, ports_ix, networks_ix, ix.groups, &mut d)?;
    router_tables(topology, networks_ix, ix.routers, &mut d);
    d.policy = policies.rules;
    d.remote_v4 = policies.remote_v4;
    d.remote_v6 = policies.remote_v6;
    Ok(d)
}

/// Router interfaces: their MACs and addresses in the L2 and L3 tables (an
/// interface address overrides a VM's pair on the same address: the
/// network's gateway is the router's), and each router's connected subnets.
fn router_tables(
    topology: &Topology,
    networks_ix: &Indexes,
    routers_ix: &Indexes,
    d: &mut Desired,
) {
    for router in &topology.routers {
        let r = routers_ix.get(&router.id);
        for itf in &router.interfaces {
            let net = networks_ix.get(&topology.networks[itf.network].id);
            let mac = itf.mac.octets();
            d.fdb.insert(
                (net, mac),
                FdbEntry {
                    kind: TARGET_ROUTER,
                    target: r,
                },
            );
            let neigh = Neigh {
                kind: TARGET_ROUTER,
                target: r,
                mac,
                flags: NEIGH_F_HOST,
            };
            let route = Route {
                network: net,
                mac,
                _pad: [0; 2],
            };
            match (itf.ip, topology.subnets[itf.subnet].cidr) {
                (IpAddr::V4(ip), IpNet::V4(cidr)) => {
                    d.neigh_v4.insert((net, ip.octets(), 32), neigh);
                    d.routes_v4
                        .insert((r, cidr.network().octets(), cidr.prefix_len()), route);
                }
                (IpAddr::V6(ip), IpNet::V6(cidr)) => {
                    d.neigh_v6.insert((net, ip.octets(), 128), neigh);
                    d.routes_v6
                        .insert((r, cidr.network().octets(), cidr.prefix_len()), route);
                }
                // Validation keeps every address inside its subnet.
                _ => {}
            }
        }
    }
}

/// Owners of each (network, address, prefix) in a port address table. When a
/// port binds an address to several MACs (its fixed IP also listed as a
/// pair with another MAC), the fixed binding wins, else the lowest MAC.
fn address_owners<const N: usize>(
    addrs: &BTreeMap<Addr<N>, PortAddr>,
    network_of: &BTreeMap<u32, u32>,
) -> BTreeMap<NetAddr<N>, Owners> {
    let mut owners: BTreeMap<NetAddr<N>, Owners> = BTreeMap::new();
    for (&(port, mac, addr, plen), entry) in addrs {
        let of_address = owners.entry((network_of[&port], addr, plen)).or_default();
        if entry.flags & ADDR_F_FIXED != 0 {
            of_address.insert(port, mac);
        } else {
            of_address.entry(port).or_insert(mac);
        }
    }
    owners
}

/// An address as text: IPv4 for 4 bytes, IPv6 for 16.
fn address_text<const N: usize>(addr: [u8; N]) -> String {
    match <[u8; 4]>::try_from(&addr[..]) {
        Ok(v4) => std::net::Ipv4Addr::from(v4).to_string(),
        Err(_) => <[u8; 16]>::try_from(&addr[..])
            .map(|v6| std::net::Ipv6Addr::from(v6).to_string())
            .unwrap_or_default(),
    }
}

/// The neighbour table of one address family: one owner gives a port
/// entry, several a group whose members' address entries are marked shared
/// (so that the datapath records their claims). Only single addresses are
/// marked NEIGH_F_HOST, the ones the ARP/ND responder may answer.
fn neighbour_table<const N: usize>(
    owners: &BTreeMap<NetAddr<N>, Owners>,
    addrs: &mut BTreeMap<Addr<N>, PortAddr>,
    group_of: &BTreeMap<NetAddr<N>, u32>,
) -> BTreeMap<NetAddr<N>, Neigh> {
    let full_len = (N * 8) as u8;
    let mut table = BTreeMap::new();
    for (&(net, addr, plen), of_address) in owners {
        let flags = if plen == full_len { NEIGH_F_HOST } else { 0 };
        let n = match group_of.get(&(net, addr, plen)) {
            None => {
                let (&port, &mac) = of_address.iter().next().expect("an owner");
                Neigh {
                    kind: TARGET_PORT,
                    target: port,
                    mac,
                    flags,
                }
            }
            Some(&g) => {
                for &port in of_address.keys() {
                    let entries =
                        addrs.range_mut((port, [0; 6], addr, plen)..=(port, [0xff; 6], addr, plen));
                    for (&(_, _, a, p), entry) in entries {
                        if a == addr && p == plen {
                            entry.flags |= ADDR_F_SHARED;
                        }
                    }
                }
                Neigh {
                    kind: TARGET_GROUP,
                    target: g,
                    mac: [0; 6],
                    flags,
                }
            }
        };
        table.insert((net, addr, plen), n);
    }
    table
}

/// Builds the L2 and L3 tables and the groups from the ports' MACs and
/// addresses (fixed, pairs, link-local) already in `d`.
fn forwarding_tables(
    topology: &Topology,
    ports_ix: &Indexes,
    networks_ix: &Indexes,
    groups_ix: &Indexes,
    d: &mut Desired,
) -> Result<()> {
    let mut network_of: BTreeMap<u32, u32> = BTreeMap::new();
    let mut network_id: BTreeMap<u32, &str> = BTreeMap::new();
    for port in &topology.ports {
        let id = topology.networks[port.network].id.as_str();
        network_of.insert(ports_ix.get(&port.id), networks_ix.get(id));
        network_id.insert(networks_ix.get(id), id);
    }
    let mut macs: BTreeMap<(u32, [u8; 6]), Owners> = BTreeMap::new();
    for &(port, mac) in d.port_macs.keys() {
        macs.entry((network_of[&port], mac))
            .or_default()
            .insert(port, mac);
    }
    let v4 = address_owners(&d.addrs_v4, &network_of);
    let v6 = address_owners(&d.addrs_v6, &network_of);

    // Everything owned by more than one port is a group, named
    // "<network id> <MAC or address/prefix>" so that it keeps its index.
    let shared_macs: Vec<((u32, [u8; 6]), String)> = macs
        .iter()
        .filter(|(_, o)| o.len() > 1)
        .map(|(&(net, mac), _)| ((net, mac), format!("{} {}", network_id[&net], MacAddr(mac))))
        .collect();
    fn shared<const N: usize>(
        owners: &BTreeMap<NetAddr<N>, Owners>,
        network_id: &BTreeMap<u32, &str>,
    ) -> Vec<(NetAddr<N>, String)> {
        owners
            .iter()
            .filter(|(_, o)| o.len() > 1)
            .map(|(&(net, addr, plen), _)| {
                let name = format!("{} {}/{plen}", network_id[&net], address_text(addr));
                ((net, addr, plen), name)
            })
            .collect()
    }
    let shared_v4 = shared(&v4, &network_id);
    let shared_v6 = shared(&v6, &network_id);
    let names = shared_macs
        .iter()
        .map(|(_, n)| n)
        .chain(shared_v4.iter().map(|(_, n)| n))
        .chain(shared_v6.iter().map(|(_, n)| n));
    let groups = groups_ix.assign(
        "address groups",
        names.map(String::as_str),
        &BTreeSet::new(),
    )?;

    // Members and flood sets of every group.
    let mut add_members = |name: &str, owners: &Owners| -> u32 {
        let g = groups.get(name);
        for (&port, &mac) in owners {
            d.group_members
                .insert((g, port), GroupMember { mac, _pad: [0; 2] });
            d.flood
                .entry(common::FLOOD_DOMAIN_GROUP_BASE + g)
                .or_default()
                .insert(port);
        }
        g
    };
    let mac_groups: BTreeMap<(u32, [u8; 6]), u32> = shared_macs
        .iter()
        .map(|(key, name)| (*key, add_members(name, &macs[key])))
        .collect();
    let v4_groups: BTreeMap<NetAddr<4>, u32> = shared_v4
        .iter()
        .map(|(key, name)| (*key, add_members(name, &v4[key])))
        .collect();
    let v6_groups: BTreeMap<NetAddr<16>, u32> = shared_v6
        .iter()
        .map(|(key, name)| (*key, add_members(name, &v6[key])))
        .collect();

    for (&(net, mac), owners) in &macs {
        let entry = match mac_groups.get(&(net, mac)) {
            None => FdbEntry {
                kind: TARGET_PORT,
                target: *owners.keys().next().expect("an owner"),
            },
            Some(&g) => {
                for &port in owners.keys() {
                    if let Some(m) = d.port_macs.get_mut(&(port, mac)) {
                        m.flags |= ADDR_F_SHARED;
                    }
                }
                FdbEntry {
                    kind: TARGET_GROUP,
                    target: g,
                }
            }
        };
        d.fdb.insert((net, mac), entry);
    }
    d.neigh_v4 = neighbour_table(&v4, &mut d.addrs_v4, &v4_groups);
    d.neigh_v6 = neighbour_table(&v6, &mut d.addrs_v6, &v6_groups);
    d.groups = groups;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Format};

    const BASE: &str = r#"
[[networks]]
id = "net1"
[[subnets]]
id = "sub1"
network_id = "net1"
cidr = "10.0.0.0/24"
ip_version = 4
[[subnets]]
id = "sub6"
network_id = "net1"
cidr = "fd00::/64"
ip_version = 6
"#;

    fn topology(ports: &str) -> Topology {
        let raw = config::parse(&format!("{BASE}{ports}"), Format::Toml).unwrap();
        config::validate(&raw).unwrap()
    }

    fn compile_all(t: &Topology) -> Desired {
        let ifindexes: Vec<u32> = (0..t.ports.len() as u32).map(|i| 100 + i).collect();
        let ix = FreshIndexes::new(t, 1000).unwrap();
        compile(t, &ix.all(), &ifindexes).unwrap()
    }

    const MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 1];

    #[test]
    fn fixed_ip_and_pairs() {
        let t = topology(
            r#"
[[ports]]
id = "p1"
network_id = "net1"
mac_address = "fa:16:3e:00:00:01"
fixed_ips = [{ subnet_id = "sub1", ip_address = "10.0.0.5" }]
allowed_address_pairs = [
  { ip_address = "10.0.0.100" },
  { ip_address = "10.0.1.77/24", mac_address = "00:00:5e:00:01:01" },
  { ip_address = "10.0.0.5" },
]
"#,
        );
        let d = compile_all(&t);
        let info = d.ports[&100];
        assert_eq!(info.index, 1);
        assert_eq!(info.flags, PORT_F_SECURITY);
        // Fixed IP and the pair naming the same address share one entry.
        assert_eq!(
            d.addrs_v4[&(1, MAC, [10, 0, 0, 5], 32)].flags,
            ADDR_F_FIXED | ADDR_F_PAIR
        );
        assert_eq!(
            d.addrs_v4[&(1, MAC, [10, 0, 0, 100], 32)].flags,
            ADDR_F_PAIR
        );
        // Host bits of a prefix pair are dropped; its MAC is bound to it.
        let vmac = [0, 0, 0x5e, 0, 1, 1];
        assert_eq!(d.addrs_v4[&(1, vmac, [10, 0, 1, 0], 24)].flags, ADDR_F_PAIR);
        assert!(!d.addrs_v4.contains_key(&(1, MAC, [10, 0, 1, 0], 24)));
        assert_eq!(d.port_macs[&(1, MAC)].flags, ADDR_F_FIXED | ADDR_F_PAIR);
        assert_eq!(d.port_macs[&(1, vmac)].flags, ADDR_F_PAIR);
        // Link-local addresses of both MACs.
        assert_eq!(d.addrs_v6.len(), 2);
        let ll: std::net::Ipv6Addr = "fe80::f816:3eff:fe00:1".parse().unwrap();
        assert_eq!(
            d.addrs_v6[&(1, MAC, ll.octets(), 128)].flags,
            ADDR_F_LINK_LOCAL
        );
    }

    #[test]
    fn zero_prefix_pair_keeps_its_mac() {
        let t = topology(
            r#"
[[ports]]
id = "p1"
network_id = "net1"
mac_address = "fa:16:3e:00:00:01"
allowed_address_pairs = [{ ip_address = "0.0.0.0/0", mac_address = "fa:16:3e:00:00:99" }]
"#,
        );
        let d = compile_all(&t);
        let other = [0xfa, 0x16, 0x3e, 0, 0, 0x99];
        assert!(d.addrs_v4.contains_key(&(1, other, [0; 4], 0)));
        assert!(!d.addrs_v4.contains_key(&(1, MAC, [0; 4], 0)));
    }

    #[test]
    fn port_security_off_clears_flag() {
        let t = topology(
            r#"
[[ports]]
id = "p1"
network_id = "net1"
mac_address = "fa:16:3e:00:00:01"
port_security_enabled = false
"#,
        );
        assert_eq!(compile_all(&t).ports[&100].flags, 0);
    }

    #[test]
    fn indexes_are_stable_and_reuse_only_free_slots() {
        let empty = BTreeSet::new();
        let a = Indexes::new(10)
            .assign("ports", ["a", "b", "c"], &empty)
            .unwrap();
        assert_eq!((a.get("a"), a.get("b"), a.get("c")), (1, 2, 3));
        // b removed, d added while b's index is still live in the other slot.
        let reserved: BTreeSet<u32> = [2].into();
        let b = a.assign("ports", ["a", "c", "d"], &reserved).unwrap();
        assert_eq!((b.get("a"), b.get("c"), b.get("d")), (1, 3, 4));
        // Later, 2 is free again.
        let c = b.assign("ports", ["a", "c", "d", "e"], &empty).unwrap();
        assert_eq!(c.get("e"), 2);
        assert!(
            Indexes::new(2)
                .assign("ports", ["a", "b", "c"], &empty)
                .is_err()
        );
    }

    #[test]
    fn shared_addresses_and_macs_form_groups() {
        let t = topology(
            r#"
[[ports]]
id = "p1"
network_id = "net1"
mac_address = "fa:16:3e:00:00:01"
fixed_ips = [{ subnet_id = "sub1", ip_address = "10.0.0.5" }]
allowed_address_pairs = [
  { ip_address = "10.0.0.100" },
  { ip_address = "10.0.0.200", mac_address = "00:00:5e:00:01:07" },
]
[[ports]]
id = "p2"
network_id = "net1"
mac_address = "fa:16:3e:00:00:02"
fixed_ips = [{ subnet_id = "sub1", ip_address = "10.0.0.6" }]
allowed_address_pairs = [
  { ip_address = "10.0.0.100" },
  { ip_address = "10.0.0.200", mac_address = "00:00:5e:00:01:07" },
]
"#,
        );
        let d = compile_all(&t);
        let mac2 = [0xfa, 0x16, 0x3e, 0, 0, 2];
        let vmac = [0, 0, 0x5e, 0, 1, 7];
        // A unique fixed IP: owned by its port, answerable.
        let n = d.neigh_v4[&(1, [10, 0, 0, 5], 32)];
        assert_eq!(
            (n.kind, n.target, n.mac, n.flags),
            (TARGET_PORT, 1, MAC, NEIGH_F_HOST)
        );
        // The shared VIP: a group of both ports, each with its own MAC.
        let n = d.neigh_v4[&(1, [10, 0, 0, 100], 32)];
        assert_eq!(n.kind, TARGET_GROUP);
        let g = n.target;
        assert_eq!(d.group_members[&(g, 1)].mac, MAC);
        assert_eq!(d.group_members[&(g, 2)].mac, mac2);
        assert_eq!(
            d.flood[&(common::FLOOD_DOMAIN_GROUP_BASE + g)],
            BTreeSet::from([1, 2])
        );
        assert_ne!(
            d.addrs_v4[&(1, MAC, [10, 0, 0, 100], 32)].flags & ADDR_F_SHARED,
            0
        );
        assert_ne!(
            d.addrs_v4[&(2, mac2, [10, 0, 0, 100], 32)].flags & ADDR_F_SHARED,
            0
        );
        assert_eq!(
            d.addrs_v4[&(1, MAC, [10, 0, 0, 5], 32)].flags & ADDR_F_SHARED,
            0
        );
        // The shared virtual MAC: its own group, and the MAC marked shared.
        let e = d.fdb[&(1, vmac)];
        assert_eq!(e.kind, TARGET_GROUP);
        assert_ne!(e.target, g);
        assert_ne!(d.port_macs[&(1, vmac)].flags & ADDR_F_SHARED, 0);
        assert_eq!(d.fdb[&(1, MAC)].kind, TARGET_PORT);
        assert_eq!(d.groups.by_id.len(), 4, "{:?}", d.groups.by_id);
        assert!(d.groups.by_id.contains_key("net1 10.0.0.100/32"));
        assert!(d.groups.by_id.contains_key("net1 00:00:5e:00:01:07"));
    }

    #[test]
    fn the_fixed_binding_answers_for_an_address_also_paired_with_another_mac() {
        // Neutron accepts a pair equal to the port's own fixed IP; with
        // another MAC it must not change which MAC ARP answers with.
        let t = topology(
            r#"
[[ports]]
id = "p1"
network_id = "net1"
mac_address = "fa:16:3e:00:00:01"
fixed_ips = [{ subnet_id = "sub1", ip_address = "10.0.0.5" }]
allowed_address_pairs = [{ ip_address = "10.0.0.5", mac_address = "00:00:5e:00:01:07" }]
"#,
        );
        let d = compile_all(&t);
        let n = d.neigh_v4[&(1, [10, 0, 0, 5], 32)];
        assert_eq!((n.kind, n.target, n.mac), (TARGET_PORT, 1, MAC));
    }

    #[test]
    fn router_interfaces_route_their_subnets_and_own_the_gateways() {
        let t = topology(
            r#"
[[networks]]
id = "net2"
[[subnets]]
id = "sub2"
network_id = "net2"
cidr = "10.0.2.0/24"
gateway_ip = "10.0.2.1"
[[routers]]
id = "r1"
[[ports]]
id = "ri1"
network_id = "net1"
device_owner = "network:router_interface"
device_id = "r1"
mac_address = "fa:16:3e:00:01:01"
fixed_ips = [{ subnet_id = "sub1", ip_address = "10.0.0.1" }, { subnet_id = "sub6", ip_address = "fd00::1" }]
[[ports]]
id = "ri2"
network_id = "net2"
device_owner = "network:router_interface"
device_id = "r1"
mac_address = "fa:16:3e:00:01:02"
fixed_ips = [{ subnet_id = "sub2", ip_address = "10.0.2.1" }]
[[ports]]
id = "p1"
network_id = "net1"
mac_address = "fa:16:3e:00:00:01"
fixed_ips = [{ subnet_id = "sub1", ip_address = "10.0.0.5" }]
"#,
        );
        assert_eq!(t.ports.len(), 1, "router interfaces are not VM ports");
        assert_eq!(t.routers[0].interfaces.len(), 3);
        let d = compile_all(&t);
        let r1_mac1 = [0xfa, 0x16, 0x3e, 0, 1, 1];
        let r1_mac2 = [0xfa, 0x16, 0x3e, 0, 1, 2];
        let net2 = 2;
        assert_eq!(
            d.fdb[&(1, r1_mac1)],
            FdbEntry {
                kind: TARGET_ROUTER,
                target: 1
            }
        );
        assert_eq!(d.fdb[&(net2, r1_mac2)].kind, TARGET_ROUTER);
        let gw = d.neigh_v4[&(1, [10, 0, 0, 1], 32)];
        assert_eq!(
            (gw.kind, gw.mac, gw.flags),
            (TARGET_ROUTER, r1_mac1, NEIGH_F_HOST)
        );
        assert_eq!(
            d.neigh_v6[&(
                1,
                "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets(),
                128
            )]
                .kind,
            TARGET_ROUTER
        );
        assert_eq!(
            d.routes_v4[&(1, [10, 0, 2, 0], 24)],
            Route {
                network: net2,
                mac: r1_mac2,
                _pad: [0; 2]
            }
        );
        assert_eq!(d.routes_v4[&(1, [10, 0, 0, 0], 24)].mac, r1_mac1);
        assert_eq!(d.routes_v6.len(), 1);
    }
}
