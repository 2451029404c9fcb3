//! The metadata a redirected frame carries from `from_vm` (or a routing
//! program) to `to_vm`: see [`TxMeta`].

use aya_ebpf::{helpers::bpf_xdp_adjust_meta, programs::XdpContext};
use common::{
    DropReason, OUT_NONE, OUT_PORT, PORT_F_SECURITY, PortInfo, TX_F_CACHED, TX_F_FROM_TUNNEL,
    TX_F_TRACE, TX_META_MAGIC, TxMeta,
};

const LEN: usize = core::mem::size_of::<TxMeta>();
/// The metadata is copied in 4-byte words: `read_unaligned` and
/// `write_unaligned` of the whole struct lower to 32 single-byte loads or
/// stores each on BPF (LLVM's BPF backend splits every access it cannot
/// prove aligned). The verifier forbids testing a packet pointer's
/// alignment, and does not require it where unaligned access is cheap
/// (x86, arm64: no BPF_F_STRICT_ALIGNMENT); `record` and `set_group`
/// already access the area's fields as aligned u32. Volatile, so that
/// LLVM does not merge the words back into one byte-wise copy.
const WORDS: usize = LEN / 4;
const _: () = assert!(core::mem::align_of::<TxMeta>() == 4 && LEN == 32);

/// Attaches the sender (and a group to readdress for, or 0). The packet's
/// pointers are invalid afterwards (the helper may move data), so this is
/// the last thing done to a frame before its redirect.
#[inline(always)]
pub fn tag(ctx: &XdpContext, sender: &PortInfo, group: u32) -> Result<(), DropReason> {
    tag_with(ctx, sender, group, u32::from(sender.flags))
}

/// [`tag`] with more `TxMeta::flags` bits (the flow cache's).
#[inline(always)]
pub fn tag_flags(ctx: &XdpContext, sender: &PortInfo, extra: u32) -> Result<(), DropReason> {
    tag_with(ctx, sender, 0, u32::from(sender.flags) | extra)
}

/// The metadata of a frame `from_vm` forwarded from the flow cache: the
/// sender, the mark (`TX_F_CACHED`) and the decision (to port `target`).
/// `to_vm` reads nothing else of such a frame.
#[inline(always)]
pub fn tag_cached(ctx: &XdpContext, sender: u32, target: u32) -> Result<(), DropReason> {
    let m = TxMeta {
        magic: TX_META_MAGIC,
        sender,
        policy: 0,
        identity: 0,
        flags: TX_F_CACHED,
        group: 0,
        out_kind: OUT_PORT,
        out: target,
    };
    write(ctx, &m)
}

/// [`tag`] for a frame from another chassis: its host applied the sender's
/// port security and egress rules (so `to_vm` skips them), and it must not
/// leave through the tunnel again.
#[inline(always)]
pub fn tag_from_tunnel(ctx: &XdpContext, sender: &PortInfo) -> Result<(), DropReason> {
    let flags = u32::from(sender.flags & !PORT_F_SECURITY) | TX_F_FROM_TUNNEL;
    tag_with(ctx, sender, 0, flags)
}

#[inline(always)]
fn tag_with(ctx: &XdpContext, sender: &PortInfo, group: u32, flags: u32) -> Result<(), DropReason> {
    // Make the area exactly LEN bytes, whatever was there (a frame run
    // again, as BPF_PROG_TEST_RUN's repeat does, already has one). A
    // trace's mark survives.
    let trace = read(ctx).flags & TX_F_TRACE;
    let m = TxMeta {
        magic: TX_META_MAGIC,
        sender: sender.index,
        policy: sender.policy,
        identity: sender.identity,
        flags: flags | trace,
        group,
        out_kind: OUT_NONE,
        out: 0,
    };
    write(ctx, &m)
}

/// Makes the metadata area exactly one `TxMeta` and writes `m` there.
#[inline(always)]
fn write(ctx: &XdpContext, m: &TxMeta) -> Result<(), DropReason> {
    let have = ctx.data() as i64 - ctx.metadata() as i64;
    if have != LEN as i64 {
        // SAFETY: ctx.ctx is the program's xdp_md.
        if unsafe { bpf_xdp_adjust_meta(ctx.ctx, (have - LEN as i64) as i32) } != 0 {
            return Err(DropReason::RedirectFailed);
        }
    }
    let (meta, data) = (ctx.metadata(), ctx.data());
    if meta + LEN > data {
        return Err(DropReason::RedirectFailed);
    }
    let words = [
        m.magic, m.sender, m.policy, m.identity, m.flags, m.group, m.out_kind, m.out,
    ];
    let mut i = 0;
    while i < WORDS {
        // SAFETY: [meta, meta + LEN) lies before data (checked above);
        // TxMeta is eight u32 fields in this order. See WORDS on alignment.
        unsafe { core::ptr::write_volatile((meta as *mut u32).add(i), words[i]) };
        i += 1;
    }
    Ok(())
}

/// The frame's metadata; all zero (no sender known) if it has none.
#[inline(always)]
pub fn read(ctx: &XdpContext) -> TxMeta {
    let (meta, data) = (ctx.metadata(), ctx.data());
    if meta + LEN > data {
        return TxMeta::default();
    }
    // SAFETY: the metadata area holds a whole TxMeta (checked above);
    // TxMeta is eight u32 fields in this order. See WORDS on alignment.
    let w = |i: usize| unsafe { core::ptr::read_volatile((meta as *const u32).add(i)) };
    let m = TxMeta {
        magic: w(0),
        sender: w(1),
        policy: w(2),
        identity: w(3),
        flags: w(4),
        group: w(5),
        out_kind: w(6),
        out: w(7),
    };
    if m.magic == TX_META_MAGIC {
        m
    } else {
        TxMeta::default()
    }
}

/// Sets the group of metadata already attached by [`tag`].
#[inline(always)]
pub fn set_group(ctx: &XdpContext, group: u32) -> bool {
    let (meta, data) = (ctx.metadata(), ctx.data());
    if meta + LEN > data {
        return false;
    }
    // SAFETY: [meta, meta + LEN) lies before data (checked above).
    unsafe { (*(meta as *mut TxMeta)).group = group };
    true
}

/// Whether the frame is one of `dataplane trace`'s (real frames come
/// without metadata, so this is one comparison for them).
#[inline(always)]
pub fn tracing(ctx: &XdpContext) -> bool {
    read(ctx).flags & TX_F_TRACE != 0
}

/// Records the program's decision in the metadata, if the frame has any
/// (every redirected frame, and every traced one); see `TxMeta::out`.
#[inline(always)]
pub fn record(ctx: &XdpContext, kind: u32, value: u32) {
    let (meta, data) = (ctx.metadata(), ctx.data());
    if meta + LEN > data {
        return;
    }
    // SAFETY: [meta, meta + LEN) lies before data (checked above).
    unsafe {
        let m = meta as *mut TxMeta;
        if (*m).magic == TX_META_MAGIC {
            (*m).out_kind = kind;
            (*m).out = value;
        }
    }
}
