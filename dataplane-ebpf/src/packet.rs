//! Bounds-checked access to the packet between `data` and `data_end`.
//!
//! Every read goes through [`Packet::ptr_at`], which compares the end of the
//! object against `data_end` right before handing out the pointer: the shape
//! the verifier needs to accept the access.

use core::mem::size_of;

#[derive(Clone, Copy)]
pub struct Packet {
    pub data: usize,
    pub end: usize,
}

impl Packet {
    #[inline(always)]
    pub fn new(data: usize, end: usize) -> Self {
        Packet { data, end }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.end - self.data
    }

    /// A pointer to a `T` at `offset`, or `None` if it does not fit.
    #[inline(always)]
    pub fn ptr_at<T>(&self, offset: usize) -> Option<*const T> {
        let start = self.data + offset;
        // A volatile load of the end keeps LLVM from dropping this check on
        // the strength of an earlier length check (say of an IP total
        // length) that the verifier cannot relate to the packet's end.
        // SAFETY: reading our own field.
        let end = unsafe { core::ptr::read_volatile(&self.end) };
        if start + size_of::<T>() > end {
            return None;
        }
        Some(start as *const T)
    }

    /// Copies a `T` out of the packet.
    ///
    /// Never read a single byte this way: LLVM turns `start + 1 > end` into
    /// `start >= end`, from which the verifier proves nothing readable.
    /// Read the byte with its neighbour (`[u8; 2]`) instead.
    #[inline(always)]
    pub fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        // SAFETY: ptr_at checked that the whole T lies inside the packet;
        // read_unaligned because packet fields have no alignment guarantee.
        self.ptr_at::<T>(offset)
            .map(|p| unsafe { core::ptr::read_unaligned(p) })
    }

    /// Writes a `T` into the packet; false if it does not fit.
    #[inline(always)]
    pub fn write<T: Copy>(&self, offset: usize, value: T) -> bool {
        match self.ptr_at::<T>(offset) {
            Some(p) => {
                // SAFETY: ptr_at checked the bounds; XDP packet data is writable.
                unsafe { core::ptr::write_unaligned(p as *mut T, value) };
                true
            }
            None => false,
        }
    }

    /// A big-endian `u16` at `offset`.
    #[inline(always)]
    pub fn be16_at(&self, offset: usize) -> Option<u16> {
        self.read::<[u8; 2]>(offset).map(u16::from_be_bytes)
    }
}
