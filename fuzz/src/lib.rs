//! Shared pieces of the fuzz targets in `fuzz_targets/`.
//!
//! vrrpd is a binary crate, so its configuration pipeline (TOML reader,
//! resolver, effective configuration), its keepalived importer and the
//! plan the daemon runs are compiled here from its own source files,
//! unchanged: the `keepalived_import` and `toml_config` targets call
//! [`import::import_str`], [`config::parse`] and [`plan::plan`] through
//! them. The daemon itself (`run`) is left out except the two files the
//! plan is made of. When vrrpd's files move, re-point the `#[path]`s.
//!
//! (A library target in vrrpd would make `pub` every item of the daemon
//! those files reach, `run` included; compiling five files here keeps vrrpd
//! as it is.)

#![allow(dead_code, unused_imports, clippy::all)]

pub mod support;

/// vrrpd's `config` module: raw TOML, resolve, effective configuration.
#[path = "../../vrrpd/src/config/mod.rs"]
pub mod config;

/// vrrpd's keepalived.conf importer.
#[path = "../../vrrpd/src/import/mod.rs"]
pub mod import;

/// vrrpd's `plan`: the effective configuration into what the daemon runs.
#[path = "../../vrrpd/src/plan.rs"]
pub mod plan;

/// The part of vrrpd's runtime the plan is made of.
pub mod run;
