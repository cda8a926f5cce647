//! loyalty-events binary (in progress).

fn main() {}
