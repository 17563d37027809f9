//! The flight recorder as JSON lines (`vrrpd ctl dump`) and back
//! (`vrrpd replay FILE`): the first line describes the recording, each
//! next line is one record of `vrrp_net::driver::core::record`, with
//! times in nanoseconds of the driver's clock and packets in hex.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use vrrp_core::wire::{Auth, ChecksumMode};
use vrrp_core::{
    Centisecs, GarpConfig, InitialState, InstanceConfig, InstanceId, Priority, Reason, RxMeta,
    State, Timestamp, TrackConfig, TrackId, Version, VirtualAddress, Vrid,
};
use vrrp_net::driver::core::record::{FlightRecord, Input, Record, Replay};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> anyhow::Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        bail!("odd hex length");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(|| anyhow!("bad hex"))
        })
        .collect()
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn config_json(c: &InstanceConfig) -> Value {
    let g = &c.garp;
    json!({
        "vrid": c.vrid.get(),
        "version": match c.version { Version::V2 => 2, _ => 3 },
        "priority": c.priority.get(),
        "advert_interval_cs": c.advert_interval.get(),
        "preempt": c.preempt,
        "preempt_delay_ns": nanos(c.preempt_delay),
        "primary_address": c.primary_address.to_string(),
        "virtual_addresses": c.virtual_addresses.iter()
            .map(|v| format!("{}/{}", v.addr, v.prefix_len)).collect::<Vec<_>>(),
        "auth": match &c.auth { Auth::Password(p) => Value::String(hex(p)), _ => Value::Null },
        "unicast_peers": c.unicast_peers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "initial_state": match c.initial_state { InitialState::Master => "master", _ => "backup" },
        "garp": {
            "master_repeat": g.master_repeat,
            "master_delay_ns": nanos(g.master_delay),
            "master_refresh_ns": g.master_refresh.map(nanos),
            "refresh_repeat": g.refresh_repeat,
            "interval_ns": nanos(g.interval),
            "lower_prio_repeat": g.lower_prio_repeat,
            "lower_prio_delay_ns": nanos(g.lower_prio_delay),
        },
        "checksum_mode": match c.checksum_mode {
            ChecksumMode::V3WithoutPseudoHeader => "v3_without_pseudo_header",
            _ => "rfc",
        },
        "check_ttl": c.check_ttl,
        "lower_prio_no_advert": c.lower_prio_no_advert,
        "owner_ignore_adverts": c.owner_ignore_adverts,
    })
}

fn u64_of(v: &Value, key: &str) -> anyhow::Result<u64> {
    v[key]
        .as_u64()
        .ok_or_else(|| anyhow!("`{key}`: a number is needed"))
}

fn u8_of(v: &Value, key: &str) -> anyhow::Result<u8> {
    u8::try_from(u64_of(v, key)?).map_err(|_| anyhow!("`{key}`: out of range"))
}

fn u32_of(v: &Value, key: &str) -> anyhow::Result<u32> {
    u32::try_from(u64_of(v, key)?).map_err(|_| anyhow!("`{key}`: out of range"))
}

fn bool_of(v: &Value, key: &str) -> anyhow::Result<bool> {
    v[key]
        .as_bool()
        .ok_or_else(|| anyhow!("`{key}`: true or false is needed"))
}

fn str_of<'a>(v: &'a Value, key: &str) -> anyhow::Result<&'a str> {
    v[key]
        .as_str()
        .ok_or_else(|| anyhow!("`{key}`: a string is needed"))
}

fn ip_of(v: &Value, key: &str) -> anyhow::Result<IpAddr> {
    str_of(v, key)?.parse().map_err(|e| anyhow!("`{key}`: {e}"))
}

fn ns_of(v: &Value, key: &str) -> anyhow::Result<Duration> {
    Ok(Duration::from_nanos(u64_of(v, key)?))
}

fn config_of(v: &Value) -> anyhow::Result<InstanceConfig> {
    let vrid = Vrid::new(u8_of(v, "vrid")?).ok_or_else(|| anyhow!("`vrid`: 1..=255"))?;
    let version = match u64_of(v, "version")? {
        2 => Version::V2,
        3 => Version::V3,
        n => bail!("`version`: {n}"),
    };
    let mut c = InstanceConfig::new(vrid, version, ip_of(v, "primary_address")?);
    c.priority = Priority::new(u8_of(v, "priority")?);
    c.advert_interval = Centisecs::new(
        u16::try_from(u64_of(v, "advert_interval_cs")?)
            .map_err(|_| anyhow!("`advert_interval_cs`: out of range"))?,
    );
    c.preempt = bool_of(v, "preempt")?;
    c.preempt_delay = ns_of(v, "preempt_delay_ns")?;
    c.virtual_addresses = v["virtual_addresses"]
        .as_array()
        .context("`virtual_addresses`")?
        .iter()
        .map(|a| {
            let s = a.as_str().context("an address")?;
            let (addr, len) = s.split_once('/').context("address/prefix")?;
            Ok(VirtualAddress {
                addr: addr.parse()?,
                prefix_len: len.parse()?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    c.auth = match &v["auth"] {
        Value::Null => Auth::None,
        Value::String(s) => {
            Auth::password(&unhex(s)?).ok_or_else(|| anyhow!("`auth`: at most 8 bytes"))?
        }
        _ => bail!("`auth`"),
    };
    c.unicast_peers = v["unicast_peers"]
        .as_array()
        .context("`unicast_peers`")?
        .iter()
        .map(|a| Ok(a.as_str().context("an address")?.parse()?))
        .collect::<anyhow::Result<_>>()?;
    c.initial_state = match str_of(v, "initial_state")? {
        "master" => InitialState::Master,
        _ => InitialState::Backup,
    };
    let g = &v["garp"];
    c.garp = GarpConfig {
        master_repeat: u32_of(g, "master_repeat")?,
        master_delay: ns_of(g, "master_delay_ns")?,
        master_refresh: g["master_refresh_ns"].as_u64().map(Duration::from_nanos),
        refresh_repeat: u32_of(g, "refresh_repeat")?,
        interval: ns_of(g, "interval_ns")?,
        lower_prio_repeat: u32_of(g, "lower_prio_repeat")?,
        lower_prio_delay: ns_of(g, "lower_prio_delay_ns")?,
    };
    c.checksum_mode = match str_of(v, "checksum_mode")? {
        "v3_without_pseudo_header" => ChecksumMode::V3WithoutPseudoHeader,
        _ => ChecksumMode::Rfc,
    };
    c.check_ttl = bool_of(v, "check_ttl")?;
    c.lower_prio_no_advert = bool_of(v, "lower_prio_no_advert")?;
    c.owner_ignore_adverts = bool_of(v, "owner_ignore_adverts")?;
    Ok(c)
}

fn state_of(s: &str) -> anyhow::Result<State> {
    Ok(match s {
        "init" => State::Initialize,
        "backup" => State::Backup,
        "master" => State::Master,
        "fault" => State::Fault,
        other => bail!("unknown state `{other}`"),
    })
}

/// A reason as JSON: `{"kind": ...}` plus its fields.
pub fn reason_json(r: &Reason) -> Value {
    match r {
        Reason::Startup => json!({"kind": "startup"}),
        Reason::AddressOwner => json!({"kind": "address_owner"}),
        Reason::ConfiguredMaster => json!({"kind": "configured_master"}),
        Reason::MasterDown => json!({"kind": "master_down"}),
        Reason::Preempted { by, priority } => {
            json!({"kind": "preempted", "by": by.to_string(), "priority": priority.get()})
        }
        Reason::TrackFailed(t) => json!({"kind": "track_failed", "track": t.0}),
        Reason::FaultCleared => json!({"kind": "fault_cleared"}),
        Reason::SyncGroup => json!({"kind": "sync_group"}),
        Reason::Shutdown => json!({"kind": "shutdown"}),
        Reason::Maintenance => json!({"kind": "maintenance"}),
        other => json!({"kind": "other", "debug": format!("{other:?}")}),
    }
}

fn reason_of(v: &Value) -> anyhow::Result<Reason> {
    Ok(match str_of(v, "kind")? {
        "startup" => Reason::Startup,
        "address_owner" => Reason::AddressOwner,
        "configured_master" => Reason::ConfiguredMaster,
        "master_down" => Reason::MasterDown,
        "preempted" => Reason::Preempted {
            by: ip_of(v, "by")?,
            priority: Priority::new(u8_of(v, "priority")?),
        },
        "track_failed" => Reason::TrackFailed(TrackId(u32_of(v, "track")?)),
        "fault_cleared" => Reason::FaultCleared,
        "sync_group" => Reason::SyncGroup,
        "shutdown" => Reason::Shutdown,
        "maintenance" => Reason::Maintenance,
        other => bail!("unknown reason `{other}`"),
    })
}

fn id_of(v: &Value) -> anyhow::Result<InstanceId> {
    Ok(InstanceId(
        usize::try_from(u64_of(v, "id")?).map_err(|_| anyhow!("`id`"))?,
    ))
}

fn ids_json(ids: &[InstanceId]) -> Vec<usize> {
    ids.iter().map(|i| i.0).collect()
}

fn ids_of(v: &Value, key: &str) -> anyhow::Result<Vec<InstanceId>> {
    v[key]
        .as_array()
        .with_context(|| format!("`{key}`"))?
        .iter()
        .map(|i| {
            i.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(InstanceId)
                .context("an instance id")
        })
        .collect()
}

/// One record as a JSON object.
pub fn record_json(r: &Record) -> Value {
    let mut v = match &r.input {
        Input::AddInstance {
            id,
            interface,
            name,
            config,
        } => json!({"type": "add_instance", "id": id.0, "interface": interface, "name": name,
                    "config": config_json(config)}),
        Input::AddSyncGroup { members } => {
            json!({"type": "add_sync_group", "members": ids_json(members)})
        }
        Input::Startup => json!({"type": "startup"}),
        Input::Start { id } => json!({"type": "start", "id": id.0}),
        Input::Shutdown => json!({"type": "shutdown"}),
        Input::Remove { id } => json!({"type": "remove", "id": id.0}),
        Input::Reconfigure { id, config } => {
            json!({"type": "reconfigure", "id": id.0, "config": config_json(config)})
        }
        Input::Track {
            id,
            track,
            config,
            up,
        } => json!({"type": "track", "id": id.0, "track": track.0, "weight": config.weight,
                    "reverse": config.reverse, "up": up}),
        Input::Untrack { id, track } => json!({"type": "untrack", "id": id.0, "track": track.0}),
        Input::BasePriority { id, priority } => {
            json!({"type": "base_priority", "id": id.0, "priority": priority.get()})
        }
        Input::Maintenance { ids, on } => {
            json!({"type": "maintenance", "ids": ids_json(ids), "on": on})
        }
        Input::Packet {
            interface,
            meta,
            bytes,
        } => json!({"type": "packet", "interface": interface, "src": meta.src.to_string(),
                    "dst": meta.dst.to_string(), "ttl": meta.ttl, "bytes": hex(bytes)}),
        Input::Timeout { due } => json!({"type": "timeout", "due_ns": due.as_nanos()}),
        Input::TrackState { track, up } => {
            json!({"type": "track_state", "track": track.0, "up": up})
        }
        Input::Transition {
            id,
            from,
            to,
            reason,
        } => json!({"type": "transition", "id": id.0, "from": from.name(), "to": to.name(),
                    "reason": reason_json(reason)}),
        other => json!({"type": "unknown", "debug": format!("{other:?}")}),
    };
    v["seq"] = json!(r.seq);
    v["at_ns"] = json!(r.at.as_nanos());
    v
}

/// A record from its JSON object.
pub fn record_of(v: &Value) -> anyhow::Result<Record> {
    let input = match str_of(v, "type")? {
        "add_instance" => Input::AddInstance {
            id: id_of(v)?,
            interface: u32_of(v, "interface")?,
            name: str_of(v, "name")?.to_owned(),
            config: Box::new(config_of(&v["config"]).context("`config`")?),
        },
        "add_sync_group" => Input::AddSyncGroup {
            members: ids_of(v, "members")?,
        },
        "startup" => Input::Startup,
        "start" => Input::Start { id: id_of(v)? },
        "shutdown" => Input::Shutdown,
        "remove" => Input::Remove { id: id_of(v)? },
        "reconfigure" => Input::Reconfigure {
            id: id_of(v)?,
            config: Box::new(config_of(&v["config"]).context("`config`")?),
        },
        "track" => Input::Track {
            id: id_of(v)?,
            track: TrackId(u32_of(v, "track")?),
            config: TrackConfig {
                weight: i32::try_from(v["weight"].as_i64().context("`weight`")?)?,
                reverse: bool_of(v, "reverse")?,
            },
            up: bool_of(v, "up")?,
        },
        "untrack" => Input::Untrack {
            id: id_of(v)?,
            track: TrackId(u32_of(v, "track")?),
        },
        "base_priority" => Input::BasePriority {
            id: id_of(v)?,
            priority: Priority::new(u8_of(v, "priority")?),
        },
        "maintenance" => Input::Maintenance {
            ids: ids_of(v, "ids")?,
            on: bool_of(v, "on")?,
        },
        "packet" => Input::Packet {
            interface: u32_of(v, "interface")?,
            meta: RxMeta {
                src: ip_of(v, "src")?,
                dst: ip_of(v, "dst")?,
                ttl: v["ttl"].as_u64().and_then(|t| u8::try_from(t).ok()),
            },
            bytes: unhex(str_of(v, "bytes")?)?,
        },
        "timeout" => Input::Timeout {
            due: Timestamp::from_nanos(u64_of(v, "due_ns")?),
        },
        "track_state" => Input::TrackState {
            track: TrackId(u32_of(v, "track")?),
            up: bool_of(v, "up")?,
        },
        "transition" => Input::Transition {
            id: id_of(v)?,
            from: state_of(str_of(v, "from")?)?,
            to: state_of(str_of(v, "to")?)?,
            reason: reason_of(&v["reason"]).context("`reason`")?,
        },
        other => bail!("unknown record type `{other}`"),
    };
    Ok(Record {
        seq: u64_of(v, "seq")?,
        at: Timestamp::from_nanos(u64_of(v, "at_ns")?),
        input,
    })
}

/// The whole recording as JSON lines: a header, then the records.
pub fn to_lines(record: &FlightRecord) -> Vec<String> {
    let mut out = vec![
        json!({"type": "flight_record", "version": 1, "records": record.records.len(),
               "dropped": record.dropped})
        .to_string(),
    ];
    out.extend(record.records.iter().map(|r| record_json(r).to_string()));
    out
}

/// Parses a recording; errors name the line.
pub fn from_text(text: &str) -> anyhow::Result<FlightRecord> {
    let mut out = FlightRecord::default();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).with_context(|| format!("line {}", n + 1))?;
        if v["type"] == "flight_record" {
            out.dropped = v["dropped"].as_u64().unwrap_or(0);
            continue;
        }
        out.records
            .push(record_of(&v).with_context(|| format!("line {}", n + 1))?);
    }
    Ok(out)
}

/// The instances' names in a recording, by id.
pub fn names(record: &FlightRecord) -> std::collections::HashMap<usize, String> {
    record
        .records
        .iter()
        .filter_map(|r| match &r.input {
            Input::AddInstance { id, name, .. } => Some((id.0, name.clone())),
            _ => None,
        })
        .collect()
}

/// A replay's transitions, one line each, and its verdict.
pub fn report(record: &FlightRecord, replay: &Replay) -> (Vec<String>, bool) {
    let names = names(record);
    let name = |id: InstanceId| {
        names
            .get(&id.0)
            .cloned()
            .unwrap_or_else(|| format!("#{}", id.0))
    };
    let mut lines = Vec::new();
    if record.dropped > 0 {
        lines.push(format!(
            "warning: the recording lost its {} oldest records: the replay starts from a state it no longer holds",
            record.dropped
        ));
    }
    for t in &replay.replayed {
        lines.push(format!(
            "{:>12.6}s {} {} -> {} ({})",
            t.at.since_epoch().as_secs_f64(),
            name(t.id),
            t.from,
            t.to,
            reason_json(&t.reason)["kind"].as_str().unwrap_or("?")
        ));
    }
    let same = replay.matches();
    if same {
        lines.push(format!(
            "replayed {} transitions: identical to the recording",
            replay.replayed.len()
        ));
    } else if replay.recorded == replay.replayed {
        lines.push(format!(
            "DIFFERENT: the same {} transitions, but the timers do not follow from the inputs",
            replay.replayed.len()
        ));
    } else {
        let first = replay
            .recorded
            .iter()
            .zip(&replay.replayed)
            .position(|(a, b)| a != b)
            .unwrap_or(replay.recorded.len().min(replay.replayed.len()));
        lines.push(format!(
            "DIFFERENT: {} transitions recorded, {} replayed; first difference at #{first}: recorded {:?}, replayed {:?}",
            replay.recorded.len(),
            replay.replayed.len(),
            replay.recorded.get(first),
            replay.replayed.get(first)
        ));
    }
    if !replay.timer_mismatches.is_empty() {
        lines.push(format!(
            "{} timer firings the inputs do not explain (records {:?})",
            replay.timer_mismatches.len(),
            replay.timer_mismatches
        ));
    }
    if !replay.refused.is_empty() {
        lines.push(format!(
            "{} inputs refused (records {:?})",
            replay.refused.len(),
            replay.refused
        ));
    }
    (lines, same)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_round_trips_through_json() {
        let mut config = InstanceConfig::new(
            Vrid::new(9).expect("vrid"),
            Version::V2,
            "192.0.2.1".parse().expect("ip"),
        )
        .with_priority(Priority::new(120))
        .with_address(VirtualAddress::host("192.0.2.9".parse().expect("ip")));
        config.auth = Auth::password(b"secret").expect("auth");
        config.unicast_peers = vec!["192.0.2.2".parse().expect("ip")];
        config.garp.master_refresh = Some(Duration::from_secs(60));
        config.initial_state = InitialState::Master;
        let id = InstanceId(0);
        let inputs = vec![
            Input::AddInstance {
                id,
                interface: 2,
                name: "VI".into(),
                config: Box::new(config.clone()),
            },
            Input::AddSyncGroup { members: vec![id] },
            Input::Startup,
            Input::Start { id },
            Input::Reconfigure {
                id,
                config: Box::new(config),
            },
            Input::Track {
                id,
                track: TrackId(3),
                config: TrackConfig::weight(-20),
                up: false,
            },
            Input::Untrack {
                id,
                track: TrackId(3),
            },
            Input::BasePriority {
                id,
                priority: Priority::new(99),
            },
            Input::Maintenance {
                ids: vec![id],
                on: true,
            },
            Input::Packet {
                interface: 2,
                meta: RxMeta {
                    src: "192.0.2.2".parse().expect("ip"),
                    dst: "224.0.0.18".parse().expect("ip"),
                    ttl: Some(255),
                },
                bytes: vec![0x31, 9, 100, 1, 0, 1, 0xab, 0xcd],
            },
            Input::Timeout {
                due: Timestamp::from_millis(5),
            },
            Input::TrackState {
                track: TrackId(1),
                up: true,
            },
            Input::Transition {
                id,
                from: State::Master,
                to: State::Backup,
                reason: Reason::Preempted {
                    by: "192.0.2.2".parse().expect("ip"),
                    priority: Priority::new(200),
                },
            },
            Input::Shutdown,
            Input::Remove { id },
        ];
        let record = FlightRecord {
            records: inputs
                .into_iter()
                .enumerate()
                .map(|(i, input)| Record {
                    seq: i as u64,
                    at: Timestamp::from_nanos(1_000_000_007 * i as u64),
                    input,
                })
                .collect(),
            dropped: 3,
        };
        let text = to_lines(&record).join("\n");
        assert_eq!(from_text(&text).expect("parse"), record);
        let err = from_text("{\"type\":\"timeout\"}\n").expect_err("no seq");
        assert!(format!("{err:#}").contains("line 1"), "{err:#}");
    }
}
