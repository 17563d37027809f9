//! vrrpd's TOML pipeline (`vrrpd check`, `vrrpd run`): `config::parse`
//! (read, resolve, effective configuration), then `plan::plan`. Any text:
//! no panic; every error names the file and a line of it (0 only for the
//! whole file). Any configuration it accepts:
//! - prints (`write_toml`, what `vrrpd check` shows) and loads back to the
//!   same value;
//! - is accepted by the libraries it feeds, so that nothing `vrrpd check`
//!   passes fails or overflows at run time (issue 10, review item P1):
//!   the driver configuration by `vrrp_net`'s `DriverCore::new`, every
//!   health check's probe by `Probe::prepare` and its timing by
//!   `Timing::validate` and the scheduler (a few rounds of failing
//!   attempts, retries and delays used), every tracked script's timing
//!   likewise, and the notify timeout can be added to the clock.
//!
//! The same text also goes through the value parsers on their own: what
//! they accept prints back to the same value (durations, command lines,
//! virtual addresses with options, netmask granularities).
#![no_main]

use std::path::Path;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use vrrp_fuzz::config::{self, CommandSpec, Dur, raw};
use vrrp_fuzz::plan::plan;
use vrrp_fuzz::run::plan::Plan;

const FILE: &str = "fuzz.toml";

/// What `vrrpd check` accepted, the libraries take.
fn runs(plan: &Plan) {
    if let Err(e) = vrrp_net::driver::core::DriverCore::new(&plan.driver, Vec::new()) {
        panic!("vrrpd check accepts a VRRP configuration the driver refuses: {e}");
    }
    let now = Instant::now();
    assert!(
        now.checked_add(plan.notify_timeout).is_some(),
        "notify_timeout = {:?} passes the check but overflows the clock",
        plan.notify_timeout
    );
    let mut timings = Vec::new();
    for s in &plan.scripts {
        // As the daemon schedules a tracked script (run/track.rs).
        let mut timing = healthcheck::Timing::every(s.interval);
        timing.timeout = s.timeout;
        timings.push((s.name.clone(), timing));
    }
    for vs in &plan.virtual_servers {
        for rs in &vs.real_servers {
            for c in &rs.checks {
                if let Err(e) = c.probe.prepare() {
                    panic!(
                        "vrrpd check accepts a check the library refuses ({}): {e}",
                        c.name
                    );
                }
                timings.push((c.name.clone(), c.timing.clone()));
            }
        }
    }
    let mut scheduler = healthcheck::Scheduler::new(1);
    for (n, (name, timing)) in timings.into_iter().enumerate() {
        if let Err(e) = timing.validate() {
            panic!("vrrpd check accepts a timing the library refuses ({name}): {e}");
        }
        let id = healthcheck::CheckId::new(u32::try_from(n).unwrap_or(u32::MAX));
        if let Err(e) = scheduler.add_check(id, timing, now) {
            panic!("vrrpd check accepts a check the scheduler refuses ({name}): {e}");
        }
    }
    // A few rounds, every attempt failing (retries and delays used).
    for _ in 0..16 {
        let Some(t) = scheduler.poll_timeout() else {
            break;
        };
        scheduler.handle_timeout(t);
        while let Some(out) = scheduler.poll_output() {
            if let healthcheck::Output::StartProbe(req) = out {
                scheduler.handle_probe_result(
                    req.token,
                    Err(healthcheck::DownReason::ConnectionReset),
                    t,
                );
            }
        }
    }
}

/// The value parsers the loader uses, on the whole text: what they accept
/// prints back to itself.
fn values(text: &str) {
    if let Ok(d) = config::parse_duration(text) {
        let printed = Dur(d).to_string();
        assert_eq!(
            config::parse_duration(&printed),
            Ok(d),
            "duration {text:?} prints as {printed:?}"
        );
    }
    if let Ok(spec) = CommandSpec::from_line(text) {
        let words = spec.command;
        let quoted: Vec<String> = words
            .iter()
            .map(|w| format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        assert_eq!(
            CommandSpec::from_line(&quoted.join(" ")).map(|s| s.command),
            Ok(words),
            "quoting {text:?}"
        );
    }
    if let Ok(vip) = text.parse::<raw::VirtualIp>() {
        assert_eq!(
            vip.to_string().parse::<raw::VirtualIp>(),
            Ok(vip),
            "virtual address {text:?}"
        );
    }
    if let Ok(len) = raw::parse_granularity(text) {
        assert!(len <= 128);
        assert_eq!(raw::parse_granularity(&len.to_string()), Ok(len));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    values(text);
    let lines = text.lines().count().max(1);
    match config::parse(text, Path::new(FILE)) {
        Ok(cfg) => {
            let mut printed = Vec::new();
            cfg.write_toml(&mut printed).expect("writing to memory");
            let printed = String::from_utf8(printed).expect("TOML is UTF-8");
            let again = config::parse(&printed, Path::new("printed.toml")).unwrap_or_else(|e| {
                panic!("the printed configuration does not load:\n{e}\n---\n{printed}")
            });
            assert!(
                again == cfg,
                "the printed configuration loads to another value:\n{printed}"
            );
            runs(&plan(&cfg));
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without any error");
            for e in &errors.0 {
                assert_eq!(e.file, Path::new(FILE));
                assert!(
                    e.line <= lines + 1,
                    "error on line {} of {lines}: {e}",
                    e.line
                );
                let _ = e.to_string();
            }
        }
    }
});
