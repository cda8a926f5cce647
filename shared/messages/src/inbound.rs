//! Topics published by `inbound` from vendor webhooks, callbacks and pulls.

use crate::catalog::MessageSpec;

/// The message types of this family.
pub(crate) const SPECS: &[MessageSpec] = &[];
