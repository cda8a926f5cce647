//! voucher-events binary (in progress).

fn main() {}
