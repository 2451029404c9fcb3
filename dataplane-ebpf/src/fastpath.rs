//! The flow cache's two ends (see `common::fastpath` for what an entry
//! stands for): `from_vm` forwards a packet of a cached connection with one
//! lookup ([`lookup`], [`forward`]); `to_vm` makes the entry once the full path let a
//! packet of a connection both ports already track through ([`remember`]),
//! and gives the packets an old entry let through to the connections'
//! counts ([`take_hits`]).

use aya_ebpf::{bindings::BPF_ANY, helpers::bpf_ktime_get_coarse_ns, programs::XdpContext};
use common::{
    DropReason, FLOW_REFRESH_NS, FlowEntry, FlowKey, OUT_PORT, PortInfo, TX_F_CACHEABLE,
    TX_F_SLOT1, TX_F_STALE, TxMeta,
    proto::{ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, IPPROTO_UDP, TCP_FIN, TCP_RST, TCP_SYN},
};

use crate::{
    config, drop,
    flow::Flow,
    maps::{FLOW, FLOW_CACHE, FLOW_KEY, TX_PORTS},
    meta,
    packet::Packet,
    parse::{ETH_HLEN, Frag},
    stats,
};

/// [`lookup`] found no entry: the full path decides.
pub const MISS: u64 = u64::MAX;
/// [`lookup`] found an entry it may not use: the full path decides and
/// `to_vm` collects the entry's hits.
pub const STALE: u64 = u64::MAX - 1;

/// TCP flags that change a connection's state: such packets always take
/// the full path.
const STATE_FLAGS: u8 = TCP_SYN | TCP_FIN | TCP_RST;

/// The sending and receiving ports' indexes (`sender << 32 | target`) if
/// the flow cache holds a usable entry for the frame that entered by
/// `ifindex` (counted as a hit), else [`MISS`] or [`STALE`]. Runs before
/// anything else looks at the frame: a hit needs no other lookup. It
/// only reads the frame; [`forward`] sends it. A BPF subprogram, kept
/// small: it adds its stack to `from_vm`'s.
#[inline(never)]
pub fn lookup(pkt: &Packet, ifindex: u32) -> u64 {
    let Some(key) = FLOW_KEY.get_ptr_mut(0) else {
        return MISS;
    };
    if packet_key(pkt, ifindex, key).is_none() {
        return MISS;
    }
    // By reference to the scratch entry: by value the key would be
    // copied to the stack.
    // SAFETY: this CPU's scratch entry, filled above.
    let key: &FlowKey = unsafe { &*key };
    let Some(e) = FLOW_CACHE.get_ptr_mut(key) else {
        return MISS;
    };
    // SAFETY: a value of the map, used before any other map update.
    let e = unsafe { &mut *e };
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let generation = config::current().generation;
    if e.generation != generation || now >= e.refresh_ns {
        return STALE;
    }
    // Racing CPUs may lose an increment, as the connections' own counts may.
    e.hits += 1;
    (u64::from(e.sender) << 32) | u64::from(e.target)
}

/// Sends a frame of `len` bytes [`lookup`] found (`hit`) to its receiver;
/// returns the XDP action. Failures are the full path's own for a
/// unicast: drops.
#[inline(always)]
pub fn forward(ctx: &XdpContext, len: usize, hit: u64) -> u32 {
    let (sender, target) = ((hit >> 32) as u32, hit as u32);
    stats::update(sender, |s| {
        s.rx_packets += 1;
        s.rx_bytes += len as u64;
    });
    if meta::tag_cached(ctx, sender, target).is_err() {
        return drop::drop(ctx, sender, DropReason::RedirectFailed, drop::NOTIFY);
    }
    let Ok(action) = TX_PORTS.redirect(target, 0) else {
        return drop::drop(ctx, sender, DropReason::RedirectFailed, drop::NOTIFY);
    };
    stats::update(sender, |s| {
        s.forwarded += 1;
        s.fast_path += 1;
    });
    action
}

/// Stores word `i` (8 bytes) of the key: the key is built in words, not
/// field by field, which LLVM's BPF backend would split into byte stores.
#[inline(always)]
fn put(key: *mut FlowKey, i: usize, word: u64) {
    // SAFETY: FlowKey is 8-aligned, 7 words long and made of integers;
    // callers pass i < 7 and `key` is this CPU's scratch entry.
    unsafe { core::ptr::write_volatile(key.cast::<u64>().add(i), word) };
}

/// Fills `key` from the frame: false unless it is IPv4 (options allowed)
/// or IPv6 without extension headers, TCP or UDP, not a fragment, with its
/// ports, and (TCP) no flag that changes the connection's state. Every
/// frame accepted here is one `parse` accepts with the same fields (it
/// checks at least what `parse::ipv4` and `parse::ipv6` check), so a frame
/// the full path would call malformed is never forwarded from here. The
/// words go straight into the key (a map value): `from_vm` has no stack
/// to spare. The byte order of each word is the key's memory order
/// (little-endian BPF), as `FlowKey`'s fields lay it out.
#[inline(always)]
fn packet_key(pkt: &Packet, ifindex: u32, key: *mut FlowKey) -> Option<()> {
    let word = |b: [u8; 8]| u64::from_le_bytes(b);
    let (proto, ipv6, l4) = match pkt.be16_at(12)? {
        ETH_P_IP => {
            let [vihl, _] = pkt.read::<[u8; 2]>(ETH_HLEN)?;
            let ihl = (vihl & 0x0f) as usize * 4;
            let tot_len = pkt.be16_at(ETH_HLEN + 2)? as usize;
            let frags = pkt.be16_at(ETH_HLEN + 6)?;
            if vihl >> 4 != 4
                || ihl < 20
                || tot_len < ihl
                || ETH_HLEN + tot_len > pkt.len()
                || frags & 0x3fff != 0
            {
                return None;
            }
            let [_, proto] = pkt.read::<[u8; 2]>(ETH_HLEN + 8)?;
            let [a, b, c, d, e, f, g, h] = pkt.read::<[u8; 8]>(ETH_HLEN + 12)?;
            put(key, 3, word([a, b, c, d, 0, 0, 0, 0]));
            put(key, 4, 0);
            put(key, 5, word([e, f, g, h, 0, 0, 0, 0]));
            put(key, 6, 0);
            (proto, 0u8, ETH_HLEN + ihl)
        }
        ETH_P_IPV6 => {
            let [vcf, _] = pkt.read::<[u8; 2]>(ETH_HLEN)?;
            let payload_len = pkt.be16_at(ETH_HLEN + 4)? as usize;
            let [next, _] = pkt.read::<[u8; 2]>(ETH_HLEN + 6)?;
            if vcf >> 4 != 6 || ETH_HLEN + 40 + payload_len > pkt.len() {
                return None;
            }
            // Source at 22, destination at 38: words 3-4 and 5-6.
            for i in 0..4 {
                put(key, 3 + i, word(pkt.read::<[u8; 8]>(ETH_HLEN + 8 + 8 * i)?));
            }
            (next, 1u8, ETH_HLEN + 40)
        }
        _ => return None,
    };
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return None;
    }
    let [s0, s1, d0, d1] = pkt.read::<[u8; 4]>(l4)?;
    if proto == IPPROTO_TCP {
        let [_, flags] = pkt.read::<[u8; 2]>(l4 + 12)?;
        if flags & STATE_FLAGS != 0 {
            return None;
        }
    }
    let [i0, i1, i2, i3] = ifindex.to_le_bytes();
    put(key, 0, word([i0, i1, i2, i3, s0, s1, d0, d1]));
    let [d0, d1, d2, d3, d4, d5, m0, m1] = pkt.read::<[u8; 8]>(0)?;
    let [m2, m3, m4, m5] = pkt.read::<[u8; 4]>(8)?;
    put(key, 1, word([m0, m1, m2, m3, m4, m5, proto, ipv6]));
    put(key, 2, word([d0, d1, d2, d3, d4, d5, 0, 0]));
    Some(())
}

/// The key of the frame `f` was parsed from, sent by port `sender`, in
/// this CPU's scratch entry (`to_vm`'s view: the frame is the one
/// `from_vm` saw, MACs included, for an L2 unicast; the sender's interface
/// is its `TX_PORTS` entry's).
#[inline(always)]
fn flow_key(pkt: &Packet, sender: u32, f: &Flow) -> Option<&'static FlowKey> {
    // SAFETY: this CPU's scratch entry; nothing else uses it while this
    // program runs, and the caller is done with it before it returns.
    let key = unsafe { &mut *FLOW_KEY.get_ptr_mut(0)? };
    // The map lookup before the packet reads: with the reads first, LLVM
    // kept a MAC across the helper call in a way the verifier refused.
    let ifindex = TX_PORTS.get_ifindex(sender)?;
    key.ifindex = ifindex;
    key.dst_mac = pkt.read::<[u8; 6]>(0)?;
    key.src_mac = pkt.read::<[u8; 6]>(6)?;
    key.src = f.t.src;
    key.dst = f.t.dst;
    key.sport = f.t.sport;
    key.dport = f.t.dport;
    key.proto = f.t.proto;
    key.ipv6 = f.ipv6;
    key._pad = [0; 2];
    Some(key)
}

/// The packets an entry `from_vm` could not use let through since it was
/// made, taken from it (so that they are counted once). A BPF subprogram:
/// `sg::check`'s frame is part of the deepest chain of calls.
#[inline(never)]
pub fn take_hits(pkt: &Packet, tx: &TxMeta, f: &Flow) -> u64 {
    if tx.flags & TX_F_STALE == 0 {
        return 0;
    }
    let Some(key) = flow_key(pkt, tx.sender, f) else {
        return 0;
    };
    match FLOW_CACHE.get_ptr_mut(key) {
        Some(e) => {
            // SAFETY: a value of the map, used at once.
            unsafe { core::mem::replace(&mut (*e).hits, 0) }
        }
        None => 0,
    }
}

/// Makes (or renews) the entry for a frame the full path just delivered
/// to `rx`, if `from_vm` marked it cacheable, it went to `rx` alone, the
/// configuration is the one `from_vm` decided under, and `f` (the
/// security groups' parse of it, in the scratch entry `sg::check` left)
/// is a packet that changes no state.
#[inline(never)]
pub fn remember(pkt: &Packet, tx: &TxMeta, rx: &PortInfo) {
    let Some(f) = FLOW.get_ptr(0) else {
        return;
    };
    // SAFETY: this CPU's scratch entry, as `sg::check` left it.
    let f = unsafe { &*f };
    let cfg = config::current();
    let slot_bit = if cfg.active_slot == 1 { TX_F_SLOT1 } else { 0 };
    if tx.flags & TX_F_CACHEABLE == 0
        || tx.flags & TX_F_SLOT1 != slot_bit
        || tx.out_kind != OUT_PORT
        || tx.out != rx.index
        || tx.group != 0
        || (f.t.proto != IPPROTO_TCP && f.t.proto != IPPROTO_UDP)
        || f.related != 0
        || (f.t.proto == IPPROTO_TCP && f.tcp_flags & STATE_FLAGS != 0)
    {
        return;
    }
    let Some(key) = flow_key(pkt, tx.sender, f) else {
        return;
    };
    let entry = FlowEntry {
        generation: cfg.generation,
        refresh_ns: f.now + FLOW_REFRESH_NS,
        hits: 0,
        sender: tx.sender,
        target: rx.index,
    };
    // A full table evicts its least recently used entry: such a flow takes
    // the full path again, nothing else.
    let _ = FLOW_CACHE.insert(key, entry, BPF_ANY as u64);
}

/// `TxMeta::flags` bits with the frame no longer marked cacheable.
#[inline(always)]
pub fn uncache(flags: u32) -> u32 {
    flags & !(TX_F_CACHEABLE | TX_F_SLOT1)
}

/// Whether a packet of `proto` in this place of a datagram may be cached.
#[inline(always)]
pub fn may_cache(proto: u8, frag: Frag) -> bool {
    (proto == IPPROTO_TCP || proto == IPPROTO_UDP) && frag == Frag::None
}

/// The `TxMeta::flags` bits with which `from_vm` marks a frame it may
/// cache, decided in `slot`.
#[inline(always)]
pub fn cacheable_flags(slot: u32) -> u32 {
    TX_F_CACHEABLE | if slot == 1 { TX_F_SLOT1 } else { 0 }
}
