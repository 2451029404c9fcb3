//! Many hosts: ports on other chassis are reached over VXLAN.
//!
//! A frame for a remote port is redirected like any other, through its
//! `TX_PORTS` entry, which points at the host's tunnel interface (a veth
//! pair the agent owns); `to_vm` there applies the sender's egress rules,
//! and a TC program on the pair's other end encapsulates it with the
//! network's VNI to the chassis holding the port (`REMOTE_PORTS`), or, for
//! a flood, once to every chassis with members of the flood domain
//! (`REMOTE_FLOOD`). Frames arriving from the underlay are checked
//! (`CHASSIS`: only live chassis may send; `VNIS`: only known networks),
//! stripped of their outer headers and delivered to local ports as if sent
//! from the remote port, whose host already applied its port security and
//! egress rules.

use bytemuck::{Pod, Zeroable};

use crate::maps::PortInfo;

/// `PortInfo::flags`: the tunnel pseudo port (the frame leaves the host).
pub const PORT_F_TUNNEL: u16 = 1 << 1;
/// `PortInfo::flags`: a port on another chassis.
pub const PORT_F_REMOTE: u16 = 1 << 2;

/// `TxMeta::flags`: the frame came from another chassis; the sender's host
/// applied its port security and egress rules, and it must not go back
/// out through the tunnel.
pub const TX_F_FROM_TUNNEL: u32 = 1 << 17;

/// The VXLAN UDP port (IANA).
pub const VXLAN_PORT: u16 = 4789;
/// Outer headers of a VXLAN frame over IPv4 without options: Ethernet,
/// IPv4, UDP, VXLAN.
pub const VXLAN_OVERHEAD: usize = 14 + 20 + 8 + 8;
/// VXLAN flags byte: a valid VNI follows.
pub const VXLAN_FLAG_VNI: u8 = 0x08;

/// Chassis one flood domain is replicated to, at most.
pub const MAX_FLOOD_CHASSIS: usize = 256;
/// Chassis a host knows, at most (both slots together: twice this).
pub const MAX_CHASSIS: u32 = 16384;
/// Networks with a VNI a host knows, at most.
pub const MAX_VNIS: u32 = 16384;

/// `TUNNEL[0]`: this host's tunnel endpoints, written by the agent when it
/// sets them up (not slotted). All zero: no tunnel (a single host).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct TunnelConfig {
    /// The veth end remote destinations are redirected to.
    pub tx_ifindex: u32,
    /// The collect_md VXLAN device frames are encapsulated through.
    pub vxlan_ifindex: u32,
    /// This host's underlay address.
    pub local_ip: [u8; 4],
    /// Index of the tunnel pseudo port (its counters).
    pub port: u32,
}

/// `REMOTE_PORTS`: where a port on another chassis is.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct RemotePortKey {
    pub slot: u32,
    pub port: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct RemotePort {
    /// The port as a sender or receiver (policy, identity, network, MAC).
    pub info: PortInfo,
    /// Underlay address of its chassis.
    pub chassis_ip: [u8; 4],
    /// VNI of its network.
    pub vni: u32,
    /// Index of its chassis (`Chassis::index`).
    pub chassis: u32,
}

/// `REMOTE_FLOOD` (keyed by `FloodKey`): the chassis a flood domain's
/// broadcasts, multicasts and unknown unicasts are replicated to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct RemoteFlood {
    pub count: u32,
    pub vni: u32,
    pub ips: [[u8; 4]; MAX_FLOOD_CHASSIS],
}

impl Default for RemoteFlood {
    fn default() -> Self {
        RemoteFlood {
            count: 0,
            vni: 0,
            ips: [[0; 4]; MAX_FLOOD_CHASSIS],
        }
    }
}

/// `CHASSIS`: the live chassis, by underlay address: who may send
/// encapsulated frames.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct ChassisKey {
    pub slot: u32,
    pub ip: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Chassis {
    pub index: u32,
    /// The chassis's name, NUL-padded (for inspection).
    pub name: [u8; 60],
}

impl Default for Chassis {
    fn default() -> Self {
        Chassis {
            index: 0,
            name: [0; 60],
        }
    }
}

/// `VNIS`: the network of a VNI.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct VniKey {
    pub slot: u32,
    pub vni: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct VniNetwork {
    pub network: u32,
}

#[cfg(feature = "user")]
mod pod {
    use super::*;

    const fn assert_pod<T: bytemuck::Pod>() {}

    macro_rules! pod {
        ($($t:ty),* $(,)?) => {
            $(
                const _: () = assert_pod::<$t>();
                // SAFETY: bytemuck::Pod, asserted above.
                unsafe impl aya::Pod for $t {}
            )*
        };
    }

    pod!(
        TunnelConfig,
        RemotePortKey,
        RemotePort,
        RemoteFlood,
        ChassisKey,
        Chassis,
        VniKey,
        VniNetwork,
    );
}
