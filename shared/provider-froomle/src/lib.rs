//! Froomle adapter (in progress).
