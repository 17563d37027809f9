//! Shared pieces of the fuzz targets in `fuzz_targets/`.
//!
//! vrrpd is a binary crate, so its configuration loader and keepalived
//! importer are compiled here from its sources (the same files, unchanged):
//! the `keepalived_import` and `toml_config` targets call
//! [`import::import_str`] and [`config::parse`] through them.

#![allow(dead_code, unused_imports, clippy::all)]

pub mod support;

/// vrrpd's `config` module (TOML schema, loader, validation, conversion).
#[path = "../../vrrpd/src/config/mod.rs"]
pub mod config;

/// vrrpd's keepalived.conf importer.
#[path = "../../vrrpd/src/import/mod.rs"]
pub mod import;

/// The part of vrrpd's runtime the configuration builds (`run::plan`).
pub mod run;
