//! IPVS traffic counters in `/metrics`: connections, packets and bytes in
//! and out of every service in the kernel's table and of each of its real
//! servers, named and labelled after the keepalived exporters'
//! (`keepalived_lvs_vip_in_packets{addr,proto}` there, `lvs_vip_in_packets`
//! here, with the `service` and `server` labels of `lvs_real_server_up`
//! added).
//!
//! They are read from the kernel when `/metrics` is scraped, as both
//! exporters do, not on a period: the kernel keeps the counters, so a
//! scrape sees them as of that moment, and a daemon nobody scrapes pays
//! nothing. A scrape costs one dump of the services and one of each
//! service's real servers (about 2,300 small netlink dumps at keepalived's
//! largest published table); a period short enough to be fresh would pay
//! that every few seconds whether anyone reads it or not.

use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;

use lvs::{Counters, IpvsClient, ServiceKey, ServiceStatistics};

/// The connection scrapes read through, while the daemon runs virtual
/// servers: a second netlink socket, so a scrape never waits for a sync.
/// Process-wide because the listener renders `/metrics` from the status
/// document only; this keeps the listener's code apart.
static SOURCE: Mutex<Option<IpvsClient>> = Mutex::new(None);

/// Scrapes read the counters through `client` from now on.
pub fn install(client: IpvsClient) {
    *lock() = Some(client);
}

/// Scrapes stop reading IPVS (the daemon stops).
pub fn clear() {
    *lock() = None;
}

/// Whether scrapes read IPVS.
pub fn installed() -> bool {
    lock().is_some()
}

fn lock() -> std::sync::MutexGuard<'static, Option<IpvsClient>> {
    SOURCE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Adds the IPVS counters to a `/metrics` rendering.
pub fn register(registry: &mut Registry) {
    registry.register_collector(Box::new(IpvsCounters));
}

#[derive(Debug)]
struct IpvsCounters;

impl Collector for IpvsCounters {
    fn encode(&self, enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let stats = {
            let mut source = lock();
            let Some(client) = source.as_mut() else {
                return Ok(());
            };
            match client.statistics() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "IPVS counters not read for /metrics");
                    return Ok(());
                }
            }
        };
        encode_statistics(enc, &stats)
    }
}

/// keepalived's protocol names and address text of a service (the
/// exporters' `proto` and `addr` labels).
fn proto_addr(key: &ServiceKey) -> (String, String) {
    match key {
        ServiceKey::Socket { addr, .. } => {
            let text = key.to_string();
            let proto = text.split('/').next().unwrap_or_default();
            (proto.to_ascii_uppercase(), addr.to_string())
        }
        ServiceKey::Fwmark { mark, .. } => ("FWM".to_owned(), mark.to_string()),
        other => (String::new(), other.to_string()),
    }
}

type Field = (&'static str, &'static str, fn(&Counters) -> u64);

/// The counters, by metric name suffix and help.
const FIELDS: [Field; 5] = [
    ("connections", "Connections scheduled", |c| c.connections),
    ("in_packets", "Packets from clients", |c| c.packets_in),
    ("out_packets", "Packets to clients (NAT only)", |c| {
        c.packets_out
    }),
    ("in_bytes", "Bytes from clients", |c| c.bytes_in),
    ("out_bytes", "Bytes to clients (NAT only)", |c| c.bytes_out),
];

/// Encodes `stats` as `lvs_vip_*` (per service) and `lvs_rs_*` (per real
/// server) counters.
pub fn encode_statistics(
    mut enc: DescriptorEncoder<'_>,
    stats: &[ServiceStatistics],
) -> std::fmt::Result {
    for (suffix, help, get) in FIELDS {
        let name = format!("lvs_vip_{suffix}");
        let help = format!("{help}, per virtual service (kernel counter)");
        let mut m = enc.encode_descriptor(&name, &help, None, MetricType::Counter)?;
        for s in stats {
            let (proto, addr) = proto_addr(&s.key);
            let labels = [
                ("service", s.key.to_string()),
                ("addr", addr),
                ("proto", proto),
            ];
            ConstCounter::new(get(&s.counters)).encode(m.encode_family(&labels)?)?;
        }
    }
    for (suffix, help, get) in FIELDS {
        let name = format!("lvs_rs_{suffix}");
        let help = format!("{help}, per real server of a virtual service (kernel counter)");
        let mut m = enc.encode_descriptor(&name, &help, None, MetricType::Counter)?;
        for s in stats {
            let (proto, _) = proto_addr(&s.key);
            for (server, c) in &s.destinations {
                let labels = [
                    ("service", s.key.to_string()),
                    ("server", server.to_string()),
                    ("addr", server.to_string()),
                    ("proto", proto.clone()),
                ];
                ConstCounter::new(get(c)).encode(m.encode_family(&labels)?)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(Vec<ServiceStatistics>);

    impl Collector for Fixed {
        fn encode(&self, enc: DescriptorEncoder<'_>) -> std::fmt::Result {
            encode_statistics(enc, &self.0)
        }
    }

    #[test]
    fn counters_are_labelled_by_service_and_real_server() {
        let c = |n: u64| Counters {
            connections: n,
            packets_in: 10 * n,
            packets_out: 9 * n,
            bytes_in: 1000 * n,
            bytes_out: 900 * n,
        };
        let stats = vec![
            ServiceStatistics {
                key: "tcp/192.0.2.100:80"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
                counters: c(3),
                destinations: vec![
                    (
                        "192.0.2.11:8080".parse().unwrap_or_else(|e| panic!("{e}")),
                        c(2),
                    ),
                    (
                        "192.0.2.12:8080".parse().unwrap_or_else(|e| panic!("{e}")),
                        c(1),
                    ),
                ],
            },
            ServiceStatistics {
                key: "fwmark/7".parse().unwrap_or_else(|e| panic!("{e}")),
                counters: c(0),
                destinations: Vec::new(),
            },
        ];
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(stats)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .unwrap_or_else(|e| panic!("{e}"));
        let text = super::super::http::to_prometheus_text(&text);
        for line in [
            "# TYPE lvs_vip_in_packets_total counter",
            "lvs_vip_connections_total{service=\"tcp/192.0.2.100:80\",addr=\"192.0.2.100:80\",proto=\"TCP\"} 3",
            "lvs_vip_in_bytes_total{service=\"tcp/192.0.2.100:80\",addr=\"192.0.2.100:80\",proto=\"TCP\"} 3000",
            "lvs_vip_out_packets_total{service=\"fwmark/7\",addr=\"7\",proto=\"FWM\"} 0",
            "lvs_rs_in_packets_total{service=\"tcp/192.0.2.100:80\",server=\"192.0.2.11:8080\",addr=\"192.0.2.11:8080\",proto=\"TCP\"} 20",
            "lvs_rs_out_bytes_total{service=\"tcp/192.0.2.100:80\",server=\"192.0.2.12:8080\",addr=\"192.0.2.12:8080\",proto=\"TCP\"} 900",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
    }
}
