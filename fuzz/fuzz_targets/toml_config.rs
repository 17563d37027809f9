//! vrrpd's TOML loader (`vrrpd check`), through `config::parse`. Any text:
//! no panic; every error names the file and a line of it (0 only for the
//! whole file). Any configuration it accepts prints (`to_toml`) and loads
//! back to the same value, and converts to what the daemon runs (driver
//! configuration, IPVS servers, checks, plan) without panicking. With
//! `--features strict-clock`, an accepted configuration must also run: every
//! health-check timing drives the check scheduler for a few rounds and
//! every duration of the plan can be added to the clock (review item P1).
//! The same text also goes through the value parsers on their own
//! (durations, command lines, status ranges, prefixes, virtual addresses,
//! sockets): what they accept prints back to the same value, and status
//! ranges they accept are accepted by the HTTP check.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vrrp_fuzz::config;

const FILE: &str = "fuzz.toml";

#[cfg(feature = "strict-clock")]
fn runs(cfg: &config::Config) {
    use std::time::{Duration, Instant};
    let Ok(plan) = cfg.plan() else { return };
    let now = Instant::now();
    let fits = |what: &str, d: Duration| {
        assert!(
            now.checked_add(d).is_some(),
            "{what} = {d:?} passes the check but overflows the clock"
        );
    };
    fits("notify_timeout", plan.notify_timeout);
    for s in &plan.scripts {
        fits("script interval", s.interval);
        fits("script timeout", s.timeout);
    }
    for inst in &plan.driver.instances {
        fits("preempt_delay", inst.config.preempt_delay);
        fits("garp master_delay", inst.config.garp.master_delay);
        if let Some(r) = inst.config.garp.master_refresh {
            fits("garp master_refresh", r);
        }
    }
    let mut scheduler = healthcheck::Scheduler::new(1);
    let mut id = 0;
    for vs in &plan.virtual_servers {
        for rs in &vs.real_servers {
            for c in &rs.checks {
                id += 1;
                let _ =
                    scheduler.add_check(healthcheck::CheckId::new(id), c.spec.timing.clone(), now);
            }
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
/// prints back to itself, and what they promise holds downstream.
fn values(text: &str) {
    if let Ok(d) = config::parse_duration(text) {
        let printed = config::format_duration(d);
        assert_eq!(
            config::parse_duration(&printed),
            Ok(d),
            "duration {text:?} prints as {printed:?}"
        );
    }
    if let Ok(words) = config::split_words(text) {
        assert!(!words.is_empty());
        let quoted: Vec<String> = words
            .iter()
            .map(|w| format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        assert_eq!(
            config::split_words(&quoted.join(" ")),
            Ok(words),
            "quoting {text:?}"
        );
    }
    if let Ok(ranges) = config::parse_status_ranges(text) {
        // What `vrrpd check` accepts, the HTTP check accepts too.
        assert!(
            healthcheck::StatusRanges::new(ranges).is_ok(),
            "status ranges {text:?}"
        );
    }
    if let Ok((ip, len)) = config::parse_prefix(text) {
        assert!(len <= if ip.is_ipv4() { 32 } else { 128 });
    }
    if let Ok(vip) = text.parse::<config::VirtualIp>() {
        assert_eq!(
            vip.to_string().parse::<config::VirtualIp>(),
            Ok(vip),
            "virtual address {text:?}"
        );
    }
    if let Ok(addr) = config::parse_socket(text) {
        assert_eq!(
            config::parse_socket(&addr.to_string()),
            Ok(addr),
            "socket {text:?}"
        );
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
            let printed = cfg.to_toml();
            let again = config::parse(&printed, Path::new("printed.toml")).unwrap_or_else(|e| {
                panic!("the printed configuration does not load:\n{e}\n---\n{printed}")
            });
            assert!(
                again == cfg,
                "the printed configuration loads to another value:\n{printed}"
            );
            let _ = cfg.driver_config();
            let _ = cfg.virtual_servers();
            let _ = cfg.real_server_checks();
            let _ = cfg.plan();
            #[cfg(feature = "strict-clock")]
            runs(&cfg);
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
