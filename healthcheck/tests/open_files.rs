//! Proves that the runner cannot exhaust file descriptors: with the soft
//! open-files limit lowered to 128, 400 TCP checks whose connections all
//! hang (a listener that never accepts, its backlog full) stay within the
//! default bound of half the limit, and no attempt fails with EMFILE. Then
//! `raise_open_files_limit` lifts the soft limit to the hard one.
//!
//! The limit is process-wide, so this file holds this one test.

use std::net::SocketAddr;
use std::time::Duration;

use healthcheck::{
    CheckSpec, DownReason, Health, Probe, Runner, RunnerConfig, TcpCheck, Timing,
    default_max_in_flight, raise_open_files_limit,
};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use socket2::{Domain, Socket, Type};
use tokio_util::sync::CancellationToken;

/// A listener that never accepts, with the smallest backlog: once it is
/// full, further SYNs are dropped and connects hang until their timeout.
fn black_hole() -> (Socket, SocketAddr) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    socket.listen(1).expect("listen");
    let addr = socket
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet");
    (socket, addr)
}

#[tokio::test(flavor = "current_thread")]
async fn hanging_checks_stay_within_the_open_files_limit() {
    let (_soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, 128, hard).expect("lower the soft limit");
    assert_eq!(default_max_in_flight(), 64);

    let (_listener, target) = black_hole();
    let runner = Runner::spawn(
        RunnerConfig {
            share_identical_checks: false,
            ..RunnerConfig::default()
        },
        CancellationToken::new(),
    );
    let mut timing = Timing::every(Duration::from_secs(1));
    timing.timeout = Duration::from_millis(500);
    timing.retry = 0;
    timing.warmup = Duration::ZERO;
    timing.initial = Health::Up;
    let ids: Vec<_> = (0..400)
        .map(|n| {
            runner
                .add(CheckSpec {
                    name: format!("hang{n}"),
                    probe: Probe::Tcp(TcpCheck::new(target)),
                    timing: timing.clone(),
                })
                .expect("valid")
        })
        .collect();
    let mut peak = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stats = runner.stats().await.expect("running");
        assert_eq!(stats.max_in_flight, 64);
        peak = peak.max(stats.in_flight);
    }
    assert_eq!(peak, 64, "the bound was reached and held");
    let mut timed_out = 0;
    for (_, status) in runner.snapshot() {
        match &status.last_reason {
            Some(DownReason::Timeout(_) | DownReason::ConnectTimeout(_)) => timed_out += 1,
            None => {} // the first few connects fill the backlog and succeed
            Some(other) => panic!("no attempt may fail otherwise (EMFILE?): {other}"),
        }
    }
    assert!(timed_out >= 300, "{timed_out} of {} timed out", ids.len());
    runner.shutdown().await;

    let raised = raise_open_files_limit().expect("setrlimit");
    assert_eq!(raised, hard.min(1 << 20));
    assert_eq!(
        getrlimit(Resource::RLIMIT_NOFILE).map(|(soft, _)| soft),
        Ok(raised)
    );
}
