//! The agent's side of `common::pinned_maps!`: for every pinned map, its
//! layout (checked against what a previous run pinned), its typed handle
//! taken from the loaded object, the sync and capacity check of every
//! slotted map, and a typed opener for the readers (`show`, `trace`,
//! `monitor`, metrics) that work from the pins alone.

use std::path::Path;

use anyhow::{Context, Result, bail};
use aya::{
    Ebpf,
    maps::{
        Array, DevMapHash, HashMap, HashOfMaps, LpmTrie, Map, MapData, PerCpuArray, ProgramArray,
        RingBuf,
    },
};
use common::Limits;
use dataplane_config::desired::SlottedMaps;

use super::slots::{SlotHash, SlotLpm, SlotStore, SlottedMap, SyncStats};

/// Layout of a map this build expects.
#[derive(Clone, Debug)]
pub struct MapSpec {
    pub name: &'static str,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

/// Opens a pinned map of the instance in `dir`.
pub fn open_pinned(dir: &Path, name: &str) -> Result<MapData> {
    let path = dir.join("maps").join(name);
    MapData::from_pin(&path).with_context(|| {
        format!(
            "cannot open {} (is `dataplane run` running for this instance?)",
            path.display()
        )
    })
}

fn take(ebpf: &mut Ebpf, name: &str) -> Result<Map> {
    ebpf.take_map(name)
        .with_context(|| format!("map {name} missing from the eBPF object"))
}

/// The typed handle of each kind of map, as the agent holds it.
macro_rules! handle {
    (slot_hash, $k:ty, $v:ty) => { SlottedMap<SlotHash<$k, $v>> };
    (slot_lpm, $k:ty, $v:ty) => { SlottedMap<SlotLpm<$k, $v>> };
    ($kind:ident, $k:ty, $v:ty) => { reader!($kind, $k, $v) };
}

/// The typed map of each kind, as a reader opens it from its pin.
macro_rules! reader {
    (array, $k:ty, $v:ty) => { Array<MapData, $v> };
    (percpu_array, $k:ty, $v:ty) => { PerCpuArray<MapData, $v> };
    (slot_hash, $k:ty, $v:ty) => { HashMap<MapData, $k, $v> };
    (slot_lpm, $k:ty, $v:ty) => { LpmTrie<MapData, $k, $v> };
    (lru_hash, $k:ty, $v:ty) => { HashMap<MapData, $k, $v> };
    (devmap_hash, $k:ty, $v:ty) => { DevMapHash<MapData> };
    (hash_of_devmaps, $k:ty, $v:ty) => { HashOfMaps<MapData, $k, DevMapHash<MapData>> };
    (prog_array, $k:ty, $v:ty) => { ProgramArray<MapData> };
    (ringbuf, $k:ty, $v:ty) => { RingBuf<MapData> };
}

/// (key size, value size) as the kernel sees them.
macro_rules! sizes {
    (slot_lpm, $k:ty, $v:ty) => {
        ((4 + size_of::<$k>()) as u32, size_of::<$v>() as u32)
    };
    (ringbuf, $k:ty, $v:ty) => {
        (0, 0)
    };
    ($kind:ident, $k:ty, $v:ty) => {
        (size_of::<$k>() as u32, size_of::<$v>() as u32)
    };
}

/// Wraps a map taken from the object into its handle.
macro_rules! wrap {
    (slot_hash, $name:ident, $map:expr, $cap:expr) => {
        SlottedMap::open(stringify!($name), SlotHash($map.try_into()?), $cap)?
    };
    (slot_lpm, $name:ident, $map:expr, $cap:expr) => {
        SlottedMap::open(stringify!($name), SlotLpm($map.try_into()?), $cap)?
    };
    ($kind:ident, $name:ident, $map:expr, $cap:expr) => {
        $map.try_into()
            .with_context(|| format!("map {} has an unexpected type", stringify!($name)))?
    };
}

macro_rules! agent_maps {
    ($( $(#[$doc:meta])* $name:ident $field:ident : $kind:ident < $k:ty, $v:ty > = $size:expr ; )*) => {
        /// Every pinned map this build expects, sized for `limits`.
        pub fn specs(limits: Limits) -> Vec<MapSpec> {
            vec![ $( {
                let (key_size, value_size) = sizes!($kind, $k, $v);
                MapSpec {
                    name: stringify!($name),
                    key_size,
                    value_size,
                    max_entries: $size.entries(limits),
                }
            } ),* ]
        }

        /// The agent's handles on the pinned maps.
        pub struct Maps {
            $( $(#[$doc])* pub $field: handle!($kind, $k, $v), )*
        }

        impl Maps {
            /// Takes every map out of the loaded object. A slotted map
            /// holds half its entries per slot.
            pub fn take(ebpf: &mut Ebpf, limits: Limits) -> Result<Maps> {
                Ok(Maps { $(
                    $field: wrap!(
                        $kind,
                        $name,
                        take(ebpf, stringify!($name))?,
                        $size.entries(limits) as usize / 2
                    ),
                )* })
            }

            /// Notes the keys a change touched in every slotted map.
            pub fn mark(&mut self, d: &SlottedMaps) {
                $( slotted_only!($kind, self.$field.mark(&d.$field)); )*
            }

            /// Brings `slot` of every slotted map to `d`.
            pub fn sync(&mut self, slot: u32, d: &SlottedMaps) -> Result<SyncStats> {
                let mut stats = SyncStats::default();
                $( slotted_only!($kind, stats += self.$field.sync(slot, &d.$field)?); )*
                Ok(stats)
            }

            /// Refuses a configuration that does not fit one slot.
            pub fn check_capacity(&self, d: &SlottedMaps) -> Result<()> {
                $( slotted_only!($kind, check(&self.$field, d.$field.len())?); )*
                Ok(())
            }
        }

        /// Typed openers of the pinned maps, for readers.
        #[allow(non_snake_case)]
        pub mod pinned {
            use super::*;
            $(
                $(#[$doc])*
                pub fn $name(dir: &Path) -> Result<reader!($kind, $k, $v)> {
                    let map = Map::from_map_data(open_pinned(dir, stringify!($name))?)?;
                    map.try_into()
                        .with_context(|| format!("pinned map {} has an unexpected type", stringify!($name)))
                }
            )*
        }
    };
}

macro_rules! slotted_only {
    (slot_hash, $e:expr) => {
        $e
    };
    (slot_lpm, $e:expr) => {
        $e
    };
    ($kind:ident, $e:expr) => {
        ()
    };
}

fn check<S: SlotStore>(m: &SlottedMap<S>, n: usize) -> Result<()> {
    if n > m.capacity {
        bail!(
            "configuration needs {n} entries in map {} but it holds {} per slot (raise --max-ports)",
            m.name,
            m.capacity
        );
    }
    Ok(())
}

common::pinned_maps!(agent_maps);
