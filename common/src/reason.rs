//! Why the datapath dropped a packet: one enum shared by both sides, and a
//! counter struct with one named field per reason so that `bpftool map dump`
//! on the pinned counters shows the reason names.

macro_rules! drop_reasons {
    ($( $variant:ident => $field:ident, $desc:literal; )*) => {
        /// A drop reason. The discriminant is the index of the reason's
        /// counter inside [`DropCounters`].
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum DropReason {
            $( $variant, )*
        }

        /// One counter per drop reason, in the order of [`DropReason`].
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct DropCounters {
            $( pub $field: u64, )*
        }

        impl DropReason {
            /// Every reason, in discriminant order.
            pub const ALL: &'static [DropReason] = &[ $( DropReason::$variant, )* ];

            /// The snake_case name used in counters, logs and the CLI.
            pub const fn name(self) -> &'static str {
                match self { $( DropReason::$variant => stringify!($field), )* }
            }

            /// A one-line explanation for operators.
            pub const fn description(self) -> &'static str {
                match self { $( DropReason::$variant => $desc, )* }
            }

            pub const fn from_u32(value: u32) -> Option<DropReason> {
                if (value as usize) < DROP_REASON_COUNT {
                    Some(Self::ALL[value as usize])
                } else {
                    None
                }
            }
        }

        impl DropCounters {
            pub const fn get(&self, reason: DropReason) -> u64 {
                match reason { $( DropReason::$variant => self.$field, )* }
            }

            pub fn add(&mut self, other: &DropCounters) {
                $( self.$field += other.$field; )*
            }
        }
    };
}

drop_reasons! {
    // Parsing.
    Malformed => malformed, "truncated or malformed header";
    UnknownPort => unknown_port, "frame on an interface that is not a configured port";
    // Port security: what a VM may send.
    SrcMac => src_mac, "Ethernet source is not the port's MAC or a pair's MAC";
    Ethertype => ethertype, "ethertype not allowed (only IPv4, ARP and IPv6 pass)";
    Ipv4Src => ipv4_src, "IPv4 (source IP, source MAC) is not a fixed IP or an allowed address pair";
    Ipv6Src => ipv6_src, "IPv6 (source IP, source MAC) is not a fixed IP, a pair or the MAC's link-local";
    ArpSha => arp_sha, "ARP sender MAC differs from the Ethernet source";
    ArpSpa => arp_spa, "ARP (sender IP, sender MAC) is not allowed";
    DhcpServer => dhcp_server, "DHCPv4 server message (UDP source port 67) from a VM";
    Dhcpv6Server => dhcpv6_server, "DHCPv6 server message (UDP source port 547) from a VM";
    RouterAdvert => router_advert, "ICMPv6 router advertisement or redirect from a VM";
    NdTarget => nd_target, "neighbour advertisement for a target the port may not use";
    NdLladdr => nd_lladdr, "neighbour discovery link-layer address the port may not use";
    IpFragment => ip_fragment, "IP fragment that hides or rewrites the transport header";
    // Forwarding.
    NoRoute => no_route, "routed packet to an address no port or router owns, or that is never routed";
    TtlExceeded => ttl_exceeded, "TTL or hop limit expired on a routed packet";
    MtuExceeded => mtu_exceeded, "routed packet larger than the egress network's MTU";
    ToRouter => to_router, "packet for a router's own address that the router does not answer";
    IngressMac => ingress_mac, "frame not addressed to the receiving port's MACs";
    Hairpin => hairpin, "frame would go back out of the port it came from";
    RedirectFailed => redirect_failed, "destination interface missing from the device map";
    // Tunnels between chassis.
    TunnelSource => tunnel_source, "encapsulated frame from an address that is not a live chassis, or not the sender's";
    TunnelVni => tunnel_vni, "encapsulated frame for a VNI of no network on this host";
    // The external network (router gateways, floating IPs).
    NoUplink => no_uplink, "routed to an external network whose uplink is not on this host";
    ExtResolving => ext_resolving, "external next hop's MAC not known yet: an ARP request was sent instead";
    NatExhausted => nat_exhausted, "no free port to SNAT a new connection to this peer";
    NoNat => no_nat, "no NAT mapping: to a gateway address but of no SNAT connection, an ICMP error from outside about no packet the gateway translated, or leaving with a protocol SNAT does not translate";
    UplinkSrc => uplink_src, "from the external network with a source address the router reaches inside (reverse path)";
    // Security groups and connection tracking.
    SgEgress => sg_egress, "no egress security group rule allows the connection";
    SgIngress => sg_ingress, "no ingress security group rule allows the connection";
    CtInvalid => ct_invalid, "packet does not fit the tracked connection state";
}

/// Number of drop reasons; the size of [`DropCounters`] in `u64`s.
pub const DROP_REASON_COUNT: usize = size_of::<DropCounters>() / size_of::<u64>();

const _: () = assert!(DropReason::ALL.len() == DROP_REASON_COUNT);
