//! vrrpd's `run::plan`: what the configuration converts into.

#[path = "../../vrrpd/src/run/plan.rs"]
pub mod plan;
