//! XDP programs of the allowed-address-pairs datapath.
//!
//! `from_vm` runs on every frame a VM sends (XDP on the host side of the
//! VM's tap) and enforces port security.
#![no_std]
#![no_main]

mod config;
mod from_vm;
mod maps;
mod packet;
mod parse;
mod portsec;
mod stats;

use aya_ebpf::{macros::xdp, programs::XdpContext};

#[xdp]
pub fn from_vm(ctx: XdpContext) -> u32 {
    from_vm::run(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
