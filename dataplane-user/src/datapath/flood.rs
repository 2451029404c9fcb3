//! Flood sets: one device map per flood domain (network or group) and
//! slot, held by the outer map `FLOOD`, each entry a port's tap with
//! `to_vm` on it. A set this run made is updated in place (a port joining
//! a network of 4,000 is one entry, not a new map of 4,000); a set a
//! previous run made carries that run's `to_vm` and is replaced the first
//! time its slot is written.
//!
//! New sets enter `FLOOD` in one batch per apply: the kernel waits for an
//! RCU grace period after every update of a map of maps, one per syscall,
//! and a full read of a large cloud makes thousands of sets (measured: 40
//! of the 60 s of a 100,000-port resync went to those waits).

use std::{
    collections::{BTreeMap, BTreeSet},
    os::fd::{AsFd, AsRawFd, RawFd},
    path::PathBuf,
};

use anyhow::{Context, Result};
use aya::maps::{DevMapHash, HashOfMaps, Map, MapData};
use common::{FloodKey, MAX_FLOOD_MEMBERS};
use dataplane_config::desired::Desired;

use super::{DevmapPrograms, maps::open_pinned};

struct FloodSet {
    map: DevMapHash<MapData>,
    /// `map`'s descriptor (DevMapHash does not lend its MapData), valid
    /// while `map` lives.
    fd: RawFd,
    /// port index -> ifindex
    members: BTreeMap<u32, u32>,
}

pub struct FloodSets {
    /// The sets this run wrote, by (slot, domain).
    sets: BTreeMap<(u32, u32), FloodSet>,
    /// Domains of each slot that may differ from what is desired.
    pending: [BTreeSet<u32>; 2],
    /// The instance's pin directory, where `FLOOD` is opened for batches.
    dir: PathBuf,
}

impl FloodSets {
    /// Everything a previous run left is pending: it must be rewritten with
    /// this run's `to_vm`.
    pub fn open(
        outer: &HashOfMaps<MapData, FloodKey, DevMapHash<MapData>>,
        dir: PathBuf,
    ) -> FloodSets {
        let mut pending: [BTreeSet<u32>; 2] = Default::default();
        for key in outer.keys().filter_map(|k| k.ok()) {
            if let Some(p) = pending.get_mut(key.slot as usize) {
                p.insert(key.domain);
            }
        }
        FloodSets {
            sets: BTreeMap::new(),
            pending,
            dir,
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
        let mut fresh = Vec::new();
        for &domain in &domains {
            let want: BTreeMap<u32, u32> = d
                .flood
                .members(domain)
                .filter_map(|p| d.tx_ports.get(&p).map(|&ifindex| (p, ifindex)))
                .collect();
            if self
                .sync_one(outer, slot, domain, want, progs)
                .with_context(|| format!("flood set of domain {domain:#x}"))?
            {
                fresh.push(FloodKey { slot, domain });
            }
        }
        if let Err(e) = self.publish(&fresh) {
            // Sets that did not reach FLOOD are made again next time.
            for key in &fresh {
                self.sets.remove(&(key.slot, key.domain));
            }
            return Err(e);
        }
        for domain in domains {
            self.pending[slot as usize].remove(&domain);
        }
        Ok(())
    }

    /// Puts the sets made for `keys` into `FLOOD`, in one syscall.
    fn publish(&self, keys: &[FloodKey]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let fds: Vec<u32> = keys
            .iter()
            .filter_map(|k| self.sets.get(&(k.slot, k.domain)))
            .map(|set| set.map_fd())
            .collect();
        let outer = open_pinned(&self.dir, "FLOOD")?;
        update_batch(&outer, keys, &fds).context("adding flood sets to FLOOD")
    }

    fn sync_one(
        &mut self,
        outer: &mut HashOfMaps<MapData, FloodKey, DevMapHash<MapData>>,
        slot: u32,
        domain: u32,
        want: BTreeMap<u32, u32>,
        progs: &DevmapPrograms,
    ) -> Result<bool> {
        let key = FloodKey { slot, domain };
        if want.is_empty() {
            if self.sets.remove(&(slot, domain)).is_some() || outer.get(&key, 0).is_ok() {
                let _ = outer.remove(&key);
            }
            return Ok(false);
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
            return Ok(false);
        }
        let obj = aya_obj::Map::new_from_params(
            aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_DEVMAP_HASH as u32,
            4,
            8,
            MAX_FLOOD_MEMBERS,
            0,
        );
        let data = MapData::create(obj, "flood_set", None).context("creating a flood set")?;
        let fd = data.fd().as_fd().as_raw_fd();
        let mut map = DevMapHash::try_from(Map::DevMapHash(data))?;
        for (&p, &ifindex) in &want {
            map.insert(p, ifindex, Some(progs.for_ifindex(ifindex)), 0)?;
        }
        self.sets.insert(
            (slot, domain),
            FloodSet {
                map,
                fd,
                members: want,
            },
        );
        Ok(true)
    }
}

impl FloodSet {
    fn map_fd(&self) -> u32 {
        self.fd as u32
    }
}

/// BPF_MAP_UPDATE_BATCH of `keys` to the inner maps `fds` (aya 0.14 has
/// no batch operations). The kernel waits for one grace period after the
/// whole batch instead of one per element.
fn update_batch(outer: &MapData, keys: &[FloodKey], fds: &[u32]) -> Result<()> {
    use aya_obj::generated::{bpf_attr, bpf_cmd};
    anyhow::ensure!(keys.len() == fds.len(), "a flood set without its map");
    let mut done = 0;
    while done < keys.len() {
        // SAFETY: bpf_attr is plain data; all-zero is its neutral value.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        let n = (keys.len() - done) as u32;
        // The batch member of the union, which this command reads; the
        // pointers are to live slices of `n` elements.
        attr.batch.map_fd = outer.fd().as_fd().as_raw_fd() as u32;
        attr.batch.keys = keys[done..].as_ptr() as u64;
        attr.batch.values = fds[done..].as_ptr() as u64;
        attr.batch.count = n;
        // SAFETY: a bpf(2) call with a valid attr of the size given.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                bpf_cmd::BPF_MAP_UPDATE_BATCH as libc::c_long,
                &raw mut attr,
                size_of::<bpf_attr>(),
            )
        };
        // SAFETY: the kernel wrote back how many elements it processed.
        let processed = unsafe { attr.batch.count } as usize;
        if r < 0 {
            let err = std::io::Error::last_os_error();
            return Err(err).context(format!(
                "BPF_MAP_UPDATE_BATCH stopped after {} of {} sets",
                done + processed,
                keys.len()
            ));
        }
        anyhow::ensure!(processed > 0, "BPF_MAP_UPDATE_BATCH made no progress");
        done += processed;
    }
    Ok(())
}
