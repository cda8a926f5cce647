//! Every message type Switchyard knows, with its schema.

use std::sync::LazyLock;

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

/// Builds a [`MessageSpec`] whose schema is `schemas/<kind>.v<version>.json`.
#[macro_export]
macro_rules! spec {
    ($kind:literal, $version:literal, $direction:ident) => {
        $crate::catalog::MessageSpec {
            kind: $kind,
            version: $version,
            schema: include_str!(concat!("../../../schemas/", $kind, ".v", $version, ".json")),
            direction: $crate::catalog::Direction::$direction,
        }
    };
}

/// All message types: each family module (`contact`, `loyalty`, `voucher`, `recommendation`,
/// `inbound`) lists its own in `SPECS`.
pub static CATALOG: LazyLock<Vec<MessageSpec>> = LazyLock::new(|| {
    [
        crate::contact::SPECS,
        crate::loyalty::SPECS,
        crate::voucher::SPECS,
        crate::recommendation::SPECS,
        crate::inbound::SPECS,
    ]
    .concat()
});

/// The spec of `kind`, if known.
pub fn find(kind: &str) -> Option<&'static MessageSpec> {
    CATALOG.iter().find(|spec| spec.kind == kind)
}
