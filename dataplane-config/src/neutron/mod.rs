//! Neutron's resources as they come in: documents split into objects, the
//! raw (as written) form of each kind, and MAC addresses.

pub mod document;
pub mod fields;
pub mod forms;
pub mod mac;
pub mod raw;
pub mod syntax;

pub use document::{Document, Format, Kind, Object, SETTINGS_ID};
pub use mac::MacAddr;
