//! Writing entries into the desired state: the key of each kind of entry
//! a port, router or group contributes, and the few ways an entry changes
//! (written or deleted only if it differs, a flag set or cleared, a flood
//! domain's members).

use std::collections::BTreeSet;

use common::{
    ADDR_F_SHARED, LpmKey, PORT_ADDR_PREFIX_BITS, PortAddrV4Key, PortAddrV6Key, PortMacKey,
};

use crate::{desired::Flood, journal::Journaled};

/// (MAC, address, prefix length) of a port's address entry.
pub type Addr<const N: usize> = ([u8; 6], [u8; N], u8);

pub fn mac_key(port: u32, mac: [u8; 6]) -> PortMacKey {
    PortMacKey {
        slot: 0,
        port,
        mac,
        _pad: [0; 2],
    }
}

pub fn v4_key(port: u32, (mac, addr, plen): Addr<4>) -> LpmKey<PortAddrV4Key> {
    LpmKey {
        prefix_len: PORT_ADDR_PREFIX_BITS + u32::from(plen),
        data: PortAddrV4Key {
            slot: 0,
            port,
            mac,
            addr,
            _pad: [0; 2],
        },
    }
}

pub fn v6_key(port: u32, (mac, addr, plen): Addr<16>) -> LpmKey<PortAddrV6Key> {
    LpmKey {
        prefix_len: PORT_ADDR_PREFIX_BITS + u32::from(plen),
        data: PortAddrV6Key {
            slot: 0,
            port,
            mac,
            addr,
            _pad: [0; 2],
        },
    }
}

/// Makes a flood domain hold exactly `ports`.
pub fn set_flood(flood: &mut Flood, domain: u32, ports: BTreeSet<u32>) {
    let stale: Vec<u32> = flood
        .members(domain)
        .filter(|p| !ports.contains(p))
        .collect();
    for p in stale {
        flood.remove(domain, p);
    }
    for p in ports {
        flood.add(domain, p);
    }
}

/// Sets or clears `ADDR_F_SHARED` in an entry's flags.
pub fn shared<K: Ord + Clone, V: Clone + PartialEq>(
    map: &mut Journaled<K, V>,
    key: K,
    on: bool,
    flags: impl Fn(&mut V) -> &mut u32,
) {
    let Some(mut v) = map.get(&key).cloned() else {
        return;
    };
    let before = v.clone();
    let f = flags(&mut v);
    if on {
        *f |= ADDR_F_SHARED;
    } else {
        *f &= !ADDR_F_SHARED;
    }
    if v != before {
        map.insert(key, v);
    }
}

/// Writes or deletes an entry, recording it only if it changes.
pub fn put<K: Ord + Clone, V: Clone + PartialEq>(
    map: &mut Journaled<K, V>,
    key: K,
    value: Option<V>,
) {
    match value {
        Some(v) if map.get(&key) != Some(&v) => {
            map.insert(key, v);
        }
        Some(_) => {}
        None => {
            map.remove(&key);
        }
    }
}
