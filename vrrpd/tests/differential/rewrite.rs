//! A keepalived.conf made fit for the test LAN, meaning kept: interfaces
//! keep their names (eth0 .. eth3 are segments of the LAN; the VLAN eth0.1
//! becomes eth4), addresses move into 192.0.2.0/24, timers shrink (VRRPv3 at
//! 100 ms, scripts every second, preempt delays a tenth), scripts and
//! tracked files become flags the harness sets, notify scripts become
//! `/bin/true`, and virtual servers and IPVS sync daemons go (the harness
//! compares the VRRP side; keepalived runs with `--vrrp`).

use std::collections::BTreeMap;

/// The rewritten file and what the harness needs to know of it.
#[derive(Debug, Clone, Default)]
pub struct Rewritten {
    /// keepalived.conf text, without the `$FLAGS` definition each node
    /// puts first.
    pub text: String,
    /// Virtual and static addresses (without prefix), in file order.
    pub vips: Vec<String>,
    /// `vrrp_script` names.
    pub scripts: Vec<String>,
    /// `track_file` names.
    pub files: Vec<String>,
    /// What a failing tracked file holds, by name ("1" unless a
    /// `! differential: file NAME fails with VALUE` line says otherwise).
    pub file_fails: BTreeMap<String, String>,
    /// Most runs in a row a script needs to change (rise or fall).
    pub max_rise_fall: u32,
}

/// The words of a line outside comments (keepalived's `!` and `#`).
fn words(line: &str) -> Vec<&str> {
    let mut end = line.len();
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '!' | '#' if !quoted => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    line[..end].split_whitespace().collect()
}

fn braces(line: &str) -> (usize, usize) {
    let w = words(line).join(" ");
    (w.matches('{').count(), w.matches('}').count())
}

/// Maps every IPv4 address outside the test LAN into 192.0.2.100 and up,
/// the same way each time (netmasks and 0.0.0.0 stay).
struct Addresses {
    map: BTreeMap<String, String>,
}

impl Addresses {
    fn rewrite(&mut self, line: &str) -> String {
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
            out.push_str(&rest[..start]);
            let tail = &rest[start..];
            let end = tail
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(tail.len());
            let candidate = &tail[..end];
            let preceded = out
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == ':' || c == '_');
            match candidate.parse::<std::net::Ipv4Addr>() {
                Ok(ip) if !preceded && !keep(ip) => {
                    let next = 100 + self.map.len();
                    let mapped = self
                        .map
                        .entry(candidate.to_owned())
                        .or_insert_with(|| format!("192.0.2.{next}"));
                    out.push_str(mapped);
                }
                _ => out.push_str(candidate),
            }
            rest = &tail[end..];
        }
        out.push_str(rest);
        out
    }
}

fn keep(ip: std::net::Ipv4Addr) -> bool {
    let o = ip.octets();
    (o[0], o[1], o[2]) == (192, 0, 2) || o[0] == 255 || o[0] == 0
}

/// Rewrites `source` (see the module documentation).
pub fn rewrite(source: &str) -> Rewritten {
    let mut out = Rewritten::default();
    let mut addresses = Addresses {
        map: BTreeMap::new(),
    };
    // The top-level block we are in, and the current nested block.
    let mut depth = 0usize;
    let mut top = String::new();
    let mut top_name = String::new();
    let mut inner = String::new();
    let mut last_keyword = String::new();
    let mut skipping = false;
    let mut insert_timers = false;
    let mut text = String::new();
    for line in source.lines() {
        if let Some(rest) = line.trim().strip_prefix("! differential: file ")
            && let Some((name, value)) = rest.split_once(" fails with ")
        {
            out.file_fails
                .insert(name.trim().to_owned(), value.trim().to_owned());
        }
        let w = words(line);
        let (open, close) = braces(line);
        let first = w.first().copied().unwrap_or("");
        if depth == 0 && !first.is_empty() && first != "{" {
            top = first.to_owned();
            top_name = w.get(1).copied().unwrap_or("").to_owned();
            skipping = matches!(first, "virtual_server" | "virtual_server_group");
            insert_timers = first == "vrrp_instance";
        }
        if depth == 1 && open > 0 {
            inner = if first == "{" {
                last_keyword.clone()
            } else {
                first.to_owned()
            };
        }
        if depth == 1 && !first.is_empty() && first != "{" {
            last_keyword = first.to_owned();
        }
        let new_depth = (depth + open).saturating_sub(close);
        if skipping {
            depth = new_depth;
            continue;
        }
        let mut emitted = line.to_owned();
        // IPVS connection sync needs the ip_vs module; it moves no address.
        if first.starts_with("lvs_sync_daemon") {
            emitted = String::new();
        }
        let indent = "    ";
        match (top.as_str(), depth, first) {
            ("vrrp_instance", 1, "advert_int" | "version") => emitted = String::new(),
            ("vrrp_instance", 1, "preempt_delay") => {
                let secs: f64 = w.get(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
                emitted = format!("{indent}preempt_delay {:.1}", (secs / 10.0).max(0.1));
            }
            ("vrrp_instance" | "vrrp_sync_group", 1, kw) if kw.starts_with("notify") => {
                emitted = format!("{indent}{kw} /bin/true");
            }
            ("vrrp_instance", 2, addr)
                if inner == "virtual_ipaddress" && !addr.is_empty() && addr != "}" =>
            {
                let mapped = addresses.rewrite(addr);
                out.vips
                    .push(mapped.split('/').next().unwrap_or("").to_owned());
            }
            // Static addresses are compared too: on both nodes while
            // their daemons run.
            ("static_ipaddress", 1, addr) if !addr.is_empty() && addr != "}" => {
                let mapped = addresses.rewrite(addr);
                out.vips
                    .push(mapped.split('/').next().unwrap_or("").to_owned());
            }
            ("vrrp_script", 1, "script") => {
                emitted =
                    format!("{indent}script \"/usr/bin/test -e ${{FLAGS}}/script-{top_name}\"");
            }
            ("vrrp_script", 1, "interval" | "timeout") => emitted = format!("{indent}{first} 1"),
            ("vrrp_script", 1, "rise" | "fall") => {
                let n: u32 = w.get(1).and_then(|v| v.parse().ok()).unwrap_or(1);
                out.max_rise_fall = out.max_rise_fall.max(n);
            }
            ("track_file" | "vrrp_track_file", 1, "file") => {
                emitted = format!("{indent}file ${{FLAGS}}/file-{top_name}");
            }
            _ => {}
        }
        if depth == 0 && first == "vrrp_script" && !out.scripts.contains(&top_name) {
            out.scripts.push(top_name.clone());
        }
        if depth == 0 && matches!(first, "track_file" | "vrrp_track_file") {
            out.files.push(top_name.clone());
        }
        if !emitted.is_empty() {
            text.push_str(&addresses.rewrite(&emitted.replace("eth0.1", "eth4")));
            text.push('\n');
        }
        if insert_timers && open > 0 && new_depth >= 1 {
            text.push_str("    advert_int 0.1\n    version 3\n");
            insert_timers = false;
        }
        depth = new_depth;
    }
    out.max_rise_fall = out.max_rise_fall.max(1);
    out.text = text;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_what_the_lan_needs() {
        let r = rewrite(
            "vrrp_script chk_x {\n  script \"killall -0 x\"\n  interval 3\n  fall 2\n}\n\
             vrrp_instance VI_1\n{\n  interface eth1\n  advert_int 1\n  virtual_ipaddress {\n    10.1.0.254/32 dev eth1\n    192.0.2.9\n  }\n  notify_master \"/x.sh a\" root\n}\n\
             virtual_server 10.1.0.254 80 {\n  real_server 10.1.0.9 80 {\n  }\n}\n\
             ! differential: file load fails with 3\ntrack_file load {\n  file /run/load\n}\n",
        );
        assert_eq!(r.files, ["load"]);
        assert_eq!(r.file_fails.get("load").map(String::as_str), Some("3"));
        assert!(r.text.contains("file ${FLAGS}/file-load"), "{}", r.text);
        assert_eq!(r.vips, ["192.0.2.100", "192.0.2.9"]);
        assert_eq!(r.scripts, ["chk_x"]);
        assert_eq!(r.max_rise_fall, 2);
        assert!(r.text.contains("interface eth1"), "{}", r.text);
        assert!(
            r.text.contains("{\n    advert_int 0.1\n    version 3\n"),
            "{}",
            r.text
        );
        assert!(
            r.text
                .contains("script \"/usr/bin/test -e ${FLAGS}/script-chk_x\"")
        );
        assert!(r.text.contains("notify_master /bin/true"));
        assert!(!r.text.contains("virtual_server"), "{}", r.text);
        assert!(!r.text.contains("advert_int 1"));
    }
}
