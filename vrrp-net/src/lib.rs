//! vrrp-net (work in progress).
