//! Slotted key types of the configuration maps and their slot-free forms
//! used by [`dataplane_config::compile::Desired`].

use aya::maps::lpm_trie::Key;
use common::{
    FdbKey, GroupMemberKey, NEIGH_PREFIX_BITS, NeighV4Key, NeighV6Key, PORT_ADDR_PREFIX_BITS,
    PolicyKey, PortAddrV4Key, PortAddrV6Key, PortKey, PortMacKey, REMOTE_PREFIX_BITS,
    ROUTE_PREFIX_BITS, RemoteV4Key, RemoteV6Key, RouteV4Key, RouteV6Key,
};

use super::slots::{SlotKey, SlotLpmKey};
use dataplane_config::compile::{AddrV4, AddrV6};

impl SlotKey for PortKey {
    type Bare = u32;
    fn with_slot(slot: u32, ifindex: &u32) -> Self {
        PortKey {
            slot,
            ifindex: *ifindex,
        }
    }
    fn split(&self) -> (u32, u32) {
        (self.slot, self.ifindex)
    }
}

impl SlotKey for PortMacKey {
    type Bare = (u32, [u8; 6]);
    fn with_slot(slot: u32, &(port, mac): &(u32, [u8; 6])) -> Self {
        PortMacKey {
            slot,
            port,
            mac,
            _pad: [0; 2],
        }
    }
    fn split(&self) -> (u32, (u32, [u8; 6])) {
        (self.slot, (self.port, self.mac))
    }
}

impl SlotLpmKey for PortAddrV4Key {
    type Bare = AddrV4;
    fn with_slot(slot: u32, &(port, mac, addr, plen): &AddrV4) -> Key<Self> {
        Key::new(
            PORT_ADDR_PREFIX_BITS + u32::from(plen),
            PortAddrV4Key {
                slot,
                port,
                mac,
                addr,
                _pad: [0; 2],
            },
        )
    }
    fn split(key: &Key<Self>) -> (u32, AddrV4) {
        let d = key.data();
        let plen = key.prefix_len().saturating_sub(PORT_ADDR_PREFIX_BITS) as u8;
        (d.slot, (d.port, d.mac, d.addr, plen))
    }
}

impl SlotLpmKey for PortAddrV6Key {
    type Bare = AddrV6;
    fn with_slot(slot: u32, &(port, mac, addr, plen): &AddrV6) -> Key<Self> {
        Key::new(
            PORT_ADDR_PREFIX_BITS + u32::from(plen),
            PortAddrV6Key {
                slot,
                port,
                mac,
                addr,
                _pad: [0; 2],
            },
        )
    }
    fn split(key: &Key<Self>) -> (u32, AddrV6) {
        let d = key.data();
        let plen = key.prefix_len().saturating_sub(PORT_ADDR_PREFIX_BITS) as u8;
        (d.slot, (d.port, d.mac, d.addr, plen))
    }
}

impl SlotKey for FdbKey {
    type Bare = (u32, [u8; 6]);
    fn with_slot(slot: u32, &(network, mac): &(u32, [u8; 6])) -> Self {
        FdbKey {
            slot,
            network,
            mac,
            _pad: [0; 2],
        }
    }
    fn split(&self) -> (u32, (u32, [u8; 6])) {
        (self.slot, (self.network, self.mac))
    }
}

impl SlotKey for GroupMemberKey {
    type Bare = (u32, u32);
    fn with_slot(slot: u32, &(group, port): &(u32, u32)) -> Self {
        GroupMemberKey { slot, group, port }
    }
    fn split(&self) -> (u32, (u32, u32)) {
        (self.slot, (self.group, self.port))
    }
}

impl SlotLpmKey for NeighV4Key {
    type Bare = (u32, [u8; 4], u8);
    fn with_slot(slot: u32, &(network, addr, plen): &(u32, [u8; 4], u8)) -> Key<Self> {
        Key::new(
            NEIGH_PREFIX_BITS + u32::from(plen),
            NeighV4Key {
                slot,
                network,
                addr,
            },
        )
    }
    fn split(key: &Key<Self>) -> (u32, (u32, [u8; 4], u8)) {
        let d = key.data();
        let plen = key.prefix_len().saturating_sub(NEIGH_PREFIX_BITS) as u8;
        (d.slot, (d.network, d.addr, plen))
    }
}

impl SlotLpmKey for NeighV6Key {
    type Bare = (u32, [u8; 16], u8);
    fn with_slot(slot: u32, &(network, addr, plen): &(u32, [u8; 16], u8)) -> Key<Self> {
        Key::new(
            NEIGH_PREFIX_BITS + u32::from(plen),
            NeighV6Key {
                slot,
                network,
                addr,
            },
        )
    }
    fn split(key: &Key<Self>) -> (u32, (u32, [u8; 16], u8)) {
        let d = key.data();
        let plen = key.prefix_len().saturating_sub(NEIGH_PREFIX_BITS) as u8;
        (d.slot, (d.network, d.addr, plen))
    }
}

impl SlotLpmKey for RouteV4Key {
    type Bare = (u32, [u8; 4], u8);
    fn with_slot(slot: u32, &(router, addr, plen): &(u32, [u8; 4], u8)) -> Key<Self> {
        Key::new(
            ROUTE_PREFIX_BITS + u32::from(plen),
            RouteV4Key { slot, router, addr },
        )
    }
    fn split(key: &Key<Self>) -> (u32, (u32, [u8; 4], u8)) {
        let d = key.data();
        let plen = key.prefix_len().saturating_sub(ROUTE_PREFIX_BITS) as u8;
        (d.slot, (d.router, d.addr, plen))
    }
}

impl SlotLpmKey for RouteV6Key {
    type Bare = (u32, [u8; 16], u8);
    fn with_slot(slot: u32, &(router, addr, plen): &(u32, [u8; 16], u8)) -> Key<Self> {
        Key::new(
            ROUTE_PREFIX_BITS + u32::from(plen),
            RouteV6Key { slot, router, addr },
        )
    }
    fn split(key: &Key<Self>) -> (u32, (u32, [u8; 16], u8)) {
        let d = key.data();
        let plen = key.prefix_len().saturating_sub(ROUTE_PREFIX_BITS) as u8;
        (d.slot, (d.router, d.addr, plen))
    }
}

impl SlotLpmKey for PolicyKey {
    type Bare = dataplane_config::policy::PolicyRule;
    fn with_slot(
        slot: u32,
        &(policy, identity, dir, proto, port, bits): &dataplane_config::policy::PolicyRule,
    ) -> Key<Self> {
        Key::new(
            bits,
            PolicyKey {
                slot,
                policy,
                identity,
                dir,
                proto,
                port,
            },
        )
    }
    fn split(key: &Key<Self>) -> (u32, dataplane_config::policy::PolicyRule) {
        let d = key.data();
        let bits = key.prefix_len();
        (d.slot, (d.policy, d.identity, d.dir, d.proto, d.port, bits))
    }
}

impl SlotLpmKey for RemoteV4Key {
    type Bare = ([u8; 4], u8);
    fn with_slot(slot: u32, &(addr, plen): &([u8; 4], u8)) -> Key<Self> {
        Key::new(
            REMOTE_PREFIX_BITS + u32::from(plen),
            RemoteV4Key { slot, addr },
        )
    }
    fn split(key: &Key<Self>) -> (u32, ([u8; 4], u8)) {
        let d = key.data();
        let plen = key.prefix_len().saturating_sub(REMOTE_PREFIX_BITS) as u8;
        (d.slot, (d.addr, plen))
    }
}

impl SlotLpmKey for RemoteV6Key {
    type Bare = ([u8; 16], u8);
    fn with_slot(slot: u32, &(addr, plen): &([u8; 16], u8)) -> Key<Self> {
        Key::new(
            REMOTE_PREFIX_BITS + u32::from(plen),
            RemoteV6Key { slot, addr },
        )
    }
    fn split(key: &Key<Self>) -> (u32, ([u8; 16], u8)) {
        let d = key.data();
        let plen = key.prefix_len().saturating_sub(REMOTE_PREFIX_BITS) as u8;
        (d.slot, (d.addr, plen))
    }
}
