//! Voucherify adapter (in progress).
