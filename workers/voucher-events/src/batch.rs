//! The batcher that lets many deliveries share one provider call (Bloomreach batch commands,
//! the Voucherify integration bulk endpoints). It lives in [`mq::batch`], shared with
//! contact-sync's Spotler bulk inserts; this module keeps the worker's paths.

pub use mq::batch::{BatchSettings, Batcher, Stopped};
