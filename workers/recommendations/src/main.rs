//! recommendations binary (in progress).

fn main() {}
