//! Resolving keepalived's `use_vmac` and `vmac_xmit_base`.

use vrrp_core::{Family, Vrid};

use super::super::effective::Vmac;
use super::super::error::{ErrorKind, KeyPath};
use super::super::raw::UseVmac;
use super::Resolver;

impl Resolver {
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
