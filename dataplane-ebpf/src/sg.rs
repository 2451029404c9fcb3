//! Stateful security groups, enforced in `to_vm` where both ends of a
//! packet are known: the sending port (from the metadata `from_vm` and the
//! routing programs attach) and the receiving port. The sender's egress
//! rules see the receiver as remote, the receiver's ingress rules see the
//! sender; each port keeps its own connections (its index is the
//! connection-tracking zone), so removing one holder of a shared address
//! leaves the other's connections alone.
//!
//! A packet of a tracked connection (either direction) passes; otherwise
//! the policy decides and, if it allows, a connection is tracked. Entries
//! allowed under an older configuration are checked again against the
//! current rules on their next packet: removing a rule also ends the
//! connections it allowed.

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_NOEXIST},
    helpers::bpf_ktime_get_coarse_ns,
    maps::lpm_trie::Key,
};
use common::{
    CT_CLOSED, CT_CLOSING, CT_ESTABLISHED, CT_OPENING, CT_STATS_DATAPATH, CtEntry, CtKey, CtStats,
    DropReason, POLICY_DIR_EGRESS, POLICY_DIR_INGRESS, POLICY_V6, PORT_F_SECURITY, PolicyKey,
    PortInfo, REMOTE_PREFIX_BITS, RemoteV4Key, RemoteV6Key, TX_F_TRACE, TxMeta,
    proto::{
        DHCP_CLIENT_PORT, DHCP_SERVER_PORT, DHCPV6_CLIENT_PORT, DHCPV6_SERVER_PORT, ETH_P_IP,
        ETH_P_IPV6, ICMP_DEST_UNREACH, ICMP_ECHO, ICMP_ECHOREPLY, ICMP_PARAMETERPROB,
        ICMP_REDIRECT, ICMP_SOURCE_QUENCH, ICMP_TIME_EXCEEDED, ICMPV6_DEST_UNREACH,
        ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, ICMPV6_MLD_QUERY, ICMPV6_MLD2_REPORT,
        ICMPV6_NEIGH_ADVERT, ICMPV6_PARAMPROB, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP,
        IPPROTO_UDP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN,
    },
};

use crate::{
    fastpath,
    flow::{Flow, Tuple},
    maps::{CONFIG, CONNTRACK, CT_STATS, FLOW, POLICY, REMOTE_V4, REMOTE_V6, SG_STATS},
    packet::Packet,
    parse::{self, Frag},
};

const SEC: u64 = 1_000_000_000;

/// [`check`]'s verdict for a packet that may be delivered.
pub const PASS: u32 = u32::MAX;
/// [`check`]'s verdict for a packet that may be delivered because every
/// port with rules already tracks its connection (and the packet changed
/// none of them but their timeouts): what the flow cache may remember.
pub const PASS_TRACKED: u32 = u32::MAX - 1;

/// Whether [`check`]'s verdict lets the packet through.
#[inline(always)]
pub const fn passed(verdict: u32) -> bool {
    verdict >= PASS_TRACKED
}

/// A drop as [`check`] returns it: the port whose rules refused the packet
/// (the sender's for egress) and the reason, in one plain u32.
#[inline(always)]
const fn refused(port: u32, reason: DropReason) -> u32 {
    (port << 8) | reason as u32
}

/// The port and reason of a drop [`check`] returned (see [`refused`]).
#[inline(always)]
pub fn refusal(verdict: u32) -> (u32, DropReason) {
    let reason = DropReason::from_u32(verdict & 0xff).unwrap_or(DropReason::Malformed);
    (verdict >> 8, reason)
}

/// Applies the sender's egress and the receiver's ingress rules; returns
/// [`PASS`] or [`PASS_TRACKED`] to deliver, or [`refused`]'s encoding of a
/// drop, for the caller to count and stream through [`crate::drop::drop`].
/// A BPF subprogram so that its stack does not add to `to_vm`'s.
#[inline(never)]
pub fn check(pkt: &Packet, slot: u32, rx: &PortInfo, tx: &TxMeta) -> u32 {
    // The flow lives in per-CPU scratch space, not on the stack: this
    // subprogram, the parser and the conntrack lookups must fit 512 bytes
    // together with `to_vm`.
    let Some(flow) = FLOW.get_ptr_mut(0) else {
        return refused(rx.index, DropReason::Malformed);
    };
    // SAFETY: this CPU's scratch entry; nothing else uses it meanwhile.
    let flow = unsafe { &mut *flow };
    match parse_flow(pkt, flow) {
        PARSED_IP => {}
        // Not IP: nothing for security groups.
        PARSED_OTHER => return PASS,
        _ => return refused(rx.index, DropReason::Malformed),
    }
    if base_allowed(flow) {
        return PASS;
    }
    // What the flow cache let through since its entry went stale is
    // counted with this packet.
    flow.hits = fastpath::take_hits(pkt, tx, flow);
    // One clock read for both zones, kept in the scratch entry: `Zone` on
    // the stack has no room left. The coarse clock (CLOCK_MONOTONIC_COARSE,
    // behind CLOCK_MONOTONIC by at most a tick) is precise enough for
    // timeouts of 10 s and more, and costs a few ns where the precise one
    // cost ~30 ns per packet under real traffic.
    flow.now = unsafe { bpf_ktime_get_coarse_ns() };
    // Like the clock: once for both zones, in the scratch entry.
    flow.generation = CONFIG.get(0).map(|c| c.generation).unwrap_or(0);
    // A trace decides like any packet but leaves conntrack as it was.
    let trace = (tx.flags & TX_F_TRACE != 0) as u8;
    if tx.sender != 0 && tx.flags & u32::from(PORT_F_SECURITY) != 0 {
        let zone = Zone {
            slot,
            port: tx.sender,
            policy: tx.policy,
            dir: POLICY_DIR_EGRESS,
            trace,
            remote: rx.identity,
        };
        let verdict = track(flow, &zone);
        if !passed(verdict) {
            return verdict;
        }
        flow.seen |= if verdict == PASS_TRACKED {
            ZONE_APPLIED
        } else {
            ZONE_APPLIED | ZONE_UNTRACKED
        };
    }
    if rx.flags & PORT_F_SECURITY != 0 {
        let zone = Zone {
            slot,
            port: rx.index,
            policy: rx.policy,
            dir: POLICY_DIR_INGRESS,
            trace,
            remote: tx.identity,
        };
        let verdict = track(flow, &zone);
        if !passed(verdict) {
            return verdict;
        }
        flow.seen |= if verdict == PASS_TRACKED {
            ZONE_APPLIED
        } else {
            ZONE_APPLIED | ZONE_UNTRACKED
        };
    }
    if flow.seen == ZONE_APPLIED {
        PASS_TRACKED
    } else {
        PASS
    }
}

/// `Flow::seen` bits: a zone's rules applied; a zone let the packet
/// through without a connection it tracked.
const ZONE_APPLIED: u8 = 1;
const ZONE_UNTRACKED: u8 = 2;

/// One port's side of a packet.
struct Zone {
    slot: u32,
    port: u32,
    policy: u32,
    /// Whether the packet leaves (egress) or reaches (ingress) this port.
    dir: u8,
    /// Non-zero for a traced packet: decide, but write nothing.
    trace: u8,
    /// Identity of the port at the other end (0: unknown).
    remote: u32,
}

const PARSED_IP: u32 = 1;
const PARSED_OTHER: u32 = 2;

/// Fills `out` from the packet: PARSED_IP, PARSED_OTHER (not IP), or 0
/// for a malformed packet. A subprogram for the stack's sake.
#[inline(never)]
fn parse_flow(pkt: &Packet, out: &mut Flow) -> u32 {
    match flow(pkt, out) {
        Ok(true) => PARSED_IP,
        Ok(false) => PARSED_OTHER,
        Err(_) => 0,
    }
}

/// Zeroes the flow in 8-byte words: a `Flow { .. }` literal built on the
/// stack and copied was split by LLVM into byte arrays that it zeroed
/// through out-of-line byte-at-a-time `memset` calls (eight per IPv4
/// packet).
#[inline(always)]
fn clear(f: &mut Flow) {
    let words = core::ptr::from_mut(f).cast::<u64>();
    let n = core::mem::size_of::<Flow>() / 8;
    let mut i = 0;
    while i < n {
        // SAFETY: Flow is 8-aligned, a multiple of 8 bytes long, and made
        // of integers, for which zero is valid.
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
        i += 1;
    }
}

/// Fills `f` (in place: the per-CPU scratch entry) from the packet;
/// false if it is not IP.
#[inline(always)]
// Long on purpose: each header is read right where its bounds were
// checked (the verifier loses bounds carried across calls or variants).
// The flow is written in place: a copy on the stack would not fit the
// frames `to_tunnel` and `to_vm` stack up.
fn flow(pkt: &Packet, f: &mut Flow) -> Result<bool, DropReason> {
    let eth = parse::eth(pkt)?;
    clear(f);
    let (l4, later) = if eth.proto == ETH_P_IP {
        let ip = parse::ipv4(pkt)?;
        f.t.src[..4].copy_from_slice(&ip.src);
        f.t.dst[..4].copy_from_slice(&ip.dst);
        f.t.proto = ip.proto;
        (ip.l4_off, ip.frag == Frag::Later)
    } else if eth.proto == ETH_P_IPV6 {
        let ip = parse::ipv6(pkt)?;
        f.t.src = ip.src;
        f.t.dst = ip.dst;
        f.t.proto = ip.proto;
        f.ipv6 = 1;
        (ip.l4_off, ip.frag == Frag::Later)
    } else {
        return Ok(false);
    };
    // A later fragment has no transport header: it is matched by protocol
    // only (port 0), so rules with ports do not let it through.
    if later {
        return Ok(true);
    }
    match f.t.proto {
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            let [ty, code] = pkt.read::<[u8; 2]>(l4).ok_or(DropReason::Malformed)?;
            f.policy_port = [ty, code];
            let (request, reply) = if f.t.proto == IPPROTO_ICMP {
                (ICMP_ECHO, ICMP_ECHOREPLY)
            } else {
                (ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY)
            };
            if ty == request || ty == reply {
                let id = pkt.read::<[u8; 2]>(l4 + 4).ok_or(DropReason::Malformed)?;
                if ty == request {
                    f.t.sport = id;
                } else {
                    f.t.dport = id;
                }
            } else {
                // Other ICMP messages are matched by type and code; errors
                // (the types Linux's conntrack calls errors) pass only as
                // part of the connection of the packet they quote.
                f.t.sport = [ty, code];
                let error = if f.ipv6 == 0 {
                    matches!(
                        ty,
                        ICMP_DEST_UNREACH
                            | ICMP_SOURCE_QUENCH
                            | ICMP_REDIRECT
                            | ICMP_TIME_EXCEEDED
                            | ICMP_PARAMETERPROB
                    )
                } else {
                    matches!(ty, ICMPV6_DEST_UNREACH..=ICMPV6_PARAMPROB)
                };
                if error {
                    f.icmp_error = 1;
                    if quoted(pkt, l4 + 8, f.ipv6 != 0, &mut f.inner).is_some() {
                        f.related = 1;
                    }
                }
            }
        }
        _ => {
            if let Some([s0, s1, d0, d1]) = pkt.read::<[u8; 4]>(l4) {
                f.t.sport = [s0, s1];
                f.t.dport = [d0, d1];
                f.policy_port = [d0, d1];
            }
            if f.t.proto == IPPROTO_TCP {
                let [_, flags] = pkt.read::<[u8; 2]>(l4 + 12).ok_or(DropReason::Malformed)?;
                f.tcp_flags = flags;
            }
        }
    }
    Ok(true)
}

/// The header of the packet an ICMP error quotes, from `off`; no IPv6
/// extension headers are followed (the error then counts as unrelated).
#[inline(always)]
fn quoted(pkt: &Packet, off: usize, ipv6: bool, inner: &mut Tuple) -> Option<()> {
    if ipv6 {
        let [_, _, _, _, _, _, next, _] = pkt.read::<[u8; 8]>(off)?;
        inner.proto = next;
        inner.src = pkt.read::<[u8; 16]>(off + 8)?;
        inner.dst = pkt.read::<[u8; 16]>(off + 24)?;
        let [s0, s1, d0, d1] = pkt.read::<[u8; 4]>(off + 40)?;
        inner.sport = [s0, s1];
        inner.dport = [d0, d1];
        if next == IPPROTO_ICMPV6 {
            let echo = (ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY);
            quoted_echo(pkt, off + 40, echo, inner);
        }
    } else {
        let [vihl, _] = pkt.read::<[u8; 2]>(off)?;
        let [_, proto] = pkt.read::<[u8; 2]>(off + 8)?;
        inner.proto = proto;
        let [a, b, c, d, e, g, h, i] = pkt.read::<[u8; 8]>(off + 12)?;
        inner.src[..4].copy_from_slice(&[a, b, c, d]);
        inner.dst[..4].copy_from_slice(&[e, g, h, i]);
        // IHL is 5 to 15 words; read the ports at each possible offset
        // with a constant bound, which the verifier can follow.
        let ihl = (vihl & 0x0f) as usize;
        if ihl < 5 {
            return None;
        }
        let l4 = off + (ihl & 0x0f) * 4;
        let [s0, s1, d0, d1] = pkt.read::<[u8; 4]>(l4)?;
        inner.sport = [s0, s1];
        inner.dport = [d0, d1];
        if proto == IPPROTO_ICMP {
            quoted_echo(pkt, l4, (ICMP_ECHO, ICMP_ECHOREPLY), inner);
        }
    }
    Some(())
}

/// A quoted echo request or reply is tracked by its identifier, as the
/// echo itself is (`flow`): a time-exceeded error about a ping is then
/// related to the ping.
#[inline(always)]
fn quoted_echo(pkt: &Packet, l4: usize, (request, reply): (u8, u8), inner: &mut Tuple) {
    let ty = inner.sport[0];
    let Some(id) = pkt.read::<[u8; 2]>(l4 + 4) else {
        return;
    };
    if ty == request {
        inner.sport = id;
        inner.dport = [0; 2];
    } else if ty == reply {
        inner.sport = [0; 2];
        inner.dport = id;
    }
}

/// What Neutron's firewall allows before any security group: DHCP and
/// DHCPv6 between client and server ports, and neighbour discovery and
/// MLD (port security already dropped what a VM may not send of these).
#[inline(always)]
fn base_allowed(f: &Flow) -> bool {
    let (s, d) = (u16::from_be_bytes(f.t.sport), u16::from_be_bytes(f.t.dport));
    match f.t.proto {
        IPPROTO_UDP => {
            let between = |client: u16, server: u16| {
                (s == client && d == server) || (s == server && d == client)
            };
            (f.ipv6 == 0 && between(DHCP_CLIENT_PORT, DHCP_SERVER_PORT))
                || (f.ipv6 == 1 && between(DHCPV6_CLIENT_PORT, DHCPV6_SERVER_PORT))
        }
        // MLD, router and neighbour discovery (130-136) and MLDv2 reports.
        IPPROTO_ICMPV6 => matches!(
            f.policy_port[0],
            ICMPV6_MLD_QUERY..=ICMPV6_NEIGH_ADVERT | ICMPV6_MLD2_REPORT
        ),
        _ => false,
    }
}

#[inline(always)]
fn ct_key(zone: u32, ipv6: u8, t: &Tuple, reversed: bool) -> CtKey {
    let (src, dst, sport, dport) = if reversed {
        (t.dst, t.src, t.dport, t.sport)
    } else {
        (t.src, t.dst, t.sport, t.dport)
    };
    CtKey {
        zone,
        proto: t.proto,
        ipv6,
        sport,
        dport,
        _pad: [0; 2],
        src,
        dst,
    }
}

#[inline(always)]
fn timeout(proto: u8, state: u8) -> u64 {
    match (proto, state) {
        (IPPROTO_TCP, CT_ESTABLISHED) => 3600 * SEC,
        (IPPROTO_TCP, CT_CLOSING) => 30 * SEC,
        (IPPROTO_TCP, CT_CLOSED) => 10 * SEC,
        (IPPROTO_TCP, _) => 30 * SEC,
        (IPPROTO_UDP, CT_ESTABLISHED) => 180 * SEC,
        (IPPROTO_ICMP | IPPROTO_ICMPV6, _) => 30 * SEC,
        (_, CT_ESTABLISHED) => 180 * SEC,
        _ => 60 * SEC,
    }
}

/// The state after a packet of a tracked connection.
#[inline(always)]
fn next_state(state: u8, f: &Flow, reply: bool) -> u8 {
    if f.t.proto == IPPROTO_TCP {
        if f.tcp_flags & TCP_RST != 0 {
            return CT_CLOSED;
        }
        if f.tcp_flags & TCP_FIN != 0 && state != CT_CLOSED {
            return CT_CLOSING;
        }
    }
    if reply && state == CT_OPENING {
        CT_ESTABLISHED
    } else {
        state
    }
}

/// Tracks the packet in `z`'s zone; returns [`PASS_TRACKED`] if it may
/// pass as a packet of a connection the zone tracks, [`PASS`] if it may
/// pass otherwise, else the drop charged to the zone's port ([`refused`]).
/// A BPF subprogram: the two zones' lookups would not fit one stack frame
/// with the caller's.
#[inline(never)]
fn track(f: &Flow, z: &Zone) -> u32 {
    match track_zone(f, z) {
        Ok(true) => PASS_TRACKED,
        Ok(false) => PASS,
        Err(reason) => refused(z.port, reason),
    }
}

/// A packet of a live connection passes (after a re-check if the rules
/// changed since); a new one needs the policy's consent. Ok(true): the
/// packet belongs to a connection the zone tracked already (a trace's
/// never counts as one: it updates nothing).
#[inline(always)]
// Long on purpose: one inline body keeps the verifier's view of the
// packet and of the conntrack entry pointer in one frame; split into BPF
// subprograms it needs more stack than `to_vm` has left (see `track`).
fn track_zone(f: &Flow, z: &Zone) -> Result<bool, DropReason> {
    let now = f.now;
    let reason = if z.dir == POLICY_DIR_EGRESS {
        DropReason::SgEgress
    } else {
        DropReason::SgIngress
    };
    let new_syn = f.t.proto == IPPROTO_TCP && f.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    if f.icmp_error != 0 {
        if f.related != 0 && related_to_tracked(f, z.port, now) {
            return Ok(false);
        }
        // An error about no connection of the zone's (or quoting no
        // packet one could parse) is what Linux's conntrack calls invalid,
        // and Neutron's firewalls drop whatever the rules say: a spoofed
        // error must not reach a VM, nor leave one.
        return Err(DropReason::CtInvalid);
    }
    for reversed in [false, true] {
        let key = ct_key(z.port, f.ipv6, &f.t, reversed);
        let Some(e) = CONNTRACK.get_ptr_mut(key) else {
            continue;
        };
        // SAFETY: a value of the map, used before any other map update.
        let e = unsafe { &mut *e };
        if e.expires_ns < now || (e.state == CT_CLOSED && new_syn) {
            continue;
        }
        if e.generation != f.generation {
            // The rules changed: is the connection still allowed, from its
            // opener's point of view?
            let (remote_ip, port) = if e.dir == POLICY_DIR_EGRESS {
                (
                    if reversed { f.t.src } else { f.t.dst },
                    orig_policy_port(f, reversed),
                )
            } else {
                (
                    if reversed { f.t.dst } else { f.t.src },
                    orig_policy_port(f, reversed),
                )
            };
            if allowing_group(z, e.dir, f, remote_ip, port).is_none() {
                if z.trace == 0 && CONNTRACK.remove(key).is_ok() {
                    ct_count(|s| s.removed += 1);
                }
                return Err(reason);
            }
            if z.trace != 0 {
                return Ok(false);
            }
            e.generation = f.generation;
        }
        if z.trace != 0 {
            return Ok(false);
        }
        e.state = next_state(e.state, f, reversed);
        e.expires_ns = now + timeout(f.t.proto, e.state);
        e.packets += 1 + f.hits;
        return Ok(true);
    }
    if f.t.proto == IPPROTO_TCP && !new_syn {
        return Err(DropReason::CtInvalid);
    }
    let remote_ip = if z.dir == POLICY_DIR_EGRESS {
        f.t.dst
    } else {
        f.t.src
    };
    let Some(group) = allowing_group(z, z.dir, f, remote_ip, f.policy_port) else {
        return Err(reason);
    };
    if z.trace != 0 {
        return Ok(false);
    }
    if let Some(s) = SG_STATS.get_ptr_mut(group) {
        // SAFETY: this CPU's counters.
        unsafe {
            if z.dir == POLICY_DIR_EGRESS {
                (*s).egress_allowed += 1;
            } else {
                (*s).ingress_allowed += 1;
            }
        }
    }
    let state = CT_OPENING;
    let entry = CtEntry {
        expires_ns: now + timeout(f.t.proto, state),
        generation: f.generation,
        packets: 1,
        state,
        dir: z.dir,
        _pad: [0; 6],
    };
    // A full table evicts its least recently used connection (LRU). A new
    // key is counted, so that evictions can be told from the counts; a dead
    // entry under the same key is overwritten in place.
    let key = ct_key(z.port, f.ipv6, &f.t, false);
    if CONNTRACK.insert(key, entry, BPF_NOEXIST as u64).is_ok() {
        ct_count(|s| s.created += 1);
    } else {
        let _ = CONNTRACK.insert(key, entry, BPF_ANY as u64);
    }
    Ok(false)
}

#[inline(always)]
fn ct_count(f: impl FnOnce(&mut CtStats)) {
    if let Some(s) = CT_STATS.get_ptr_mut(CT_STATS_DATAPATH) {
        // SAFETY: this CPU's counters; programs do not nest on a CPU.
        f(unsafe { &mut *s });
    }
}

/// Whether an ICMP error quotes a packet of a live connection of the zone
/// (in either direction).
#[inline(always)]
fn related_to_tracked(f: &Flow, zone: u32, now: u64) -> bool {
    for reversed in [false, true] {
        if let Some(e) = CONNTRACK.get_ptr(ct_key(zone, f.ipv6, &f.inner, reversed)) {
            // SAFETY: read at once.
            if unsafe { (*e).expires_ns } >= now {
                return true;
            }
        }
    }
    false
}

/// The policy port of the connection's first packet, seen from a packet
/// of it (reply packets carry the ports swapped).
#[inline(always)]
fn orig_policy_port(f: &Flow, reversed: bool) -> [u8; 2] {
    match f.t.proto {
        IPPROTO_ICMP => [ICMP_ECHO, 0],
        IPPROTO_ICMPV6 => [ICMPV6_ECHO_REQUEST, 0],
        _ if reversed => f.t.sport,
        _ => f.policy_port,
    }
}

/// The security group of a rule of the zone's policy that allows a
/// connection in `dir` to or from `remote_ip` (matching the remote port's
/// identity, the remote address's CIDR identity, or no remote), if any.
#[inline(always)]
fn allowing_group(z: &Zone, dir: u8, f: &Flow, remote_ip: [u8; 16], port: [u8; 2]) -> Option<u32> {
    let dir = if f.ipv6 != 0 { dir | POLICY_V6 } else { dir };
    let lookup = |identity: u32| {
        let key = Key::new(
            common::POLICY_PREFIX_BITS + 24,
            PolicyKey {
                slot: z.slot,
                policy: z.policy,
                identity,
                dir,
                proto: f.t.proto,
                port,
            },
        );
        POLICY.get(&key).map(|e| e.group)
    };
    // Each candidate once, the CIDR trie only if the port's identity did
    // not already allow it; 0 (unknown sender, no rule prefix) means "any".
    if z.remote != 0 {
        if let Some(group) = lookup(z.remote) {
            return Some(group);
        }
    }
    let cidr = cidr_identity(z.slot, f.ipv6 != 0, remote_ip);
    if cidr != 0 {
        if let Some(group) = lookup(cidr) {
            return Some(group);
        }
    }
    lookup(0)
}

#[inline(always)]
fn cidr_identity(slot: u32, ipv6: bool, addr: [u8; 16]) -> u32 {
    if ipv6 {
        let key = Key::new(REMOTE_PREFIX_BITS + 128, RemoteV6Key { slot, addr });
        REMOTE_V6.get(&key).map(|r| r.identity).unwrap_or(0)
    } else {
        let key = Key::new(
            REMOTE_PREFIX_BITS + 32,
            RemoteV4Key {
                slot,
                addr: [addr[0], addr[1], addr[2], addr[3]],
            },
        );
        REMOTE_V4.get(&key).map(|r| r.identity).unwrap_or(0)
    }
}
