//! Resolving keepalived's `use_vmac` and `vmac_xmit_base`,
//! `down_timer_adverts` and `garp_lower_prio_*`.

use vrrp_core::{Family, Vrid};

use super::super::effective::Vmac;
use super::super::error::{ErrorKind, KeyPath};
use super::super::raw::UseVmac;
use super::Resolver;

impl Resolver {
    /// keepalived's `down_timer_adverts` / `vrrp_down_timer_adverts`:
    /// 1..=100.
    pub(super) fn down_timer_adverts(&mut self, key: KeyPath, set: Option<u8>, default: u8) -> u8 {
        match set {
            None => default,
            Some(n @ 1..=100) => n,
            Some(n) => {
                self.err(
                    key,
                    ErrorKind::Invalid(format!("{n} is out of 1..=100 (keepalived's range)")),
                );
                default
            }
        }
    }

    /// keepalived's `garp_lower_prio_repeat` / `_delay` of an instance:
    /// the global value unless set; 0 in strict mode, where another value
    /// is refused (keepalived resets it with an error).
    pub(super) fn lower_prio_garp<T: PartialEq + Copy>(
        &mut self,
        k: &KeyPath,
        name: &'static str,
        strict: bool,
        set: Option<T>,
        global: T,
        zero: T,
    ) -> T {
        match (strict, set) {
            (false, Some(v)) => v,
            (false, None) => global,
            (true, Some(v)) if v != zero => {
                self.err(
                    k.key(name),
                    ErrorKind::Strict(format!("strict mode sends no {name}: it must be 0")),
                );
                zero
            }
            (true, _) => zero,
        }
    }

    /// The instance's virtual MAC interface: keepalived's default name is
    /// `vrrp.VRID`, and an IPv6 instance whose VRID's name an IPv4
    /// instance already took gets `vrrp6.VRID` (keepalived's second
    /// choice).
    pub(super) fn vmac(
        &mut self,
        k: &KeyPath,
        use_vmac: Option<&UseVmac>,
        xmit_base: Option<bool>,
        vrid: Vrid,
        family: Family,
        interface: &str,
    ) -> Option<Vmac> {
        let taken = |r: &Resolver, name: &str| {
            r.out
                .effective
                .instances
                .iter()
                .find(|(_, i)| {
                    i.vmac.as_ref().is_some_and(|v| v.name == name) || i.interface == name
                })
                .map(|(n, _)| n.clone())
        };
        let name = match use_vmac {
            None | Some(UseVmac::On(false)) => {
                if xmit_base == Some(true) {
                    self.err(
                        k.key("vmac_xmit_base"),
                        ErrorKind::Invalid("vmac_xmit_base needs use_vmac".to_owned()),
                    );
                }
                return None;
            }
            Some(UseVmac::Named(n)) => n.clone(),
            Some(UseVmac::On(true)) => {
                let first = format!("vrrp.{}", vrid.get());
                if family == Family::Ipv6 && taken(self, &first).is_some() {
                    format!("vrrp6.{}", vrid.get())
                } else {
                    first
                }
            }
        };
        let key = || k.key("use_vmac");
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ':']) || name == "." {
            self.err(
                key(),
                ErrorKind::Invalid(format!(
                    "{name:?} is not an interface name (1 to 15 characters, no '/', ':' or space)"
                )),
            );
            return None;
        }
        if name == interface {
            self.err(
                key(),
                ErrorKind::Invalid(format!(
                    "the macvlan cannot be the instance's own interface {interface}"
                )),
            );
            return None;
        }
        if let Some(other) = taken(self, &name) {
            self.err(
                key(),
                ErrorKind::Invalid(format!(
                    "{name} is already instance {other}'s interface or macvlan"
                )),
            );
            return None;
        }
        Some(Vmac {
            name,
            xmit_base: xmit_base.unwrap_or(false),
        })
    }
}
