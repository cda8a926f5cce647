//! Recommendation topics (`recommendation.*`): the Froomle × Selligent flow.

use crate::catalog::MessageSpec;

/// The message types of this family.
pub(crate) const SPECS: &[MessageSpec] = &[];
