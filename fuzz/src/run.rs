//! vrrpd's `run::plan` (what the daemon runs) and `run::exec` (script
//! checks), which [`crate::plan`] builds.

#[path = "../../vrrpd/src/run/plan.rs"]
pub mod plan;

#[path = "../../vrrpd/src/run/exec.rs"]
pub mod exec;
