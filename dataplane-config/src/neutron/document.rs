//! A configuration document (a file, or what a source read) as objects:
//! each Neutron resource under its kind and id, still as written (JSON
//! values), in the order the document gives them.
//!
//! Sources hand the agent objects, not files: a file is split here, an etcd
//! key holds one object. The store validates each object on its own
//! (`check`) and then against the others. The forms a file may take
//! (Neutron's API bodies, `openstack` output) are brought to one first
//! ([`super::forms`]).

use std::{path::Path, str::FromStr};

use anyhow::Context;
use serde_json::Value;

use super::forms;
use crate::errors::{ConfigError, ConfigErrors, Errors};

/// The resources a configuration holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Settings of this datapath (`dataplane`): one object.
    Settings,
    Network,
    Subnet,
    SecurityGroup,
    Router,
    Port,
    /// A floating IP (Neutron's L3 service plugin).
    FloatingIp,
    /// A host's agent: its name and underlay address (published by it).
    Chassis,
    /// The active member of a shared address (published by the host that
    /// saw it claim the address).
    Active,
}

impl Kind {
    /// Every kind, in the order a document is checked (what is referred to
    /// before what refers to it).
    pub const ALL: [Kind; 9] = [
        Kind::Settings,
        Kind::Chassis,
        Kind::Network,
        Kind::Subnet,
        Kind::SecurityGroup,
        Kind::Router,
        Kind::Port,
        Kind::FloatingIp,
        Kind::Active,
    ];

    /// The section of a document (and Neutron's collection name).
    pub const fn section(self) -> &'static str {
        match self {
            Kind::Settings => "dataplane",
            Kind::Network => "networks",
            Kind::Subnet => "subnets",
            Kind::SecurityGroup => "security_groups",
            Kind::Router => "routers",
            Kind::Port => "ports",
            Kind::FloatingIp => "floatingips",
            Kind::Chassis => "chassis",
            Kind::Active => "active",
        }
    }

    /// How errors name one object of the kind.
    pub const fn noun(self) -> &'static str {
        match self {
            Kind::Settings => "dataplane",
            Kind::Network => "network",
            Kind::Subnet => "subnet",
            Kind::SecurityGroup => "security group",
            Kind::Router => "router",
            Kind::Port => "port",
            Kind::FloatingIp => "floating IP",
            Kind::Chassis => "chassis",
            Kind::Active => "active member",
        }
    }

    pub fn from_section(section: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.section() == section)
    }
}

/// The id of the settings object.
pub const SETTINGS_ID: &str = "dataplane";

/// One resource as written.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub kind: Kind,
    pub id: String,
    pub value: Value,
}

/// A whole configuration: every object it holds, in document order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Document {
    pub objects: Vec<Object>,
    /// What the document holds that the datapath cannot serve and was
    /// safely left out (a router's second external gateway, a floating IP's port,
    /// ...): for the reader to be told, not errors.
    pub skipped: Vec<ConfigError>,
}

/// File formats the loader reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
}

impl Format {
    /// By extension; otherwise JSON if the text starts with an object or a
    /// list of objects.
    pub fn detect(path: &Path, text: &str) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Format::Json,
            Some("toml") => Format::Toml,
            _ => Format::of_text(text),
        }
    }

    /// `{`, or a list of objects (`[{`, `[]`: TOML's `[table]` and
    /// `[[table]]` start with `[` too).
    fn of_text(text: &str) -> Format {
        let t = text.trim_start();
        let list = t
            .strip_prefix('[')
            .is_some_and(|rest| rest.trim_start().starts_with(['{', ']']));
        if t.starts_with('{') || list {
            Format::Json
        } else {
            Format::Toml
        }
    }
}

impl FromStr for Document {
    type Err = ConfigErrors;

    /// JSON or TOML, told apart by the first character.
    fn from_str(text: &str) -> Result<Document, ConfigErrors> {
        Document::parse(text, Format::of_text(text))
    }
}

impl Document {
    /// Parses configuration text into its objects. Syntax errors, unknown
    /// sections and objects without an id are reported here; the objects
    /// themselves are checked by the store.
    pub fn parse(text: &str, format: Format) -> Result<Document, ConfigErrors> {
        Document::parse_named(text, format, None)
    }

    /// Parses configuration text from a file called `name`, which says
    /// what a bare object or list (as `openstack … -f json` prints it)
    /// holds: `ports.json`, `security-group-rules.json`. JSON text may hold
    /// several values one after another (API bodies concatenated).
    pub fn parse_named(
        text: &str,
        format: Format,
        name: Option<&str>,
    ) -> Result<Document, ConfigErrors> {
        let values: Vec<Value> = match format {
            Format::Toml => vec![toml::from_str(text).map_err(|e| {
                ConfigErrors::one("configuration", "", format!("not valid TOML: {e}"))
            })?],
            Format::Json => serde_json::Deserializer::from_str(text)
                .into_iter::<Value>()
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    ConfigErrors::one("configuration", "", format!("not valid JSON: {e}"))
                })?,
        };
        Document::from_values(values, name)
    }

    /// Reads and parses a file; its format from its name or first character.
    pub fn read(path: &Path) -> anyhow::Result<Document> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read configuration {}", path.display()))?;
        // Text that is not UTF-8 is a configuration error like any syntax
        // error (TOML and JSON are UTF-8), not a failure to read.
        let text = String::from_utf8(bytes).map_err(|e| {
            ConfigErrors::one(
                "configuration",
                "",
                format!("not UTF-8 text: {}", e.utf8_error()),
            )
        })?;
        let name = path.file_name().and_then(|n| n.to_str());
        Ok(Document::parse_named(
            &text,
            Format::detect(path, &text),
            name,
        )?)
    }

    /// Splits a parsed document into its objects.
    pub fn from_value(value: Value) -> Result<Document, ConfigErrors> {
        Document::from_values(vec![value], None)
    }

    /// Brings a document's values to one form, then splits it.
    fn from_values(values: Vec<Value>, name: Option<&str>) -> Result<Document, ConfigErrors> {
        let normalized = forms::normalize(values, name)?;
        let mut doc = Document::split(normalized.value)?;
        doc.skipped = normalized.skipped;
        Ok(doc)
    }

    /// Splits a document in the combined form into its objects.
    fn split(value: Value) -> Result<Document, ConfigErrors> {
        let mut errors = Errors::default();
        let Value::Object(top) = value else {
            return Err(ConfigErrors::one(
                "configuration",
                "",
                "expected a table (TOML) or object (JSON) of sections",
            ));
        };
        let mut doc = Document::default();
        // Sections in the order objects are checked, whatever the file's.
        for kind in Kind::ALL {
            let Some(section) = top.get(kind.section()) else {
                continue;
            };
            if kind == Kind::Settings {
                doc.objects.push(Object {
                    kind,
                    id: SETTINGS_ID.to_string(),
                    value: section.clone(),
                });
                continue;
            }
            split_section(&mut doc, &mut errors, kind, section);
        }
        for key in top.keys() {
            if Kind::from_section(key).is_none() {
                errors.push(
                    "configuration",
                    key.clone(),
                    "unknown section (expected dataplane, networks, subnets, ports, routers, \
                     floatingips, security_groups, chassis, active)",
                );
            }
        }
        errors.into_result(doc)
    }

    /// The objects of one kind.
    pub fn of(&self, kind: Kind) -> impl Iterator<Item = &Object> {
        self.objects.iter().filter(move |o| o.kind == kind)
    }
}

fn split_section(doc: &mut Document, errors: &mut Errors, kind: Kind, section: &Value) {
    let Value::Array(items) = section else {
        errors.push(
            "configuration",
            kind.section(),
            "expected a list of objects",
        );
        return;
    };
    let mut seen = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let here = format!("{}[{i}]", kind.section());
        if !item.is_object() {
            errors.push(&here, "", "expected an object");
            continue;
        }
        let id = match item.get("id") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                errors.push(&here, "id", "missing (required)");
                continue;
            }
            Some(other) => {
                errors.push(&here, "id", format!("{other} is not a string"));
                continue;
            }
        };
        if !seen.insert(id.clone()) {
            errors.push(
                &crate::errors::label(kind.noun(), &id, ""),
                "id",
                format!("duplicate {} id", kind.noun()),
            );
            continue;
        }
        doc.objects.push(Object {
            kind,
            id,
            value: item.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sections_into_objects_in_dependency_order() {
        let doc: Document = r#"
[[ports]]
id = "p1"
[[networks]]
id = "n1"
[dataplane]
max_allowed_address_pair = 3
"#
        .parse()
        .unwrap();
        let kinds: Vec<(Kind, &str)> = doc
            .objects
            .iter()
            .map(|o| (o.kind, o.id.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (Kind::Settings, "dataplane"),
                (Kind::Network, "n1"),
                (Kind::Port, "p1")
            ]
        );
    }

    #[test]
    fn names_missing_ids_duplicates_and_unknown_sections() {
        let e = r#"{"ports": [{"name": "x"}, {"id": "a"}, {"id": "a"}], "portz": []}"#
            .parse::<Document>()
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("ports[0]: id: missing"), "{text}");
        assert!(text.contains("port a: id: duplicate port id"), "{text}");
        assert!(
            text.contains("configuration: portz: unknown section"),
            "{text}"
        );
    }
}
