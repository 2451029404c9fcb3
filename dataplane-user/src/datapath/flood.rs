//! Flood sets: one device map per flood domain (network or group) and
//! slot, held by the outer map `FLOOD`, each entry a port's tap with
//! `to_vm` on it. A set this run made is updated in place (a port joining
//! a network of 4,000 is one entry, not a new map of 4,000); a set a
//! previous run made carries that run's `to_vm` and is replaced the first
//! time its slot is written.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use aya::maps::{DevMapHash, HashOfMaps, Map, MapData};
use common::{FloodKey, MAX_FLOOD_MEMBERS};
use dataplane_config::desired::Desired;

use super::DevmapPrograms;

struct FloodSet {
    map: DevMapHash<MapData>,
    /// port index -> ifindex
    members: BTreeMap<u32, u32>,
}

pub struct FloodSets {
    /// The sets this run wrote, by (slot, domain).
    sets: BTreeMap<(u32, u32), FloodSet>,
    /// Domains of each slot that may differ from what is desired.
    pending: [BTreeSet<u32>; 2],
}

impl FloodSets {
    /// Everything a previous run left is pending: it must be rewritten with
    /// this run's `to_vm`.
    pub fn open(outer: &HashOfMaps<MapData, FloodKey, DevMapHash<MapData>>) -> FloodSets {
        let mut pending: [BTreeSet<u32>; 2] = Default::default();
        for key in outer.keys().filter_map(|k| k.ok()) {
            if let Some(p) = pending.get_mut(key.slot as usize) {
                p.insert(key.domain);
            }
        }
        FloodSets {
            sets: BTreeMap::new(),
            pending,
        }
    }

    /// Notes the domains a change touched, and those of ports whose tap
    /// changed.
    pub fn mark(&mut self, d: &Desired) {
        let mut domains = d.flood.changed_domains();
        for port in d.tx_ports.changed() {
            domains.extend(d.flood.domains_of(*port));
        }
        for p in &mut self.pending {
            p.extend(domains.iter().copied());
        }
    }

    /// Refuses a domain with more ports than a flood set holds.
    pub fn check_capacity(d: &Desired) -> Result<()> {
        for domain in d.flood.changed_domains() {
            let n = d.flood.members(domain).count();
            if n > MAX_FLOOD_MEMBERS as usize {
                anyhow::bail!(
                    "flood domain {domain:#x} has {n} ports; a network or group holds at most \
                     {MAX_FLOOD_MEMBERS} on one host"
                );
            }
        }
        Ok(())
    }

    /// Brings the pending domains of `slot` to what `d` wants.
    pub fn sync(
        &mut self,
        outer: &mut HashOfMaps<MapData, FloodKey, DevMapHash<MapData>>,
        slot: u32,
        d: &Desired,
        progs: &DevmapPrograms,
    ) -> Result<()> {
        let domains: Vec<u32> = self.pending[slot as usize].iter().copied().collect();
        for domain in domains {
            let want: BTreeMap<u32, u32> = d
                .flood
                .members(domain)
                .filter_map(|p| d.tx_ports.get(&p).map(|&ifindex| (p, ifindex)))
                .collect();
            self.sync_one(outer, slot, domain, want, progs)
                .with_context(|| format!("flood set of domain {domain:#x}"))?;
            self.pending[slot as usize].remove(&domain);
        }
        Ok(())
    }

    fn sync_one(
        &mut self,
        outer: &mut HashOfMaps<MapData, FloodKey, DevMapHash<MapData>>,
        slot: u32,
        domain: u32,
        want: BTreeMap<u32, u32>,
        progs: &DevmapPrograms,
    ) -> Result<()> {
        let key = FloodKey { slot, domain };
        if want.is_empty() {
            if self.sets.remove(&(slot, domain)).is_some() || outer.get(&key, 0).is_ok() {
                let _ = outer.remove(&key);
            }
            return Ok(());
        }
        if let Some(set) = self.sets.get_mut(&(slot, domain)) {
            let stale: Vec<u32> = set
                .members
                .iter()
                .filter(|(p, i)| want.get(p) != Some(i))
                .map(|(p, _)| *p)
                .collect();
            for p in stale {
                let _ = set.map.remove(p);
                set.members.remove(&p);
            }
            for (&p, &ifindex) in &want {
                if set.members.get(&p) != Some(&ifindex) {
                    set.map
                        .insert(p, ifindex, Some(progs.for_ifindex(ifindex)), 0)?;
                    set.members.insert(p, ifindex);
                }
            }
            return Ok(());
        }
        let obj = aya_obj::Map::new_from_params(
            aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_DEVMAP_HASH as u32,
            4,
            8,
            MAX_FLOOD_MEMBERS,
            0,
        );
        let mut map = DevMapHash::try_from(Map::DevMapHash(
            MapData::create(obj, "flood_set", None).context("creating a flood set")?,
        ))?;
        for (&p, &ifindex) in &want {
            map.insert(p, ifindex, Some(progs.for_ifindex(ifindex)), 0)?;
        }
        outer.insert(key, &map, 0)?;
        self.sets
            .insert((slot, domain), FloodSet { map, members: want });
        Ok(())
    }
}
