//! The built-in loopback LND `lo` (`lnet/lnet/lo.c`, semantics §10.4).
//!
//! `send` hands the message straight back to the host's `parse` on the same
//! NI, with the message itself as the receive token and `0@lo` as the
//! previous hop; `recv` copies the sender's payload into the receive payload,
//! completes the receive, then the send. No credits, no health, no
//! connection. `recv` may come from inside `parse` or later (a PUT delayed on a
//! lazy portal): pending sends wait in a map until then. No lock is held while
//! calling the host.

use std::collections::HashMap;
use std::sync::Mutex;

use lnd_api::{
    errno, lnd_type, Completion, HealthStatus, HostHandle, Lnd, LndError, LndHandle, LndNi,
    LndNiHandle, NetTunables, NiConfig, NiInfo, NiStarted, Nid, PayloadSpan, RxAction, RxToken,
    TxMsg,
};

/// The loopback LND.
#[derive(Debug, Default)]
pub struct LoLnd;

/// The NI `0@lo` served by [`LoLnd`].
pub struct LoNi {
    host: HostHandle,
    /// Sends whose `recv` has not come yet, by receive token (= send token).
    pending: Mutex<HashMap<u64, (TxMsg, PayloadSpan)>>,
}

impl Lnd for LoLnd {
    fn startup(&self, cfg: NiConfig, host: HostHandle) -> Result<NiStarted, LndError> {
        if cfg.net.lnd_type != lnd_type::LOLND {
            return Err(LndError::new(
                errno::EINVAL,
                format!(
                    "lo LND cannot serve net type {} (only lo)",
                    cfg.net.lnd_type
                ),
            ));
        }
        let info = NiInfo {
            nid: Nid::LO_0,
            interfaces: Default::default(),
            tunables: NetTunables {
                peer_timeout: 0,
                peer_credits: 0,
                peer_buffer_credits: 0,
                credits: 0,
            },
            lnd_tunables: Default::default(),
            timeout_secs: 0,
        };
        Ok(NiStarted {
            info,
            ni: LndNiHandle::new(LoNi::new(host)),
        })
    }
}

impl LoNi {
    /// An `0@lo` NI calling back into `host`.
    pub fn new(host: HostHandle) -> LoNi {
        LoNi {
            host,
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn take(&self, rx: RxToken) -> Option<(TxMsg, PayloadSpan)> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&rx.0)
    }
}

/// Copies `src` into `dst`; when they share an allocation (a PUT from an MD
/// into itself) the bytes go through a temporary copy.
fn copy_payload(src: &PayloadSpan, dst: &PayloadSpan) -> Result<usize, lnd_api::Busy> {
    match src.copy_to(dst) {
        Ok(n) => Ok(n),
        Err(_) => {
            let n = src.len().min(dst.len());
            let mut tmp = vec![0u8; n];
            src.read_at(0, &mut tmp)?;
            dst.write_at(0, &tmp)
        }
    }
}

impl LndNi for LoNi {
    fn send(&self, tx: TxMsg) -> Result<(), LndError> {
        let (tx, payload) = tx.split_payload();
        self.send_span(tx, payload)
    }

    fn recv(&self, rx: RxAction) -> Result<(), LndError> {
        let (rx, payload) = rx.split_payload();
        self.recv_span(rx, payload)
    }

    fn send_span(&self, tx: TxMsg, payload: PayloadSpan) -> Result<(), LndError> {
        let token = tx.token.0;
        let hdr = tx.hdr;
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token, (tx, payload));
        match self.host.parse(hdr, Nid::LO_0, RxToken(token), false) {
            Ok(()) => Ok(()),
            Err(e) => {
                // recv will not come; if it did already, the entry is gone and
                // the message was finalized: report success then.
                match self.take(RxToken(token)) {
                    Some(_) => Err(e),
                    None => Ok(()),
                }
            }
        }
    }

    fn recv_span(&self, rx: RxAction, payload: PayloadSpan) -> Result<(), LndError> {
        let Some((tx, src)) = self.take(rx.rx) else {
            return Err(LndError::new(
                errno::EINVAL,
                format!("lo: recv for unknown token {:#x}", rx.rx.0),
            ));
        };
        let status = match rx.msg.into_option() {
            Some(msg) => {
                let st = match copy_payload(&src, &payload) {
                    Ok(_) => Completion::OK,
                    Err(_) => Completion::failed(errno::EIO, HealthStatus::LOCAL_ERROR),
                };
                self.host.finalize(msg, st);
                st
            }
            None => Completion::OK,
        };
        self.host.finalize(tx.token, status);
        Ok(())
    }

    fn eager_recv(&self, rx: RxToken) -> Result<(), LndError> {
        // The sender's payload stays valid until recv: nothing to free.
        let _ = rx;
        Ok(())
    }

    fn shutdown(&self) {
        let pending: Vec<TxMsg> = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, (tx, _))| tx)
            .collect();
        for tx in pending {
            self.host.finalize(
                tx.token,
                Completion::failed(errno::ENETDOWN, HealthStatus::LOCAL_INTERRUPT),
            );
        }
    }
}

fn new_lo(name: &str) -> Result<LndHandle, LndError> {
    if name == "lo" {
        Ok(LndHandle::new(LoLnd))
    } else {
        Err(LndError::new(
            errno::EINVAL,
            format!("the built-in lo LND has no net type {name:?}"),
        ))
    }
}

inventory::submit! {
    crate::host::BuiltinLnd { name: "lo", net_types: &[("lo", lnd_type::LOLND)], new_lnd: new_lo }
}
