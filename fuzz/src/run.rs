//! vrrpd's `run::plan` (what the daemon runs), which [`crate::plan`]
//! builds.

#[path = "../../vrrpd/src/run/plan.rs"]
pub mod plan;
