//! Voucher topics (`voucher.*`): the Voucherify × Bloomreach flow.

use crate::catalog::MessageSpec;

/// The message types of this family.
pub(crate) const SPECS: &[MessageSpec] = &[];
