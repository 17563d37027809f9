//! healthcheck (work in progress).
