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
}

impl Statistics {
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
            DropReason::VersionMismatch | DropReason::Version => &mut self.version_mismatch,
            DropReason::UnknownPeer => &mut self.unknown_peer,
            DropReason::OwnPacket => &mut self.own_packets,
            DropReason::NotRunning => &mut self.dropped_not_running,
            DropReason::Checksum | DropReason::UnknownVrid => &mut self.checksum_errors,
        };
        *c += 1;
    }

    /// Total packets dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.ip_ttl_errors
            + self.adv_interval_errors
            + self.address_list_errors
            + self.rcvd_invalid_type_packets
            + self.packet_length_errors
            + self.auth_failures
            + self.invalid_auth_type
            + self.auth_type_mismatch
            + self.version_mismatch
            + self.unknown_peer
            + self.own_packets
            + self.dropped_not_running
            + self.checksum_errors
    }
}

/// Counters of packets a [`crate::Router`] dropped before they reached an
/// instance.
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
