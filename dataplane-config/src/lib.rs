//! What the datapath should hold, from Neutron's configuration: Neutron's
//! resources checked one by one and against each other (`check`, `store`),
//! and compiled, change by change, into the entries of the datapath's maps
//! (`compile`, `desired`). Pure code: no kernel, no syscalls, no build
//! script, so all of it is tested by a plain `cargo test` on stable.
//!
//! The path of a change: a source's objects ([`Document`], [`Change`]) ->
//! [`Store::apply`] (each object checked, then what spans objects) ->
//! [`Engine::compile`] (the map entries that change) -> the agent writes
//! them -> both commit, or both roll back and nothing changed.

pub mod adverts;
pub mod check;
pub mod compile;
pub mod desired;
pub mod errors;
pub mod journal;
pub mod neutron;
pub mod objects;
pub mod store;
pub mod topology;

pub use compile::{CompileError, Engine};
pub use errors::{ConfigError, ConfigErrors};
pub use neutron::{Document, Format, Kind, MacAddr};
pub use store::{Change, Store, Touched, Update};
pub use topology::Topology;

/// Validates a whole document into a store of its objects (committed), or
/// reports every error.
pub fn validate(document: &Document) -> Result<Store, ConfigErrors> {
    let mut store = Store::default();
    let changes = store.diff(document);
    store.apply(&changes)?;
    store.commit();
    Ok(store)
}

/// Reads and validates a configuration file.
pub fn load(path: &std::path::Path) -> anyhow::Result<Store> {
    Ok(validate(&Document::read(path)?)?)
}

/// Parses and validates configuration text into its positional snapshot
/// (tests, tools).
pub fn topology(text: &str, format: Format) -> Result<Topology, ConfigErrors> {
    let store = validate(&Document::parse(text, format)?)?;
    Ok(Topology::of(&store))
}
