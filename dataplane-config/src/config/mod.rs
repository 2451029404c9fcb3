//! Configuration: Neutron's networks, subnets and ports, in TOML or JSON.

pub mod mac;
pub mod model;
pub mod raw;
pub mod validate;

use std::path::Path;

use anyhow::{Context, Result};

pub use mac::MacAddr;
pub use model::{
    AddressPair, Direction, FixedIp, Network, Port, PortMatch, Remote, Router, RouterInterface,
    Rule, SecurityGroup, Subnet, Topology,
};
pub use raw::RawConfig;
pub use validate::{ConfigError, ConfigErrors, validate};

/// File formats the loader reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
}

impl Format {
    /// By extension; otherwise JSON if the text starts with `{`.
    pub fn detect(path: &Path, text: &str) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Format::Json,
            Some("toml") => Format::Toml,
            _ if text.trim_start().starts_with('{') => Format::Json,
            _ => Format::Toml,
        }
    }
}

/// Parses configuration text.
pub fn parse(text: &str, format: Format) -> Result<RawConfig> {
    Ok(match format {
        Format::Toml => toml::from_str(text).context("not valid TOML for this configuration")?,
        Format::Json => {
            serde_json::from_str(text).context("not valid JSON for this configuration")?
        }
    })
}

/// Reads, parses and validates a configuration file.
pub fn load(path: &Path) -> Result<Topology> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read configuration {}", path.display()))?;
    let raw = parse(&text, Format::detect(path, &text))
        .with_context(|| format!("in {}", path.display()))?;
    Ok(validate(&raw)?)
}
