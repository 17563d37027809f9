//! Runs configured programs (notify scripts, tracked scripts) through the
//! healthcheck crate's script probe, which runs them without a shell unless
//! asked, in their own process group, killed as a group on timeout, with
//! their output drained and bounded.

use std::time::Duration;

use healthcheck::{Probe, Prober, ScriptCheck};

use super::plan::Command;

/// The script check that runs `command` with `extra` arguments appended.
pub fn script(command: &Command, extra: &[String]) -> ScriptCheck {
    let mut check = if command.shell {
        // keepalived passes the notify arguments to a shell line as $1..$4.
        let line = command.argv.join(" ");
        let mut args = vec!["-c".to_owned(), line, "vrrpd-notify".to_owned()];
        args.extend(extra.iter().cloned());
        ScriptCheck::new("/bin/sh", args)
    } else {
        let mut argv = command.argv.iter();
        let program = argv.next().cloned().unwrap_or_default();
        let args: Vec<String> = argv.cloned().chain(extra.iter().cloned()).collect();
        ScriptCheck::new(program, args)
    };
    check.uid = command.uid;
    check.gid = command.gid;
    check
}

/// A prepared probe for `command`, or why it cannot run.
pub fn prober(command: &Command, extra: &[String]) -> Result<Prober, healthcheck::ConfigError> {
    Probe::Script(script(command, extra)).prepare()
}

/// Runs `command` once and says whether it exited 0 in time.
pub async fn run_once(
    command: &Command,
    extra: &[String],
    timeout: Duration,
) -> Result<(), String> {
    let prober = prober(command, extra).map_err(|e| e.to_string())?;
    prober
        .run(0, timeout)
        .await
        .result
        .map(|_| ())
        .map_err(|reason| reason.to_string())
}
