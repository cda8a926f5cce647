//! Test helpers shared by the message families: every example under
//! `schemas/examples/<type>/` must validate against the schema and deserialize into the
//! payload type.

use std::path::Path;

use crate::Schemas;

/// The example files of `kind`: (path, bytes). Panics when there are none.
pub(crate) fn examples(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas/examples")
        .join(kind);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
    assert!(!out.is_empty(), "no examples in {}", dir.display());
    out
}

/// Checks that every example of `kind` validates and deserializes into `T`.
pub(crate) fn check_examples<T: serde::de::DeserializeOwned>(kind: &str) {
    let schemas = Schemas::load(crate::DEFAULT_MAX_BODY_BYTES).unwrap_or_else(|e| panic!("{e}"));
    for (name, body) in examples(kind) {
        let value = schemas.check(kind, &body).unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Err(e) = serde_json::from_value::<T>(value) {
            panic!("{name} does not deserialize: {e}");
        }
    }
}
