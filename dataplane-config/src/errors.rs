//! Configuration errors: each names the object, the field and the problem.

use std::fmt;

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The object: `port 5e1c... (web-1)`, `subnets[2]`, ...
    pub object: String,
    /// The field path inside the object: `allowed_address_pairs[1].ip_address`.
    pub field: String,
    pub message: String,
}

impl ConfigError {
    /// The object the error is about, as (kind, id), when its label names
    /// one ("port ID (NAME)"); errors about a document's sections or
    /// unnamed objects have none.
    pub fn subject(&self) -> Option<(crate::Kind, String)> {
        crate::Kind::ALL.into_iter().find_map(|kind| {
            let rest = self.object.strip_prefix(kind.noun())?.strip_prefix(' ')?;
            let id = rest.split(" (").next().unwrap_or(rest);
            (!id.is_empty()).then(|| (kind, id.to_string()))
        })
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.object, self.message)
        } else {
            write!(f, "{}: {}: {}", self.object, self.field, self.message)
        }
    }
}

/// Every problem found in a configuration or a change to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "configuration rejected ({n} error{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// Whether some error mentions `field` (for tests and callers that
    /// react to a specific problem).
    pub fn mentions(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field.contains(field))
    }

    pub fn one(object: &str, field: &str, message: impl Into<String>) -> ConfigErrors {
        ConfigErrors(vec![ConfigError {
            object: object.to_string(),
            field: field.to_string(),
            message: message.into(),
        }])
    }
}

/// Collects errors while checking.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<ConfigError>);

impl Errors {
    pub fn push(&mut self, object: &str, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            object: object.to_string(),
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.0))
        }
    }
}

/// How errors and the CLI name an object: `port ID (NAME)`.
pub fn label(kind: &str, id: &str, name: &str) -> String {
    if name.is_empty() || name == id {
        format!("{kind} {id}")
    } else {
        format!("{kind} {id} ({name})")
    }
}
