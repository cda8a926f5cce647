//! Bloomreach adapter (in progress).
