//! Every message type Switchyard knows, with its schema.

/// One message type at one version.
#[derive(Debug, Clone, Copy)]
pub struct MessageSpec {
    /// The type, which is also the routing key (e.g. `contact.changed`).
    pub kind: &'static str,
    /// Schema version (`schemas/<kind>.v<version>.json`).
    pub version: u32,
    /// The JSON Schema text.
    pub schema: &'static str,
    /// Whether upstream systems publish it (input) or workers do (result).
    pub direction: Direction,
}

/// Who publishes a message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Published by upstream systems, consumed by a worker.
    Input,
    /// Published by a worker.
    Result,
}

macro_rules! spec {
    ($kind:literal, $version:literal, $direction:ident) => {
        MessageSpec {
            kind: $kind,
            version: $version,
            schema: include_str!(concat!("../../../schemas/", $kind, ".v", $version, ".json")),
            direction: Direction::$direction,
        }
    };
}

/// All message types, inputs first.
pub const CATALOG: &[MessageSpec] = &[
    spec!("contact.changed", 1, Input),
    spec!("contact.deleted", 1, Input),
    spec!("contact.deactivated", 1, Input),
    spec!("contact.synced", 1, Result),
];

/// The spec of `kind`, if known.
pub fn find(kind: &str) -> Option<&'static MessageSpec> {
    CATALOG.iter().find(|spec| spec.kind == kind)
}
