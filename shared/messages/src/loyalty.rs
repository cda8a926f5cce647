//! Loyalty topics (`points.*`, `pin.changed`, `loyalty.*`): the Ellity × Ecomail flow.

use crate::catalog::MessageSpec;

/// The message types of this family.
pub(crate) const SPECS: &[MessageSpec] = &[];
