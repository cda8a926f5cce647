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

/// Checks that every example of `kind` validates and deserializes into `T`; returns them.
pub(crate) fn check_examples<T: serde::de::DeserializeOwned>(kind: &str) -> Vec<T> {
    let schemas = Schemas::load(crate::DEFAULT_MAX_BODY_BYTES).unwrap_or_else(|e| panic!("{e}"));
    examples(kind)
        .into_iter()
        .map(|(name, body)| {
            let value = schemas.check(kind, &body).unwrap_or_else(|e| panic!("{name}: {e}"));
            serde_json::from_value::<T>(value).unwrap_or_else(|e| panic!("{name} does not deserialize: {e}"))
        })
        .collect()
}
