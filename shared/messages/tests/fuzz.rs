//! Property tests (proptest) for message decoding and validation: whatever arrives on the
//! broker, [`Schemas::check`] and the typed payloads never panic, every rejection carries a
//! reason that names a JSON path (or the JSON error), no rejection echoes a submitted value,
//! the size limit is enforced before parsing, and whatever the schema accepts decodes into
//! the typed payload.
//!
//! `cargo test -p messages --test fuzz` runs 256 cases per property; `make chaos` runs more
//! (`PROPTEST_CASES`, bounded in time).

use std::sync::LazyLock;

use messages::{CATALOG, DEFAULT_MAX_BODY_BYTES, Invalid, Schemas};
use proptest::prelude::*;
use proptest::sample::select;
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

/// Every generated string value carries this token; an error text containing it echoed a value.
const MARKER: &str = "V4LUE";

static SCHEMAS: LazyLock<Schemas> =
    LazyLock::new(|| Schemas::load(DEFAULT_MAX_BODY_BYTES).unwrap_or_else(|e| panic!("bundled schemas: {e}")));

/// The message types in the catalog plus one nobody knows.
static KINDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut kinds: Vec<&'static str> = CATALOG.iter().map(|spec| spec.kind).collect();
    kinds.push("no.such.type");
    kinds
});

/// Every property name any schema mentions, so generated objects hit real fields.
static KEYS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut keys = Vec::new();
    for spec in CATALOG.iter() {
        if let Ok(schema) = serde_json::from_str::<Value>(spec.schema) {
            collect_property_names(&schema, &mut keys);
        }
    }
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        keys.push("id".to_owned());
    }
    keys
});

/// The bundled examples: (type, body) for every type in the catalog.
static EXAMPLES: LazyLock<Vec<(&'static str, Value)>> = LazyLock::new(|| {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/examples");
    let mut out = Vec::new();
    for spec in CATALOG.iter() {
        let mut files: Vec<_> = std::fs::read_dir(root.join(spec.kind))
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .collect();
        files.sort();
        for path in files {
            if let Some(value) = std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            {
                out.push((spec.kind, value));
            }
        }
    }
    assert!(!out.is_empty(), "no examples under {}", root.display());
    out
});

fn collect_property_names(schema: &Value, keys: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get("properties") {
                keys.extend(properties.keys().cloned());
            }
            if let Some(Value::Array(required)) = map.get("required") {
                keys.extend(required.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            for value in map.values() {
                collect_property_names(value, keys);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_property_names(item, keys)),
        _ => {}
    }
}

fn typed<T: DeserializeOwned>(value: Value) -> Result<(), String> {
    serde_json::from_value::<T>(value).map(drop).map_err(|e| e.to_string())
}

/// Decodes `value` into the typed payload of `kind`; `None` for types without one here.
fn decode(kind: &str, value: Value) -> Option<Result<(), String>> {
    use messages::{contact, loyalty, recommendation, voucher};
    Some(match kind {
        "contact.changed" => typed::<contact::ContactChanged>(value),
        "contact.deleted" => typed::<contact::ContactDeleted>(value),
        "contact.deactivated" => typed::<contact::ContactDeactivated>(value),
        "contact.synced" => typed::<contact::ContactSynced>(value),
        "points.changed" => typed::<loyalty::PointsChanged>(value),
        "points.expiring" => typed::<loyalty::PointsExpiring>(value),
        "pin.changed" => typed::<loyalty::PinChanged>(value),
        "loyalty.subscription.changed" => typed::<loyalty::SubscriptionChanged>(value),
        "loyalty.notified" => typed::<loyalty::LoyaltyNotified>(value),
        "loyalty.points.adjust.requested" => typed::<loyalty::PointsAdjustRequested>(value),
        "voucher.publish.requested" => typed::<voucher::VoucherPublishRequested>(value),
        "voucher.published" => typed::<voucher::VoucherPublished>(value),
        "voucher.redeemed" => typed::<voucher::VoucherRedeemed>(value),
        "voucher.event.forwarded" => typed::<voucher::VoucherEventForwarded>(value),
        "bloomreach.customer.updated" => typed::<voucher::BloomreachCustomerUpdated>(value),
        "bloomreach.event.exported" => typed::<voucher::BloomreachEventExported>(value),
        "recommendation.requested" => typed::<recommendation::RecommendationRequested>(value),
        "recommendation.tracked" => typed::<recommendation::RecommendationTracked>(value),
        "recommendation.ready" => typed::<recommendation::RecommendationReady>(value),
        _ => return None,
    })
}

/// What must hold for any outcome of `check`: a rejection has a reason of the right shape
/// that echoes no marked value; an acceptance decodes into the typed payload.
fn assert_outcome(kind: &str, outcome: Result<Value, Invalid>) -> Result<(), TestCaseError> {
    match outcome {
        Ok(value) => {
            if let Some(Err(error)) = decode(kind, value) {
                return Err(TestCaseError::fail(format!(
                    "{kind}: the schema accepted a body the typed payload rejects: {error}"
                )));
            }
        }
        Err(invalid) => {
            let text = invalid.to_string();
            prop_assert!(!text.trim().is_empty(), "{kind}: a rejection without a reason");
            prop_assert!(!text.contains(MARKER), "{kind}: the reason echoes a value: {text}");
            match &invalid {
                Invalid::Schema(violations) => {
                    prop_assert!(!violations.is_empty(), "{kind}: a schema rejection without violations");
                    for violation in violations {
                        prop_assert!(
                            violation.path.starts_with('/'),
                            "{kind}: violation without a JSON pointer: {violation}"
                        );
                        prop_assert!(
                            !violation.problem.trim().is_empty(),
                            "{kind}: empty problem at {}",
                            violation.path
                        );
                    }
                    prop_assert!(text.contains("at /"), "{kind}: the text names no path: {text}");
                }
                Invalid::NotJson(_) => prop_assert!(text.contains("not valid JSON"), "{text}"),
                Invalid::UnknownType(name) => prop_assert_eq!(name.as_str(), kind),
                Invalid::TooLarge { size, limit } => prop_assert!(size > limit),
                Invalid::MissingMessageId => {
                    return Err(TestCaseError::fail("check never looks at the message id"));
                }
            }
        }
    }
    Ok(())
}

fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}".prop_map(|s| format!("{s}{MARKER}")),
        "[a-z0-9.+-]{1,12}".prop_map(|local| format!("{local}.{MARKER}@example.com")),
        "[A-Za-z0-9._:@-]{1,20}".prop_map(|s| format!("{MARKER}{s}")),
        // Date-times, valid and nearly so (leap seconds, lowercase separators, offsets).
        "[0-9]{4}-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,9})?([Zz]|[+-][01][0-9]:[0-5][0-9])",
        "[0-9]{4}-[01][0-9]-[0-3][0-9]",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        // Past i64::MAX and u32::MAX: every integer field of a schema must be bounded to what its
        // typed field holds.
        any::<u64>().prop_map(Value::from),
        (0u32..100_000).prop_map(Value::from),
        // Integral floats (`3.0`) are left out: they are a known drift between the schemas and
        // the typed payloads, pinned by `known_drift_an_integral_float_passes_the_schema_but_not_the_payload`.
        any::<f64>()
            .prop_filter_map("finite, not integral", |f| (f.fract() != 0.0)
                .then(|| Number::from_f64(f))
                .flatten())
            .prop_map(Value::Number),
        string_value().prop_map(Value::String),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => select(KEYS.clone()), 1 => "[a-z_]{1,12}"]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8).prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// One edit of a JSON document, addressed by a pseudo-random index into its nodes.
#[derive(Debug, Clone)]
enum Mutation {
    /// Remove the member or element.
    Remove(usize),
    /// Replace the value.
    Replace(usize, Value),
    /// Add a member to an object (or an element to an array).
    Insert(usize, String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), json_value()).prop_map(|(at, value)| Mutation::Replace(at, value)),
        (any::<usize>(), key(), json_value()).prop_map(|(at, key, value)| Mutation::Insert(at, key, value)),
    ]
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Applies `mutation` to the `target`-th node (pre-order) below `value`; `seen` counts nodes.
fn apply(value: &mut Value, mutation: &Mutation, target: usize, seen: &mut usize) -> bool {
    let here = *seen;
    *seen += 1;
    if here == target {
        match mutation {
            Mutation::Replace(_, new) => *value = new.clone(),
            Mutation::Insert(_, key, new) => match value {
                Value::Object(map) => {
                    map.insert(key.clone(), new.clone());
                }
                Value::Array(items) => items.push(new.clone()),
                other => *other = new.clone(),
            },
            Mutation::Remove(_) => return false,
        }
        return true;
    }
    match value {
        Value::Array(items) => {
            let mut index = 0;
            while index < items.len() {
                let before = *seen;
                let keep = apply(&mut items[index], mutation, target, seen);
                if before == target && !keep {
                    items.remove(index);
                    return true;
                }
                index += 1;
            }
        }
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let before = *seen;
                let keep = map
                    .get_mut(&key)
                    .is_none_or(|child| apply(child, mutation, target, seen));
                if before == target && !keep {
                    map.remove(&key);
                    return true;
                }
            }
        }
        _ => {}
    }
    true
}

fn mutate(mut value: Value, mutations: &[Mutation]) -> Value {
    for mutation in mutations {
        let nodes = count_nodes(&value);
        let at = match mutation {
            Mutation::Remove(at) | Mutation::Replace(at, _) | Mutation::Insert(at, _, _) => at % nodes,
        };
        let mut seen = 0;
        // Removing the root leaves an empty object, itself a useful case.
        if !apply(&mut value, mutation, at, &mut seen) {
            value = Value::Object(Map::new());
        }
    }
    value
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_every_rejection_has_a_reason(
        kind in select(KINDS.clone()),
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        assert_outcome(kind, SCHEMAS.check(kind, &bytes))?;
    }

    #[test]
    fn arbitrary_json_never_panics_and_never_echoes_a_value(
        kind in select(KINDS.clone()),
        value in json_value(),
    ) {
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        // The typed payloads must survive arbitrary JSON too, whatever the schema says.
        let _decoded = decode(kind, value);
        assert_outcome(kind, SCHEMAS.check(kind, &bytes))?;
    }

    #[test]
    fn mutated_examples_are_accepted_and_decode_or_are_rejected_with_a_path(
        example in select((0..EXAMPLES.len()).collect::<Vec<_>>()),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let (kind, body) = &EXAMPLES[example];
        let mutated = mutate(body.clone(), &mutations);
        let bytes = serde_json::to_vec(&mutated).unwrap_or_default();
        assert_outcome(kind, SCHEMAS.check(kind, &bytes))?;
    }

    #[test]
    fn truncated_examples_are_rejected_as_not_json(
        example in select((0..EXAMPLES.len()).collect::<Vec<_>>()),
        cut in any::<usize>(),
    ) {
        let (kind, body) = &EXAMPLES[example];
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let cut = cut % bytes.len().max(1);
        let outcome = SCHEMAS.check(kind, &bytes[..cut]);
        prop_assert!(matches!(outcome, Err(Invalid::NotJson(_))), "{kind} cut at {cut}: {outcome:?}");
    }

    #[test]
    fn oversized_bodies_are_rejected_before_parsing(
        kind in select(KINDS.clone()),
        extra in 1usize..4096,
        fill in any::<u8>(),
    ) {
        let small = Schemas::load(64).unwrap_or_else(|e| panic!("bundled schemas: {e}"));
        let bytes = vec![fill; 64 + extra];
        prop_assert_eq!(
            small.check(kind, &bytes),
            Err(Invalid::TooLarge { size: 64 + extra, limit: 64 })
        );
    }
}

#[test]
fn every_example_passes_the_properties_unmutated() {
    for (kind, body) in EXAMPLES.iter() {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let outcome = SCHEMAS.check(kind, &bytes);
        assert!(outcome.is_ok(), "{kind}: {outcome:?}");
        if let Err(error) = assert_outcome(kind, outcome) {
            panic!("{kind}: {error}");
        }
    }
}

/// FIXME(messages): JSON Schema counts `100.0` as an integer, serde's `i64` does not, so such a
/// body passes validation and then fails the typed decode. The worker still dead-letters it as
/// `invalid` with the serde reason (nothing is lost or retried), but the contract should be one
/// rule: either the payload types accept integral floats or the schemas reject them. This test
/// pins today's behaviour; when it starts failing, drop the float filter in `leaf()`.
#[test]
fn known_drift_an_integral_float_passes_the_schema_but_not_the_payload() {
    let Some((kind, body)) = EXAMPLES.iter().find(|(kind, _)| *kind == "points.changed") else {
        panic!("no points.changed example");
    };
    let mut body = body.clone();
    let Some(balance) = body.get_mut("balance") else {
        panic!("the points.changed example has no balance");
    };
    *balance = serde_json::json!(100.0);
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let accepted = SCHEMAS.check(kind, &bytes);
    assert!(accepted.is_ok(), "{accepted:?}");
    let decoded = accepted.ok().and_then(|value| decode(kind, value));
    assert!(
        matches!(&decoded, Some(Err(reason)) if reason.contains("expected i64")),
        "{decoded:?}"
    );
}
