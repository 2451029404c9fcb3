//! What the datapath should hold, from Neutron's configuration: parsing and
//! validation of Neutron's resources, and their compilation into map
//! entries. Pure code: no kernel, no syscalls, no build script, so all of it
//! is tested by a plain `cargo test` on stable.

pub mod compile;
pub mod config;
pub mod policy;
