//! lvs (work in progress).
