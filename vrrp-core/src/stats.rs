//! Per-instance and per-router statistics, named after the VRRP MIB
//! (RFC 6527 `vrrpv3StatisticsTable` and `vrrpv3RouterStatistics`; the
//! authentication counters come from the VRRPv2 MIB, RFC 2787).

/// Why a received packet was dropped. Each reason has a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Shorter than its header, address count and auth data call for
    /// (`vrrpv3StatisticsPacketLengthErrors`).
    PacketLength,
    /// Unknown version, or VRRPv2 over IPv6 (`vrrpv3RouterVersionErrors`).
    Version,
    /// Type other than ADVERTISEMENT (`vrrpv3StatisticsRcvdInvalidTypePackets`).
    InvalidType,
    /// Checksum mismatch (`vrrpv3RouterChecksumErrors`).
    Checksum,
    /// No instance for this VRID on this interface and family
    /// (`vrrpv3RouterVrIdErrors`).
    UnknownVrid,
    /// TTL / hop limit not 255 (`vrrpv3StatisticsIpTtlErrors`).
    IpTtl,
    /// The version is not the instance's (counted with version errors in
    /// the MIB; kept apart here because it names a misconfiguration).
    VersionMismatch,
    /// VRRPv2 interval differs from ours (`vrrpv3StatisticsAdvIntervalErrors`).
    AdvertInterval,
    /// Address list differs and the sender is not the owner
    /// (`vrrpv3StatisticsAddressListErrors`).
    AddressList,
    /// Authentication type differs (`vrrpStatsAuthTypeMismatch`).
    AuthTypeMismatch,
    /// Unknown authentication type, or IP AH (`vrrpStatsInvalidAuthType`).
    InvalidAuthType,
    /// Wrong password (`vrrpStatsAuthFailures`).
    AuthFailure,
    /// Unicast mode and the sender is not a configured peer.
    UnknownPeer,
    /// Our own advertisement looped back to us.
    OwnPacket,
    /// The instance is not running (Initialize or Fault).
    NotRunning,
    /// We are the address owner (priority 255): RFC 5798 7.1 and RFC 3768
    /// 7.1 discard every advertisement (unless the instance keeps
    /// keepalived 2.2.7's behaviour, see
    /// [`crate::InstanceConfig::owner_ignore_adverts`]).
    AddressOwner,
    /// The advertisement lists no address (RFC 5798 5.2.5; the 7.1 check
    /// added by RFC 9568 erratum 8299).
    ZeroAddressCount,
    /// A priority-0 advertisement from a router other than the current
    /// master: honouring it would let any host on the link trigger a
    /// takeover within Skew_Time.
    PriorityZeroNotFromMaster,
}

impl DropReason {
    /// Every reason, in the order of RFC 5798 7.1 where it applies.
    pub const ALL: [DropReason; 18] = [
        DropReason::Version,
        DropReason::IpTtl,
        DropReason::InvalidType,
        DropReason::PacketLength,
        DropReason::VersionMismatch,
        DropReason::Checksum,
        DropReason::UnknownVrid,
        DropReason::AddressOwner,
        DropReason::ZeroAddressCount,
        DropReason::AuthTypeMismatch,
        DropReason::InvalidAuthType,
        DropReason::AuthFailure,
        DropReason::AdvertInterval,
        DropReason::UnknownPeer,
        DropReason::OwnPacket,
        DropReason::AddressList,
        DropReason::NotRunning,
        DropReason::PriorityZeroNotFromMaster,
    ];

    /// A stable snake-case name (for logs and metrics labels).
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::PacketLength => "packet_length",
            DropReason::Version => "version",
            DropReason::InvalidType => "invalid_type",
            DropReason::Checksum => "checksum",
            DropReason::UnknownVrid => "unknown_vrid",
            DropReason::IpTtl => "ip_ttl",
            DropReason::VersionMismatch => "version_mismatch",
            DropReason::AdvertInterval => "advert_interval",
            DropReason::AddressList => "address_list",
            DropReason::AuthTypeMismatch => "auth_type_mismatch",
            DropReason::InvalidAuthType => "invalid_auth_type",
            DropReason::AuthFailure => "auth_failure",
            DropReason::UnknownPeer => "unknown_peer",
            DropReason::OwnPacket => "own_packet",
            DropReason::NotRunning => "not_running",
            DropReason::AddressOwner => "address_owner",
            DropReason::ZeroAddressCount => "zero_address_count",
            DropReason::PriorityZeroNotFromMaster => "priority_zero_not_from_master",
        }
    }
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Counters of one instance. All only ever grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Statistics {
    /// Times this instance became master (`vrrpv3StatisticsMasterTransitions`).
    pub master_transitions: u64,
    /// Every state transition, in any direction.
    pub transitions: u64,
    /// Advertisements accepted (`vrrpv3StatisticsRcvdAdvertisements`).
    pub rcvd_advertisements: u64,
    /// Advertisements asked to be sent.
    pub sent_advertisements: u64,
    /// Priority-0 advertisements accepted (`vrrpv3StatisticsRcvdPriZeroPackets`).
    pub rcvd_pri_zero_packets: u64,
    /// Priority-0 advertisements sent (`vrrpv3StatisticsSentPriZeroPackets`).
    pub sent_pri_zero_packets: u64,
    /// See [`DropReason::IpTtl`].
    pub ip_ttl_errors: u64,
    /// See [`DropReason::AdvertInterval`].
    pub adv_interval_errors: u64,
    /// See [`DropReason::AddressList`].
    pub address_list_errors: u64,
    /// See [`DropReason::InvalidType`].
    pub rcvd_invalid_type_packets: u64,
    /// See [`DropReason::PacketLength`].
    pub packet_length_errors: u64,
    /// See [`DropReason::AuthFailure`].
    pub auth_failures: u64,
    /// See [`DropReason::InvalidAuthType`].
    pub invalid_auth_type: u64,
    /// See [`DropReason::AuthTypeMismatch`].
    pub auth_type_mismatch: u64,
    /// See [`DropReason::VersionMismatch`].
    pub version_mismatch: u64,
    /// See [`DropReason::UnknownPeer`].
    pub unknown_peer: u64,
    /// See [`DropReason::OwnPacket`].
    pub own_packets: u64,
    /// See [`DropReason::NotRunning`].
    pub dropped_not_running: u64,
    /// See [`DropReason::Checksum`] (counted per instance when the VRID
    /// could be read).
    pub checksum_errors: u64,
    /// See [`DropReason::Version`]: a version nibble other than 2 or 3,
    /// VRRPv2 over IPv6, or a packet of the other address family.
    pub version_errors: u64,
    /// See [`DropReason::UnknownVrid`] (an advertisement whose VRID field
    /// is 0 or not ours).
    pub vrid_errors: u64,
    /// See [`DropReason::AddressOwner`].
    pub owner_discards: u64,
    /// See [`DropReason::ZeroAddressCount`].
    pub zero_address_count: u64,
    /// See [`DropReason::PriorityZeroNotFromMaster`].
    pub pri_zero_not_from_master: u64,
}

impl Statistics {
    /// The counter of one drop reason; each reason has its own.
    pub fn drops(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::PacketLength => self.packet_length_errors,
            DropReason::InvalidType => self.rcvd_invalid_type_packets,
            DropReason::IpTtl => self.ip_ttl_errors,
            DropReason::AdvertInterval => self.adv_interval_errors,
            DropReason::AddressList => self.address_list_errors,
            DropReason::AuthTypeMismatch => self.auth_type_mismatch,
            DropReason::InvalidAuthType => self.invalid_auth_type,
            DropReason::AuthFailure => self.auth_failures,
            DropReason::VersionMismatch => self.version_mismatch,
            DropReason::Version => self.version_errors,
            DropReason::UnknownPeer => self.unknown_peer,
            DropReason::OwnPacket => self.own_packets,
            DropReason::NotRunning => self.dropped_not_running,
            DropReason::Checksum => self.checksum_errors,
            DropReason::UnknownVrid => self.vrid_errors,
            DropReason::AddressOwner => self.owner_discards,
            DropReason::ZeroAddressCount => self.zero_address_count,
            DropReason::PriorityZeroNotFromMaster => self.pri_zero_not_from_master,
        }
    }

    /// Counts one drop.
    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        let c = match reason {
            DropReason::PacketLength => &mut self.packet_length_errors,
            DropReason::InvalidType => &mut self.rcvd_invalid_type_packets,
            DropReason::IpTtl => &mut self.ip_ttl_errors,
            DropReason::AdvertInterval => &mut self.adv_interval_errors,
            DropReason::AddressList => &mut self.address_list_errors,
            DropReason::AuthTypeMismatch => &mut self.auth_type_mismatch,
            DropReason::InvalidAuthType => &mut self.invalid_auth_type,
            DropReason::AuthFailure => &mut self.auth_failures,
            DropReason::VersionMismatch => &mut self.version_mismatch,
            DropReason::Version => &mut self.version_errors,
            DropReason::UnknownPeer => &mut self.unknown_peer,
            DropReason::OwnPacket => &mut self.own_packets,
            DropReason::NotRunning => &mut self.dropped_not_running,
            DropReason::Checksum => &mut self.checksum_errors,
            DropReason::UnknownVrid => &mut self.vrid_errors,
            DropReason::AddressOwner => &mut self.owner_discards,
            DropReason::ZeroAddressCount => &mut self.zero_address_count,
            DropReason::PriorityZeroNotFromMaster => &mut self.pri_zero_not_from_master,
        };
        *c += 1;
    }

    /// Every drop counter with its reason, in [`DropReason::ALL`] order.
    pub fn drop_counters(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.into_iter().map(|r| (r, self.drops(r)))
    }

    /// Total packets dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.drop_counters().map(|(_, n)| n).sum()
    }
}

/// Counters of packets a [`crate::Router`] dropped before they reached an
/// instance (and, as RFC 6527 has it, a router-wide count of checksum
/// errors, which the instance counts too).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterStatistics {
    /// `vrrpv3RouterChecksumErrors`.
    pub checksum_errors: u64,
    /// `vrrpv3RouterVersionErrors`.
    pub version_errors: u64,
    /// `vrrpv3RouterVrIdErrors`: no instance for the VRID.
    pub vrid_errors: u64,
    /// Too short for a VRRP header.
    pub packet_length_errors: u64,
    /// Wrong packet type.
    pub invalid_type_errors: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_moves_exactly_its_own_counter() {
        for reason in DropReason::ALL {
            let mut s = Statistics::default();
            s.count_drop(reason);
            assert_eq!(s.drops(reason), 1, "{reason}");
            assert_eq!(s.dropped(), 1, "{reason} counted once");
            for other in DropReason::ALL.into_iter().filter(|o| *o != reason) {
                assert_eq!(s.drops(other), 0, "{reason} moved {other}");
            }
        }
        let names: std::collections::BTreeSet<&str> =
            DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::ALL.len(), "names are distinct");
    }
}
