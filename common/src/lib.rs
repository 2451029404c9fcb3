//! Types shared by the eBPF programs (`dataplane-ebpf`) and the loader
//! (`dataplane-user`): map keys and values, drop reasons, flags, protocol
//! numbers.
//!
//! Everything here is `#[repr(C)]` plain data. With the `user` feature the
//! types implement `aya::Pod` so the loader can read and write the maps.
//!
//! Addresses are stored in network byte order (`[u8; 4]`, `[u8; 16]`), so an
//! LPM trie key's prefix bits run in the order the address is written.
#![no_std]

pub mod fastpath;
pub mod layout;
pub mod maps;
pub mod nat;
pub mod proto;
pub mod reason;
pub mod tunnel;

pub use fastpath::*;
pub use layout::{ADDRESSES_PER_PORT, Limits, LpmKey, PER_PORT_ADDRESSES, Sizing, Slotted, names};
pub use maps::*;
pub use nat::*;
pub use reason::{DROP_REASON_COUNT, DropCounters, DropReason};
pub use tunnel::*;
