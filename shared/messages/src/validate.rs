//! Validation before anything else: size limit, JSON, schema.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use crate::catalog::{CATALOG, MessageSpec};

/// Default body size limit (256 KiB), checked before parsing.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// Why a message is invalid. The text names the JSON path and the rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// The body is larger than the limit.
    #[error("body is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Body size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The body is not JSON.
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    /// The message has no AMQP `message_id`.
    #[error("message has no message_id property (it is the idempotency key)")]
    MissingMessageId,
    /// The message type is not one this worker handles.
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    /// The body violates the schema.
    #[error("{}", format_violations(.0))]
    Schema(Vec<Violation>),
}

/// One schema violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer of the offending value (`/order/placed_at`), `/` for the root.
    pub path: String,
    /// The rule that failed, with the value masked.
    pub problem: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.path, self.problem)
    }
}

fn format_violations(violations: &[Violation]) -> String {
    let shown: Vec<String> = violations.iter().take(5).map(Violation::to_string).collect();
    let more = violations.len().saturating_sub(5);
    let mut text = format!("schema violation {}", shown.join("; "));
    if more > 0 {
        text.push_str(&format!(" (and {more} more)"));
    }
    text
}

/// Compiled validators for every message type in the catalog.
pub struct Schemas {
    validators: HashMap<&'static str, jsonschema::Validator>,
    max_body: usize,
}

impl fmt::Debug for Schemas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schemas")
            .field("types", &self.validators.len())
            .field("max_body", &self.max_body)
            .finish()
    }
}

impl Schemas {
    /// Compiles every schema in the catalog. Fails only if a bundled schema is broken.
    pub fn load(max_body: usize) -> Result<Self, String> {
        Self::load_specs(&CATALOG, max_body)
    }

    /// Compiles the given specs.
    pub fn load_specs(specs: &[MessageSpec], max_body: usize) -> Result<Self, String> {
        let mut validators = HashMap::new();
        for spec in specs {
            let schema: Value =
                serde_json::from_str(spec.schema).map_err(|e| format!("schema of {} is not JSON: {e}", spec.kind))?;
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&schema)
                .map_err(|e| format!("schema of {} does not compile: {e}", spec.kind))?;
            validators.insert(spec.kind, validator);
        }
        Ok(Self { validators, max_body })
    }

    /// The body size limit.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Checks the size, parses the JSON and validates it against the schema of `kind`.
    pub fn check(&self, kind: &str, body: &[u8]) -> Result<Value, Invalid> {
        if body.len() > self.max_body {
            return Err(Invalid::TooLarge {
                size: body.len(),
                limit: self.max_body,
            });
        }
        let validator = self
            .validators
            .get(kind)
            .ok_or_else(|| Invalid::UnknownType(kind.to_owned()))?;
        let value: Value = serde_json::from_slice(body).map_err(|e| Invalid::NotJson(e.to_string()))?;
        // The common case first: `is_valid` stops at the first problem and builds no error
        // (`iter_errors` allocates its iterator and error state even for a valid body).
        if validator.is_valid(&value) {
            return Ok(value);
        }
        let violations: Vec<Violation> = validator
            .iter_errors(&value)
            .map(|error| {
                let path = error.instance_path().as_str();
                Violation {
                    path: if path.is_empty() {
                        "/".to_owned()
                    } else {
                        path.to_owned()
                    },
                    problem: error.masked().to_string(),
                }
            })
            .collect();
        if violations.is_empty() {
            // Unreachable unless `is_valid` and `iter_errors` disagree; the value passed none
            // of the checks that report, so it is let through as `iter_errors` would.
            Ok(value)
        } else {
            Err(Invalid::Schema(violations))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schemas() -> Schemas {
        match Schemas::load(1024) {
            Ok(s) => s,
            Err(e) => panic!("bundled schemas must compile: {e}"),
        }
    }

    fn check(kind: &str, body: &str) -> Result<Value, Invalid> {
        schemas().check(kind, body.as_bytes())
    }

    #[test]
    fn accepts_a_valid_contact() {
        let body = r#"{"contact_id":"c-1","email":"a@example.com","changed_at":"2026-01-01T00:00:00Z"}"#;
        assert!(check("contact.changed", body).is_ok());
    }

    #[test]
    fn names_path_and_problem_without_the_value() {
        let body = r#"{"contact_id":"c-1","email":"secret-person-at-example","changed_at":"2026-01-01T00:00:00Z"}"#;
        let err = check("contact.changed", body)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("at /email"), "{err}");
        assert!(!err.contains("secret-person"), "the value must not be echoed: {err}");
    }

    #[test]
    fn missing_required_field_points_at_root() {
        let err = check(
            "contact.changed",
            r#"{"email":"a@example.com","changed_at":"2026-01-01T00:00:00Z"}"#,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("at /:") && err.contains("contact_id"), "{err}");
    }

    #[test]
    fn rejects_oversized_before_parsing() {
        let body = "x".repeat(2048);
        assert_eq!(
            check("contact.changed", &body),
            Err(Invalid::TooLarge {
                size: 2048,
                limit: 1024
            })
        );
    }

    #[test]
    fn rejects_broken_json_and_unknown_types() {
        assert!(matches!(
            check("contact.changed", "{\"contact_id\":"),
            Err(Invalid::NotJson(_))
        ));
        assert!(matches!(check("nope.nope", "{}"), Err(Invalid::UnknownType(_))));
    }
}
