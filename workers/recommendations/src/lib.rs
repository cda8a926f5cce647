//! recommendations worker (in progress).
