//! One's complement sums (RFC 1071) over the packet, for the messages the
//! datapath writes itself: ICMP errors and router advertisements.

use crate::packet::Packet;

/// Longest run of bytes [`sum`] covers: an ICMPv6 error of the minimum
/// IPv6 MTU (RFC 4443 2.4(c)), 1280 bytes less the IPv6 header.
pub const MAX_SUM_BYTES: usize = 1240;

/// The unfolded sum of `len` bytes of the packet from `off`, as 16-bit
/// big-endian words (an odd last byte padded with zero); None if they do
/// not lie inside the packet or `len` exceeds [`MAX_SUM_BYTES`].
#[inline(always)]
pub fn sum(pkt: &Packet, off: usize, len: usize) -> Option<u32> {
    if len > MAX_SUM_BYTES {
        return None;
    }
    // Eight bytes a round (fewer rounds for the verifier to walk), at
    // most 155 rounds of four 16-bit words: the sum stays far below 2^32,
    // so folding once at the end suffices.
    let rounds = len / 8;
    let mut s: u32 = 0;
    for i in 0..MAX_SUM_BYTES / 8 {
        if i >= rounds {
            break;
        }
        let [a, b, c, d, e, f, g, h] = pkt.read::<[u8; 8]>(off + 8 * i)?;
        s += u32::from(u16::from_be_bytes([a, b]))
            + u32::from(u16::from_be_bytes([c, d]))
            + u32::from(u16::from_be_bytes([e, f]))
            + u32::from(u16::from_be_bytes([g, h]));
    }
    let mut at = off + (len & !7);
    if len & 4 != 0 {
        let [a, b, c, d] = pkt.read::<[u8; 4]>(at)?;
        s += u32::from(u16::from_be_bytes([a, b])) + u32::from(u16::from_be_bytes([c, d]));
        at += 4;
    }
    if len & 2 != 0 {
        s += u32::from(pkt.be16_at(at)?);
        at += 2;
    }
    if len & 1 != 0 {
        // The last byte, read with the one before it (see `Packet::read`).
        let [_, last] = pkt.read::<[u8; 2]>(at - 1)?;
        s += u32::from(last) << 8;
    }
    Some(s)
}

/// Folds a sum to 16 bits and complements it: the checksum field's value.
#[inline(always)]
pub fn finish(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

/// The sum of a byte array's 16-bit big-endian words (`N` even).
#[inline(always)]
pub fn sum_bytes<const N: usize>(b: &[u8; N]) -> u32 {
    let mut s = 0u32;
    let mut i = 0;
    while i + 1 < N {
        s += u32::from(u16::from_be_bytes([b[i], b[i + 1]]));
        i += 2;
    }
    s
}

/// RFC 1624 incremental update of a checksum when one 16-bit word changes
/// from `old` to `new`.
#[inline(always)]
pub fn replace(check: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!check) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}
