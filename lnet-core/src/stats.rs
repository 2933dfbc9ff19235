//! Counters: global (`struct lnet_counters`, `lnetctl stats show`) and per NI
//! or peer NI (`net show -v`, `peer show -v`).
//!
//! They count what was delivered (issue 11 item 6, upstream's decommit):
//! `send_*` when the LND completed a send, `recv_*` when a received message
//! completed (its bytes are those that landed in the MD: a truncated PUT or
//! REPLY counts its matched length; a matched GET counts when it is parsed,
//! having no payload). A message that did not complete — an aborted or
//! failed receive, a send attempt the LND failed, one that never left, a
//! header matching nothing — counts once in `drop_count`/`drop_length` (its
//! claimed payload length) and the NI's and peer NI's `dropped`. Forwarded
//! messages are counted by the router (`crate::router`).

use lnd_api::{HealthStatus, MsgType};

/// Message counts by type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypeCounts {
    /// PUTs.
    pub put: u64,
    /// GETs.
    pub get: u64,
    /// REPLYs.
    pub reply: u64,
    /// ACKs.
    pub ack: u64,
    /// HELLOs (never counted by this engine; kept for the YAML shape).
    pub hello: u64,
}

impl TypeCounts {
    pub(crate) fn bump(&mut self, t: MsgType) {
        match t {
            MsgType::PUT => self.put += 1,
            MsgType::GET => self.get += 1,
            MsgType::REPLY => self.reply += 1,
            MsgType::ACK => self.ack += 1,
            _ => self.hello += 1,
        }
    }

    /// Sum over all types.
    pub fn total(&self) -> u64 {
        self.put + self.get + self.reply + self.ack + self.hello
    }
}

/// Counts of failed messages by health status (`lnet_health_local_stats` /
/// `lnet_health_remote_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealthCounts {
    /// LOCAL_INTERRUPT.
    pub local_interrupt: u64,
    /// LOCAL_DROPPED.
    pub local_dropped: u64,
    /// LOCAL_ABORTED.
    pub local_aborted: u64,
    /// LOCAL_NO_ROUTE.
    pub local_no_route: u64,
    /// LOCAL_TIMEOUT.
    pub local_timeout: u64,
    /// LOCAL_ERROR.
    pub local_error: u64,
    /// REMOTE_DROPPED.
    pub remote_dropped: u64,
    /// REMOTE_ERROR.
    pub remote_error: u64,
    /// REMOTE_TIMEOUT.
    pub remote_timeout: u64,
    /// NETWORK_TIMEOUT.
    pub network_timeout: u64,
}

impl HealthCounts {
    pub(crate) fn bump(&mut self, h: HealthStatus) {
        match h {
            HealthStatus::LOCAL_INTERRUPT => self.local_interrupt += 1,
            HealthStatus::LOCAL_DROPPED => self.local_dropped += 1,
            HealthStatus::LOCAL_ABORTED => self.local_aborted += 1,
            HealthStatus::LOCAL_NO_ROUTE => self.local_no_route += 1,
            HealthStatus::LOCAL_TIMEOUT => self.local_timeout += 1,
            HealthStatus::LOCAL_ERROR => self.local_error += 1,
            HealthStatus::REMOTE_DROPPED => self.remote_dropped += 1,
            HealthStatus::REMOTE_ERROR => self.remote_error += 1,
            HealthStatus::REMOTE_TIMEOUT => self.remote_timeout += 1,
            HealthStatus::NETWORK_TIMEOUT => self.network_timeout += 1,
            _ => {}
        }
    }
}

/// Latency samples of one kind (`put_egress`, `get_rtt`, `put_ack`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencyStats {
    /// Number of samples.
    pub samples: u64,
    /// Smallest sample, ns (0 without samples).
    pub min_nsec: u64,
    /// Largest sample, ns.
    pub max_nsec: u64,
    /// Sum of the samples, ns.
    pub total_nsec: u64,
}

impl LatencyStats {
    pub(crate) fn sample(&mut self, ns: u64) {
        self.min_nsec = if self.samples == 0 {
            ns
        } else {
            self.min_nsec.min(ns)
        };
        self.max_nsec = self.max_nsec.max(ns);
        self.samples += 1;
        self.total_nsec = self.total_nsec.saturating_add(ns);
    }

    /// Average, ns (0 without samples).
    pub fn avg_nsec(&self) -> u64 {
        self.total_nsec.checked_div(self.samples).unwrap_or(0)
    }
}

/// Per-NI or per-peer-NI message statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgStats {
    /// Sent, by type.
    pub sent: TypeCounts,
    /// Received, by type.
    pub received: TypeCounts,
    /// Dropped, by type.
    pub dropped: TypeCounts,
    /// Payload bytes sent.
    pub send_length: u64,
    /// Payload bytes received.
    pub recv_length: u64,
    /// Payload bytes dropped.
    pub drop_length: u64,
    /// Failed messages by health status.
    pub health: HealthCounts,
    /// PUT commit to the LND's completion of the send (local NI).
    pub put_egress: LatencyStats,
    /// GET commit to the REPLY's arrival (local NI the GET left from).
    pub get_rtt: LatencyStats,
    /// PUT commit to the ACK's arrival (local NI the PUT left from).
    pub put_ack: LatencyStats,
}

impl MsgStats {
    pub(crate) fn sent(&mut self, t: MsgType, len: u32) {
        self.sent.bump(t);
        self.send_length += u64::from(len);
    }
    pub(crate) fn received(&mut self, t: MsgType, len: u32) {
        self.received.bump(t);
        self.recv_length += u64::from(len);
    }
    pub(crate) fn dropped(&mut self, t: MsgType, len: u32) {
        self.dropped.bump(t);
        self.drop_length += u64::from(len);
    }
}

/// Global counters (`struct lnet_counters_common` + health), as
/// `lnetctl stats show` prints them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Messages in flight.
    pub msgs_alloc: u64,
    /// High-water mark of `msgs_alloc`.
    pub msgs_max: u64,
    /// Response trackers allocated.
    pub rst_alloc: u64,
    /// Messages that completed with an error.
    pub errors: u64,
    /// Messages sent.
    pub send_count: u64,
    /// Resends.
    pub resend_count: u64,
    /// Responses (ACK/REPLY) that never came.
    pub response_timeout_count: u64,
    /// Failed messages by health status.
    pub health: HealthCounts,
    /// Resends that failed for good.
    pub failed_resends: u64,
    /// Messages that succeeded after a resend.
    pub successful_resends: u64,
    /// Messages received.
    pub recv_count: u64,
    /// Messages forwarded.
    pub route_count: u64,
    /// Messages dropped.
    pub drop_count: u64,
    /// Payload bytes sent.
    pub send_length: u64,
    /// Payload bytes received.
    pub recv_length: u64,
    /// Payload bytes forwarded.
    pub route_length: u64,
    /// Payload bytes dropped.
    pub drop_length: u64,
    /// Finalize calls with a stale or unknown message token (ours, not upstream's).
    pub stale_tokens: u64,
}

impl Counters {
    pub(crate) fn msg_alloc(&mut self) {
        self.msgs_alloc += 1;
        self.msgs_max = self.msgs_max.max(self.msgs_alloc);
    }
    pub(crate) fn msg_free(&mut self) {
        self.msgs_alloc = self.msgs_alloc.saturating_sub(1);
    }
}
