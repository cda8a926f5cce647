//! loyalty-events worker (in progress).
