//! Salesmanago adapter (in progress).
