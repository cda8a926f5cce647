//! Reading message files: envelopes, the message type, and directories of `*.json`.
//!
//! A file is either a bare JSON body or an envelope
//! `{"type": "...", "message_id": "...", "correlation_id": "...", "body": {...}}` (an object with
//! a `body` key and no keys besides those four). The type comes from, in order: `--type`, the
//! envelope's `type`, the parent directory's name when the file lives under `examples/<type>/`
//! or in a directory named after a known message type, or the file name `<type>.<anything>.json`
//! of a file in an `invalid/` directory (as in `schemas/invalid/`).

use std::path::{Path, PathBuf};

use serde_json::Value;

const ENVELOPE_KEYS: [&str; 4] = ["type", "message_id", "correlation_id", "body"];

/// An envelope file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Envelope {
    /// `type`, if given.
    pub(crate) kind: Option<String>,
    /// `message_id`, if given.
    pub(crate) message_id: Option<String>,
    /// `correlation_id`, if given.
    pub(crate) correlation_id: Option<String>,
    /// `body`.
    pub(crate) body: Value,
}

/// The envelope in `bytes`, `Ok(None)` for a bare body (or bytes that are not JSON at all, which
/// validation reports), or an error for an envelope with a field of the wrong kind.
pub(crate) fn parse_envelope(bytes: &[u8]) -> Result<Option<Envelope>, String> {
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(bytes) else {
        return Ok(None);
    };
    if !object.contains_key("body") || object.keys().any(|k| !ENVELOPE_KEYS.contains(&k.as_str())) {
        return Ok(None);
    }
    let mut text = |key: &str| match object.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("envelope field `{key}` must be a string")),
    };
    let kind = text("type")?;
    let message_id = text("message_id")?;
    let correlation_id = text("correlation_id")?;
    let body = object.remove("body").unwrap_or(Value::Null);
    Ok(Some(Envelope {
        kind,
        message_id,
        correlation_id,
        body,
    }))
}

/// The `<key>` of a file named `<key>.<anything>.json`.
pub(crate) fn key_from_file_name(name: &str) -> Option<&str> {
    let (key, rest) = name.strip_suffix(".json")?.rsplit_once('.')?;
    (!key.is_empty() && !rest.is_empty()).then_some(key)
}

/// The message type implied by where `path` lives, if any.
pub(crate) fn type_from_path(path: &Path) -> Option<String> {
    let parent = path.parent()?;
    let name = parent.file_name()?.to_str()?;
    if name == "invalid" {
        // `schemas/invalid/<type>.<what is wrong>.json`
        return key_from_file_name(path.file_name()?.to_str()?).map(str::to_owned);
    }
    let under_examples = parent
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|g| g == "examples");
    (under_examples || messages::catalog::find(name).is_some()).then(|| name.to_owned())
}

/// The message type: `--type`, else the envelope's, else from the path.
pub(crate) fn resolve_type(
    flag: Option<&str>,
    envelope: Option<&Envelope>,
    path: Option<&Path>,
) -> Result<String, String> {
    flag.map(str::to_owned)
        .or_else(|| envelope.and_then(|e| e.kind.clone()))
        .or_else(|| path.and_then(type_from_path))
        .ok_or_else(|| {
            "cannot tell the message type: pass --type, use an envelope with \"type\", or keep the file under \
             examples/<type>/"
                .to_owned()
        })
}

/// A message read from a file, ready to validate or publish.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prepared {
    /// Type and routing key.
    pub(crate) kind: String,
    /// `message_id` from the envelope, if any.
    pub(crate) message_id: Option<String>,
    /// `correlation_id` from the envelope, if any.
    pub(crate) correlation_id: Option<String>,
    /// The body to validate and publish.
    pub(crate) body: Vec<u8>,
}

/// Reads `bytes` (from `path`, if a file) as an envelope or a bare body and works out its type.
pub(crate) fn prepare(bytes: Vec<u8>, flag_type: Option<&str>, path: Option<&Path>) -> Result<Prepared, String> {
    match parse_envelope(&bytes)? {
        Some(envelope) => {
            let kind = resolve_type(flag_type, Some(&envelope), path)?;
            let body = serde_json::to_vec(&envelope.body).map_err(|e| format!("cannot encode the body: {e}"))?;
            Ok(Prepared {
                kind,
                message_id: envelope.message_id,
                correlation_id: envelope.correlation_id,
                body,
            })
        }
        None => {
            let kind = resolve_type(flag_type, None, path)?;
            Ok(Prepared {
                kind,
                message_id: None,
                correlation_id: None,
                body: bytes,
            })
        }
    }
}

/// `path` itself when it is a file; every `*.json` under it (recursively, sorted) when it is a
/// directory.
pub(crate) fn json_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        // Reading it later reports a missing file with its name.
        return Ok(vec![path.to_owned()]);
    }
    let mut out = Vec::new();
    let mut pending = vec![path.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry_path = entry?.path();
            if entry_path.is_dir() {
                pending.push(entry_path);
            } else if entry_path.extension().is_some_and(|e| e == "json") {
                out.push(entry_path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_type(flag: Option<&str>, file: &str, path: &str) -> Result<String, String> {
        prepare(file.as_bytes().to_vec(), flag, Some(Path::new(path))).map(|p| p.kind)
    }

    #[test]
    fn type_flag_wins_over_envelope_and_directory() {
        let envelope = r#"{"type": "contact.deleted", "body": {}}"#;
        assert_eq!(
            check_type(Some("contact.changed"), envelope, "schemas/examples/x/a.json"),
            Ok("contact.changed".into())
        );
    }

    #[test]
    fn envelope_type_wins_over_directory() {
        let envelope = r#"{"type": "contact.deleted", "body": {}}"#;
        assert_eq!(
            check_type(None, envelope, "schemas/examples/contact.changed/a.json"),
            Ok("contact.deleted".into())
        );
    }

    #[test]
    fn examples_directory_names_the_type() {
        assert_eq!(
            check_type(None, "{}", "schemas/examples/contact.changed/a.json"),
            Ok("contact.changed".into())
        );
        assert_eq!(
            check_type(None, "{}", "/abs/examples/anything.new/a.json"),
            Ok("anything.new".into())
        );
    }

    #[test]
    fn directory_named_after_a_known_type_names_the_type() {
        assert_eq!(
            check_type(None, "{}", "samples/contact.deleted/a.json"),
            Ok("contact.deleted".into())
        );
    }

    #[test]
    fn invalid_directory_file_name_names_the_type() {
        assert_eq!(
            check_type(None, "{}", "schemas/invalid/contact.changed.bad-email.json"),
            Ok("contact.changed".into())
        );
        assert!(check_type(None, "{}", "schemas/invalid/nokey.json").is_err());
    }

    #[test]
    fn type_is_an_error_when_nothing_names_it() {
        let error = check_type(None, "{}", "tmp/stuff/a.json").err().unwrap_or_default();
        assert!(error.contains("--type"), "{error}");
        assert!(prepare(b"{}".to_vec(), None, None).is_err());
    }

    #[test]
    fn envelope_gives_ids_and_its_body() {
        let file = r#"{"type":"contact.deleted","message_id":"m-1","correlation_id":"c-1","body":{"contact_id":"x"}}"#;
        let prepared = prepare(file.as_bytes().to_vec(), None, None);
        assert_eq!(
            prepared,
            Ok(Prepared {
                kind: "contact.deleted".into(),
                message_id: Some("m-1".into()),
                correlation_id: Some("c-1".into()),
                body: br#"{"contact_id":"x"}"#.to_vec(),
            })
        );
    }

    #[test]
    fn object_with_other_keys_is_a_bare_body() {
        assert_eq!(parse_envelope(br#"{"body": {}, "contact_id": "x"}"#), Ok(None));
        assert_eq!(parse_envelope(br#"{"type": "a"}"#), Ok(None));
        assert_eq!(parse_envelope(b"not json"), Ok(None));
        assert_eq!(parse_envelope(b"[1]"), Ok(None));
    }

    #[test]
    fn envelope_with_a_non_string_id_is_refused() {
        let error = parse_envelope(br#"{"type": "a", "message_id": 5, "body": {}}"#)
            .err()
            .unwrap_or_default();
        assert!(error.contains("message_id"), "{error}");
    }

    #[test]
    fn bare_body_is_kept_byte_for_byte() {
        let file = "{ \"contact_id\" : \"x\" }\n";
        let prepared = prepare(file.as_bytes().to_vec(), Some("contact.deleted"), None);
        assert_eq!(prepared.map(|p| p.body), Ok(file.as_bytes().to_vec()));
    }

    #[test]
    fn directory_lists_json_files_recursively_sorted() {
        let dir = std::env::temp_dir().join(format!("switchyard-cli-json-files-{}", uuid::Uuid::new_v4().simple()));
        let made = std::fs::create_dir_all(dir.join("b")).is_ok()
            && std::fs::write(dir.join("b/2.json"), "{}").is_ok()
            && std::fs::write(dir.join("a.json"), "{}").is_ok()
            && std::fs::write(dir.join("notes.txt"), "").is_ok();
        assert!(made);
        let files = json_files(&dir).unwrap_or_default();
        let _removed = std::fs::remove_dir_all(&dir);
        assert_eq!(files, vec![dir.join("a.json"), dir.join("b/2.json")]);
    }
}
