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
//!
//! Incrementally: a policy is compiled again only when its groups' rules
//! change, when a set its rules name as remote appears or goes, or when a
//! rule prefix inside one of its prefixes appears or goes. A port joining
//! an existing set costs nothing here.

use std::collections::{BTreeMap, BTreeSet};

use common::{
    LpmKey, POLICY_DIR_EGRESS, POLICY_DIR_INGRESS, POLICY_PREFIX_BITS, POLICY_V6, PolicyEntry,
    PolicyKey, REMOTE_PREFIX_BITS, RemoteIdentity, RemoteV4Key, RemoteV6Key,
};
use ipnet::IpNet;

use super::{CompileError, Engine, Indexes, entries::put};
use crate::{
    journal::{JSet, Journaled, members},
    objects::{Direction, PortMatch, Remote, Rule},
    store::{Store, Touched},
};

/// A set of security groups shared by some ports.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SetRecord {
    groups: Vec<String>,
    /// Ports with this set (0: goes at the next settle).
    users: u64,
}

#[derive(Debug, Default)]
pub struct Policies {
    /// Set key -> its groups and users.
    sets: Journaled<String, SetRecord>,
    /// (security group, set key)
    sets_with_group: JSet<(String, String)>,
    /// (policy, compiled key): what each policy compiled to.
    entries: JSet<(u32, LpmKey<PolicyKey>)>,
    /// Rule prefix -> number of groups naming it.
    prefixes: Journaled<IpNet, u32>,
    /// (rule prefix, security group) and its reverse.
    prefix_groups: JSet<(IpNet, String)>,
    group_prefixes: JSet<(String, IpNet)>,
    /// Sets created since the last settle.
    created: BTreeSet<String>,
}

/// A set's key: its group ids, sorted, joined by a separator ids do not
/// hold. The empty set (ports without groups or port security) is "".
fn set_key(groups: &[String]) -> String {
    groups.join("\u{1f}")
}

impl Policies {
    /// One more port uses the set `groups`; returns its key and policy.
    pub fn use_set(
        &mut self,
        ix: &mut Indexes,
        groups: &[String],
    ) -> Result<(String, u32), CompileError> {
        let key = set_key(groups);
        let policy = ix.assign(&key)?;
        let fresh = self.sets.update(&key, |rec| match rec {
            Some(r) => {
                r.users += 1;
                false
            }
            None => {
                *rec = Some(SetRecord {
                    groups: groups.to_vec(),
                    users: 1,
                });
                true
            }
        });
        if fresh {
            for g in groups {
                self.sets_with_group.add((g.clone(), key.clone()));
            }
            self.created.insert(key.clone());
        }
        Ok((key, policy))
    }

    /// One port less uses the set `key` (it goes at the next settle if
    /// none is left).
    pub fn release_set(&mut self, key: &String) {
        self.sets.update(key, |rec| {
            if let Some(r) = rec {
                r.users = r.users.saturating_sub(1);
            }
        });
    }

    pub fn commit(&mut self) {
        self.sets.commit();
        self.sets_with_group.commit();
        self.entries.commit();
        self.prefixes.commit();
        self.prefix_groups.commit();
        self.group_prefixes.commit();
        self.created.clear();
    }

    pub fn rollback(&mut self) {
        self.sets.rollback();
        self.sets_with_group.rollback();
        self.entries.rollback();
        self.prefixes.rollback();
        self.prefix_groups.rollback();
        self.group_prefixes.rollback();
        self.created.clear();
    }

    /// Sets holding security group `g`.
    fn sets_holding<'a>(&'a self, g: &'a String) -> impl Iterator<Item = &'a String> + 'a {
        members(&self.sets_with_group, g)
    }
}

/// Sets whose rules name one of `groups` as remote.
fn sets_naming(p: &Policies, store: &Store, groups: &[String], out: &mut BTreeSet<String>) {
    for x in groups {
        for g in store.groups_naming(x) {
            out.extend(p.sets_holding(g).cloned());
        }
    }
}

/// Brings the policies up to date with the sets in use and the groups
/// `touched` changed.
pub fn settle(e: &mut Engine, store: &Store, touched: &Touched) -> Result<(), CompileError> {
    let mut dirty = BTreeSet::new();
    for key in std::mem::take(&mut e.policy.created) {
        let groups = e.policy.sets.get(&key).map(|r| r.groups.clone());
        sets_naming(&e.policy, store, &groups.unwrap_or_default(), &mut dirty);
        dirty.insert(key);
    }
    let unused: Vec<(String, SetRecord)> = e
        .policy
        .sets
        .iter()
        .filter(|(k, r)| r.users == 0 && !k.is_empty())
        .map(|(k, r)| (k.clone(), r.clone()))
        .collect();
    for (key, rec) in unused {
        remove_set(e, &key, &rec.groups);
        sets_naming(&e.policy, store, &rec.groups, &mut dirty);
        dirty.remove(&key);
    }
    for g in &touched.security_groups {
        prefixes_of_group(e, store, g, &mut dirty)?;
        dirty.extend(e.policy.sets_holding(g).cloned());
    }
    for key in dirty {
        if e.policy.sets.contains_key(&key) {
            compile_set(e, store, &key);
        }
    }
    Ok(())
}

fn remove_set(e: &mut Engine, key: &String, groups: &[String]) {
    e.policy.sets.remove(key);
    for g in groups {
        e.policy.sets_with_group.remove(&(g.clone(), key.clone()));
    }
    if let Some(policy) = e.ix.policies.unassign(key) {
        write_entries(e, policy, BTreeMap::new());
    }
}

/// Follows the rule prefixes of group `g`: a prefix no rule named before
/// gets a CIDR identity, one no rule names any more loses it; either way
/// the policies with a rule prefix around it are compiled again.
fn prefixes_of_group(
    e: &mut Engine,
    store: &Store,
    g: &String,
    dirty: &mut BTreeSet<String>,
) -> Result<(), CompileError> {
    let now: BTreeSet<IpNet> = store
        .security_groups()
        .get(g)
        .map(|sg| {
            sg.rules
                .iter()
                .filter_map(|r| match r.remote {
                    Remote::Prefix(p) => Some(p),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let before: BTreeSet<IpNet> = members(&e.policy.group_prefixes, g).copied().collect();
    let mut changed = Vec::new();
    for &p in before.difference(&now) {
        e.policy.group_prefixes.remove(&(g.clone(), p));
        e.policy.prefix_groups.remove(&(p, g.clone()));
        let last = e.policy.prefixes.update(&p, |n| {
            let left = n.map(|c| c.saturating_sub(1)).unwrap_or(0);
            *n = (left > 0).then_some(left);
            left == 0
        });
        if last {
            if let Some(id) = e.ix.cidrs.unassign(&p.to_string()) {
                remote_entry(e, p, None);
                let _ = id;
            }
            changed.push(p);
        }
    }
    for &p in now.difference(&before) {
        e.policy.group_prefixes.add((g.clone(), p));
        e.policy.prefix_groups.add((p, g.clone()));
        let first = e.policy.prefixes.update(&p, |n| {
            let c = n.unwrap_or(0) + 1;
            *n = Some(c);
            c == 1
        });
        if first {
            let id = e.ix.cidrs.assign(&p.to_string())?;
            remote_entry(e, p, Some(id));
            changed.push(p);
        }
    }
    for p in changed {
        // Rules whose prefix holds p are compiled for p's identity.
        for len in 0..=p.prefix_len() {
            let Ok(outer) = IpNet::new(p.addr(), len).map(|n| n.trunc()) else {
                continue;
            };
            let groups: Vec<String> = e
                .policy
                .prefix_groups
                .range((outer, String::new())..)
                .take_while(|((q, _), _)| *q == outer)
                .map(|((_, g), _)| g.clone())
                .collect();
            for g in groups {
                dirty.extend(e.policy.sets_holding(&g).cloned());
            }
        }
    }
    Ok(())
}

fn remote_entry(e: &mut Engine, p: IpNet, identity: Option<u32>) {
    let value = identity.map(|identity| RemoteIdentity { identity });
    match p {
        IpNet::V4(n) => {
            let key = LpmKey {
                prefix_len: REMOTE_PREFIX_BITS + u32::from(n.prefix_len()),
                data: RemoteV4Key {
                    slot: 0,
                    addr: n.network().octets(),
                },
            };
            put(&mut e.desired.slotted.remote_v4, key, value);
        }
        IpNet::V6(n) => {
            let key = LpmKey {
                prefix_len: REMOTE_PREFIX_BITS + u32::from(n.prefix_len()),
                data: RemoteV6Key {
                    slot: 0,
                    addr: n.network().octets(),
                },
            };
            put(&mut e.desired.slotted.remote_v6, key, value);
        }
    }
}

/// Compiles set `key`'s policy again and writes the difference.
fn compile_set(e: &mut Engine, store: &Store, key: &String) {
    let Some(policy) = e.ix.policies.get(key) else {
        return;
    };
    let groups = e
        .policy
        .sets
        .get(key)
        .map(|r| r.groups.clone())
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for g in &groups {
        let (Some(sg), Some(gi)) = (store.security_groups().get(g), e.ix.security_groups.get(g))
        else {
            continue;
        };
        for rule in &sg.rules {
            let identities = identities(e, &rule.remote);
            for (dir, proto, port, bits) in matches(rule) {
                for &identity in &identities {
                    let k = LpmKey {
                        prefix_len: bits,
                        data: PolicyKey {
                            slot: 0,
                            policy,
                            identity,
                            dir,
                            proto,
                            port,
                        },
                    };
                    out.insert(k, PolicyEntry { group: gi });
                }
            }
        }
    }
    write_entries(e, policy, out);
}

/// Makes `policy`'s entries exactly `now`.
fn write_entries(e: &mut Engine, policy: u32, now: BTreeMap<LpmKey<PolicyKey>, PolicyEntry>) {
    let start = (policy, LpmKey::<PolicyKey>::default());
    let before: Vec<LpmKey<PolicyKey>> = e
        .policy
        .entries
        .range(start..)
        .take_while(|((p, _), _)| *p == policy)
        .map(|((_, k), _)| *k)
        .collect();
    for k in before {
        if !now.contains_key(&k) {
            e.desired.slotted.policy.remove(&k);
            e.policy.entries.remove(&(policy, k));
        }
    }
    for (k, v) in now {
        put(&mut e.desired.slotted.policy, k, Some(v));
        e.policy.entries.add((policy, k));
    }
}

/// The identities a rule's remote matches: any (0), every set holding the
/// remote group, or the CIDR identity of every rule prefix inside the
/// remote prefix.
fn identities(e: &Engine, remote: &Remote) -> Vec<u32> {
    match remote {
        Remote::Any => vec![0],
        Remote::Group(x) => e
            .policy
            .sets_holding(x)
            .filter_map(|s| e.ix.policies.get(s))
            .collect(),
        Remote::Prefix(p) => {
            let max = p.max_prefix_len();
            let (Ok(lo), Ok(hi)) = (
                IpNet::new(p.network(), p.prefix_len()),
                IpNet::new(p.broadcast(), max),
            ) else {
                return Vec::new();
            };
            e.policy
                .prefixes
                .range(lo..=hi)
                .filter(|(r, _)| p.contains(*r))
                .filter_map(|(r, _)| e.ix.cidrs.get(&r.to_string()))
                .collect()
        }
    }
}

/// (direction | version, protocol, port bytes, key prefix length) of each
/// POLICY entry a rule needs, for one identity.
fn matches(rule: &Rule) -> Vec<(u8, u8, [u8; 2], u32)> {
    let mut dir = match rule.direction {
        Direction::Ingress => POLICY_DIR_INGRESS,
        Direction::Egress => POLICY_DIR_EGRESS,
    };
    if rule.ipv6 {
        dir |= POLICY_V6;
    }
    match (rule.protocol, rule.ports) {
        (None, _) => vec![(dir, 0, [0, 0], POLICY_PREFIX_BITS)],
        (Some(proto), PortMatch::Any) => vec![(dir, proto, [0, 0], POLICY_PREFIX_BITS + 8)],
        (Some(proto), PortMatch::Range(lo, hi)) => port_prefixes(lo, hi)
            .into_iter()
            .map(|(start, bits)| {
                (
                    dir,
                    proto,
                    start.to_be_bytes(),
                    POLICY_PREFIX_BITS + 8 + u32::from(bits),
                )
            })
            .collect(),
        (Some(proto), PortMatch::Icmp(ty, None)) => {
            vec![(dir, proto, [ty, 0], POLICY_PREFIX_BITS + 16)]
        }
        (Some(proto), PortMatch::Icmp(ty, Some(code))) => {
            vec![(dir, proto, [ty, code], POLICY_PREFIX_BITS + 24)]
        }
    }
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
