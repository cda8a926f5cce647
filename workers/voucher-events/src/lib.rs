//! voucher-events worker (in progress).
