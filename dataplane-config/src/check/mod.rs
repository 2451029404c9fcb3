//! Checks one object on its own, as written, and turns it into its
//! validated form ([`crate::objects`]); every problem names the object and
//! the field. What needs other objects is the store's to check.
//!
//! The rules follow what Neutron accepts and rejects, so that an object
//! Neutron would refuse is refused here too.

mod addressing;
mod floating;
mod gateway;
mod network;
mod port;
mod routes;
mod security_group;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    errors::{ConfigError, Errors, label},
    neutron::{
        Kind, Object,
        raw::{Extra, IGNORED_FIELDS},
    },
    objects::{
        Active, Chassis, FloatingIp, Network, PortSpec, Router, SecurityGroup, Settings, Subnet,
    },
};

/// An object after its own checks.
#[derive(Clone, Debug, PartialEq)]
pub enum Checked {
    Settings(Settings),
    Network(Network),
    Subnet(Subnet),
    SecurityGroup(SecurityGroup),
    Router(Router),
    Port(PortSpec),
    FloatingIp(FloatingIp),
    Chassis(Chassis),
    Active(Active),
}

/// Checks `object` on its own.
pub fn check(object: &Object) -> Result<Checked, Vec<ConfigError>> {
    let label = object_label(object);
    let mut errors = Errors::default();
    let checked = match object.kind {
        Kind::Settings => {
            network::settings(&mut errors, &label, &object.value).map(Checked::Settings)
        }
        Kind::Network => network::network(&mut errors, &label, object).map(Checked::Network),
        Kind::Subnet => network::subnet(&mut errors, &label, object).map(Checked::Subnet),
        Kind::Router => network::router(&mut errors, &label, object).map(Checked::Router),
        Kind::SecurityGroup => {
            security_group::check(&mut errors, &label, object).map(Checked::SecurityGroup)
        }
        Kind::Port => port::check(&mut errors, &label, object).map(Checked::Port),
        Kind::FloatingIp => floating::check(&mut errors, &label, object).map(Checked::FloatingIp),
        Kind::Chassis => network::chassis(&mut errors, &label, object).map(Checked::Chassis),
        Kind::Active => network::active(&mut errors, &label, object).map(Checked::Active),
    };
    match checked {
        Some(c) if errors.is_empty() => Ok(c),
        _ => {
            if errors.is_empty() {
                errors.push(&label, "", "invalid");
            }
            Err(errors.0)
        }
    }
}

/// How errors name the object: `port ID (NAME)`.
pub fn object_label(object: &Object) -> String {
    if object.kind == Kind::Settings {
        return "dataplane".to_string();
    }
    // A floating IP has no name: its address says which it is.
    let field = match object.kind {
        Kind::FloatingIp => "floating_ip_address",
        _ => "name",
    };
    let name = object
        .value
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or("");
    label(object.kind.noun(), &object.id, name)
}

/// Reads the object into its raw (as written) form; a type error names the
/// field.
fn raw<T: DeserializeOwned>(errors: &mut Errors, label: &str, value: &Value) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(raw) => Some(raw),
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." { String::new() } else { path };
            errors.push(label, field, e.into_inner().to_string());
            None
        }
    }
}

/// Fields this datapath does not know: accepted when Neutron has them,
/// refused otherwise, because a misspelt security field silently ignored
/// is a hole.
fn unknown_fields(errors: &mut Errors, label: &str, prefix: &str, extra: &Extra) {
    for key in extra.keys() {
        if !IGNORED_FIELDS.contains(&key.as_str()) {
            errors.push(
                label,
                format!("{prefix}{key}"),
                "unknown field (misspelt? unknown fields are refused so that a typo cannot weaken \
                 security)",
            );
        }
    }
}

/// Fields this datapath does not know, for a Neutron resource: accepted when
/// Neutron returns them for it (`ignored`, see [`crate::neutron::fields`]),
/// refused otherwise.
fn unknown_fields_in(
    errors: &mut Errors,
    label: &str,
    prefix: &str,
    extra: &Extra,
    ignored: &[&str],
) {
    for key in extra.keys() {
        if !crate::neutron::fields::known(ignored, key) {
            errors.push(
                label,
                format!("{prefix}{key}"),
                "unknown field (not one Neutron returns for this resource; unknown fields are \
                 refused so that a typo cannot weaken security)",
            );
        }
    }
}

/// A nested object (a fixed IP, an allowed address pair) has no fields
/// beyond the ones the datapath reads.
fn no_other_fields(errors: &mut Errors, label: &str, prefix: &str, extra: &Extra) {
    for key in extra.keys() {
        errors.push(
            label,
            format!("{prefix}{key}"),
            "unknown field (Neutron has no such attribute here)",
        );
    }
}

fn required<'a>(
    errors: &mut Errors,
    label: &str,
    field: &str,
    value: &'a Option<String>,
) -> Option<&'a str> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Some(v),
        _ => {
            errors.push(label, field, "missing (required)");
            None
        }
    }
}

/// An optional string field: absent, null and blank are all "not given".
fn optional(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}
