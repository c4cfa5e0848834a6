//! What one client connection may hold, and for how long: its client address's share of the
//! connection limit ([`AddressSlots`]), and the idle watchdog ([`Activity`]) that closes a
//! connection with no request in flight once it has been quiet too long: since it was accepted,
//! before its first request (the header deadline counts from accept, so a socket that never sends
//! a byte, or stalls in the TLS handshake or HTTP version detection, is closed like one that
//! sends half a header), or since its last response ended (idle keep-alive, HTTP/1 and HTTP/2
//! alike).
//!
//! A request counts as in flight from the moment hyper hands it to the service until its
//! response body is dropped, so a long blob download is never cut as "idle". This module knows
//! nothing of the registry protocol.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::upstream::body::ResponseBody;

// === impl AddressSlots ===

/// How many connections each client address holds, bounded by `max` per address.
pub struct AddressSlots {
    max: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's share of its address's slots; given back on drop.
pub struct AddressSlot {
    slots: Arc<AddressSlots>,
    ip: IpAddr,
}

impl AddressSlots {
    pub fn new(max: usize) -> Arc<AddressSlots> {
        Arc::new(AddressSlots {
            max,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a new connection from `ip`, or `None` when that address holds `max` already.
    pub fn try_take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let mut held = self.lock();
        let n = held.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            slots: self.clone(),
            ip,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // The map holds plain counters: a panic elsewhere cannot leave it half-updated.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut held = self.slots.lock();
        if let Some(n) = held.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

// === impl Activity ===

/// What a connection is doing, as its idle watchdog sees it.
pub struct Activity {
    in_flight: AtomicUsize,
    served: AtomicBool,
    /// When the connection was accepted, or when its last response ended.
    quiet_since: Mutex<Instant>,
}

/// A request in flight on a connection; dropping it (with the response body) ends it.
pub struct InFlight(Arc<Activity>);

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            quiet_since: Mutex::new(Instant::now()),
        })
    }

    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.served.store(true, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn quiet_since(&self) -> MutexGuard<'_, Instant> {
        // An Instant cannot be left half-written by a panic.
        self.quiet_since.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves once no request is in flight and the connection has been quiet for `first`
    /// since it was accepted (no request yet) or for `idle` since its last response ended.
    pub async fn idle(&self, first: Duration, idle: Duration) {
        loop {
            let quiet_for = if self.served.load(Ordering::SeqCst) {
                idle
            } else {
                first
            };
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                // Checked again later; a response ending resets the quiet time anyway.
                tokio::time::sleep(quiet_for).await;
                continue;
            }
            let due = *self.quiet_since() + quiet_for;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due).await;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.quiet_since() = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The response body, holding the request in flight until the body is done with.
pub fn hold_until_sent(body: ResponseBody, in_flight: InFlight) -> ResponseBody {
    body.map_err(move |e| {
        // The closure owns `in_flight`: it is dropped with the body.
        let _held = &in_flight;
        e
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_share() {
        let slots = AddressSlots::new(2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.1".parse().unwrap();
        let first = slots.try_take(a).unwrap();
        let _second = slots.try_take(a).unwrap();
        assert!(slots.try_take(a).is_none(), "a third slot for one address");
        assert!(
            slots.try_take(b).is_some(),
            "another address is not held back"
        );
        drop(first);
        assert!(
            slots.try_take(a).is_some(),
            "a slot given back can be taken again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_requests_in_flight() {
        let activity = Activity::new();
        let first = Duration::from_secs(10);
        let idle = Duration::from_secs(60);
        // No request yet: quiet for `first` since accept.
        let started = Instant::now();
        activity.idle(first, idle).await;
        assert_eq!(started.elapsed(), first);

        let request = activity.start();
        let watchdog = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle(first, idle).await }
        });
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert!(!watchdog.is_finished(), "a request in flight is never idle");
        drop(request);
        let ended = Instant::now();
        watchdog.await.unwrap();
        assert!(
            ended.elapsed() >= idle,
            "idle counts from the end of the last response"
        );
    }
}
