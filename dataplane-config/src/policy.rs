//! Compiles security groups into lookups whose cost does not depend on the
//! number of rules or group members (Cilium's approach):
//!
//! - Each distinct set of security groups among the ports is one number:
//!   the *policy* of the ports with that set, and their *identity* as a
//!   remote. A rule naming remote group X is compiled for every identity
//!   whose set holds X. The datapath takes a sending port's identity from the
//!   port itself, after port security checked the packet's (IP, MAC) against
//!   its fixed IPs and pairs: a remote group therefore covers its members'
//!   fixed IPs and pair IPs and prefixes, each only with its MAC (a
//!   `0.0.0.0/0` pair does not open a rule to every source), and an address
//!   shared by two members counts for as long as either holds it.
//! - Each distinct `remote_ip_prefix` gets a CIDR identity; `REMOTE_V4/V6`
//!   map addresses to the most specific one, and a rule for prefix P is
//!   compiled for the CIDR identity of every rule prefix inside P.
//! - `POLICY` is an LPM trie keyed by (policy, identity, direction, protocol,
//!   port): a port range becomes a few prefixes of the 16-bit port, an ICMP
//!   rule a prefix of [type, code]. Every entry allows, so one longest-match
//!   lookup per candidate identity (the port's, the CIDR's, "any") decides.

use std::collections::{BTreeMap, BTreeSet};

use common::{
    IDENTITY_CIDR, POLICY_DIR_EGRESS, POLICY_DIR_INGRESS, POLICY_PREFIX_BITS, POLICY_V6,
    PolicyEntry, RemoteIdentity,
};
use ipnet::IpNet;

use crate::{
    compile::Indexes,
    config::{Direction, PortMatch, Remote, Topology},
};

/// (policy, identity, direction | version, protocol, port bytes, prefix
/// length in bits of the whole key, slot included).
pub type PolicyRule = (u32, u32, u8, u8, [u8; 2], u32);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyTables {
    /// Policy (= identity) of each port, in `Topology::ports` order.
    pub port_policy: Vec<u32>,
    pub rules: BTreeMap<PolicyRule, PolicyEntry>,
    /// (prefix address, prefix length) -> CIDR identity.
    pub remote_v4: BTreeMap<([u8; 4], u8), RemoteIdentity>,
    pub remote_v6: BTreeMap<([u8; 16], u8), RemoteIdentity>,
}

/// Splits an inclusive port range into aligned power-of-two blocks, as
/// (first port, prefix length in bits): at most 30 for any range.
pub fn port_prefixes(lo: u16, hi: u16) -> Vec<(u16, u8)> {
    let (mut lo, hi) = (u32::from(lo), u32::from(hi));
    let mut out = Vec::new();
    while lo <= hi {
        let mut size = if lo == 0 {
            1 << 16
        } else {
            1u32 << lo.trailing_zeros()
        };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        out.push((lo as u16, (16 - size.trailing_zeros()) as u8));
        lo += size;
    }
    out
}

/// Compiles the topology's groups; `sg_ix` gives each group (by id) its
/// stable index, under which its counters are kept.
pub fn compile(topology: &Topology, sg_ix: &Indexes) -> PolicyTables {
    let mut t = PolicyTables::default();

    // Policies: the distinct group sets, the empty one included (ports
    // without groups, or without port security, as remotes).
    let mut sets: BTreeMap<Vec<usize>, u32> = BTreeMap::new();
    sets.insert(Vec::new(), 0);
    for p in &topology.ports {
        sets.insert(p.security_groups.clone(), 0);
    }
    for (i, id) in sets.values_mut().enumerate() {
        *id = i as u32 + 1;
    }
    t.port_policy = topology
        .ports
        .iter()
        .map(|p| {
            if p.port_security_enabled {
                sets[&p.security_groups]
            } else {
                sets[&Vec::new()]
            }
        })
        .collect();

    // CIDR identities of every rule prefix.
    let prefixes: BTreeSet<IpNet> = topology
        .security_groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter_map(|r| match r.remote {
            Remote::Prefix(p) => Some(p),
            _ => None,
        })
        .collect();
    let cidr_id: BTreeMap<IpNet, u32> = prefixes
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, IDENTITY_CIDR | (i as u32 + 1)))
        .collect();
    for (net, &id) in &cidr_id {
        let v = RemoteIdentity { identity: id };
        match net {
            IpNet::V4(n) => {
                t.remote_v4
                    .insert((n.network().octets(), n.prefix_len()), v);
            }
            IpNet::V6(n) => {
                t.remote_v6
                    .insert((n.network().octets(), n.prefix_len()), v);
            }
        }
    }

    for (set, &policy) in &sets {
        for &g in set {
            for rule in &topology.security_groups[g].rules {
                let mut dir = match rule.direction {
                    Direction::Ingress => POLICY_DIR_INGRESS,
                    Direction::Egress => POLICY_DIR_EGRESS,
                };
                if rule.ipv6 {
                    dir |= POLICY_V6;
                }
                let identities: Vec<u32> = match &rule.remote {
                    Remote::Any => vec![0],
                    Remote::Group(x) => sets
                        .iter()
                        .filter(|(s, _)| s.contains(x))
                        .map(|(_, &id)| id)
                        .collect(),
                    Remote::Prefix(p) => cidr_id
                        .iter()
                        .filter(|(r, _)| p.contains(*r))
                        .map(|(_, &id)| id)
                        .collect(),
                };
                let matches: Vec<(u8, [u8; 2], u32)> = match (rule.protocol, rule.ports) {
                    (None, _) => vec![(0, [0, 0], POLICY_PREFIX_BITS)],
                    (Some(proto), PortMatch::Any) => vec![(proto, [0, 0], POLICY_PREFIX_BITS + 8)],
                    (Some(proto), PortMatch::Range(lo, hi)) => port_prefixes(lo, hi)
                        .into_iter()
                        .map(|(start, bits)| {
                            (
                                proto,
                                start.to_be_bytes(),
                                POLICY_PREFIX_BITS + 8 + u32::from(bits),
                            )
                        })
                        .collect(),
                    (Some(proto), PortMatch::Icmp(ty, None)) => {
                        vec![(proto, [ty, 0], POLICY_PREFIX_BITS + 16)]
                    }
                    (Some(proto), PortMatch::Icmp(ty, Some(code))) => {
                        vec![(proto, [ty, code], POLICY_PREFIX_BITS + 24)]
                    }
                };
                for &identity in &identities {
                    for &(proto, port, bits) in &matches {
                        t.rules.insert(
                            (policy, identity, dir, proto, port, bits),
                            PolicyEntry {
                                group: sg_ix.get(&topology.security_groups[g].id),
                            },
                        );
                    }
                }
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_become_few_aligned_prefixes() {
        assert_eq!(port_prefixes(80, 80), vec![(80, 16)]);
        assert_eq!(port_prefixes(1, 65535).len(), 16);
        assert_eq!(port_prefixes(0, 65535), vec![(0, 0)]);
        assert_eq!(port_prefixes(1024, 2047), vec![(1024, 6)]);
        // Every port of a range is covered by exactly one block.
        for (lo, hi) in [
            (1u16, 65535u16),
            (1000, 2000),
            (33, 33),
            (65535, 65535),
            (7, 1029),
        ] {
            let blocks = port_prefixes(lo, hi);
            assert!(blocks.len() <= 30);
            for port in 0..=65535u32 {
                let n = blocks
                    .iter()
                    .filter(|(start, bits)| {
                        let size = 1u32 << (16 - u32::from(*bits));
                        port >= u32::from(*start) && port < u32::from(*start) + size
                    })
                    .count();
                let inside = port >= u32::from(lo) && port <= u32::from(hi);
                assert_eq!(n, usize::from(inside), "port {port} in {lo}-{hi}");
            }
        }
    }
}

#[cfg(test)]
mod compile_tests {
    use super::*;
    use crate::config::{self, Format};

    #[test]
    fn groups_expand_to_identities_and_prefixes_to_nested_cidr_identities() {
        let raw = config::parse(
            r#"
[[networks]]
id = "n"
[[subnets]]
id = "s"
network_id = "n"
cidr = "10.0.0.0/24"
[[security_groups]]
id = "web"
security_group_rules = [
  { direction = "ingress", protocol = "tcp", port_range_min = 80, port_range_max = 80, remote_group_id = "clients" },
  { direction = "ingress", protocol = "icmp", port_range_min = 8, remote_ip_prefix = "10.0.0.0/8" },
]
[[security_groups]]
id = "clients"
security_group_rules = [{ direction = "egress" }]
[[security_groups]]
id = "narrow"
security_group_rules = [{ direction = "ingress", remote_ip_prefix = "10.1.0.0/16" }]
[[ports]]
id = "w"
network_id = "n"
mac_address = "fa:16:3e:00:00:01"
security_groups = ["web"]
[[ports]]
id = "c1"
network_id = "n"
mac_address = "fa:16:3e:00:00:02"
security_groups = ["clients"]
[[ports]]
id = "c2"
network_id = "n"
mac_address = "fa:16:3e:00:00:03"
security_groups = ["clients", "narrow"]
"#,
            Format::Toml,
        )
        .unwrap();
        let topology = config::validate(&raw).unwrap();
        let ix = crate::compile::FreshIndexes::new(&topology, 100).unwrap();
        let t = compile(&topology, &ix.security_groups);
        // Sets: [] , [web], [clients], [clients, narrow] -> 4 policies.
        let (web, c1, c2) = (t.port_policy[0], t.port_policy[1], t.port_policy[2]);
        assert_ne!(c1, c2);
        let tcp80 = |identity| {
            t.rules.contains_key(&(
                web,
                identity,
                POLICY_DIR_INGRESS,
                6,
                80u16.to_be_bytes(),
                POLICY_PREFIX_BITS + 24,
            ))
        };
        // Both identities holding "clients" match the remote-group rule.
        assert!(tcp80(c1) && tcp80(c2));
        assert!(!tcp80(web));
        // 10.0.0.0/8 and 10.1.0.0/16 are rule prefixes; the /8 rule is
        // compiled for both CIDR identities (the /16 lies inside it).
        assert_eq!(t.remote_v4.len(), 2);
        let icmp_ids: BTreeSet<u32> = t
            .rules
            .keys()
            .filter(|k| k.0 == web && k.3 == 1)
            .map(|k| k.1)
            .collect();
        assert_eq!(icmp_ids, t.remote_v4.values().map(|r| r.identity).collect());
        // ICMP type 8 without code: a 16-bit prefix of [type, code].
        assert!(
            t.rules
                .keys()
                .any(|k| k.0 == web && k.3 == 1 && k.4 == [8, 0] && k.5 == POLICY_PREFIX_BITS + 16)
        );
    }
}
