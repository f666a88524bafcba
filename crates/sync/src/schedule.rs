//! When the next sync should run: upstream's bounded-frequency rules plus retry backoff, as a pure state machine.
//!
//! - a requested sync runs no sooner than `min_interval` after the previous sync started;
//! - a sync runs at least every `max_interval` even when nothing changed (this repairs tampered rules);
//! - after a failure a retry is scheduled with exponential backoff, from `min_interval` (at least 1 s) up to
//!   `max_interval`.

use std::time::{Duration, Instant};

/// Timing knobs, normally minSyncPeriod and syncPeriod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduleConfig {
    pub min_interval: Duration,
    pub max_interval: Duration,
}

/// The scheduling state.
#[derive(Clone, Debug)]
pub struct Schedule {
    cfg: ScheduleConfig,
    last_start: Option<Instant>,
    requested: bool,
    retry_at: Option<Instant>,
    consecutive_failures: u32,
}

impl Schedule {
    pub fn new(cfg: ScheduleConfig) -> Schedule {
        Schedule {
            cfg,
            last_start: None,
            requested: true,
            retry_at: None,
            consecutive_failures: 0,
        }
    }

    /// Something changed: sync as soon as the minimum interval allows.
    pub fn request(&mut self) {
        self.requested = true;
    }

    /// Failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The instant the next sync is due.
    pub fn next_due(&self) -> Instant {
        let Some(last) = self.last_start else {
            // Never synced: due immediately. Callers pass their own `now`, so any past instant works.
            return Instant::now();
        };
        let mut due = last + self.cfg.max_interval;
        if self.requested {
            due = due.min(last + self.cfg.min_interval);
        }
        if let Some(retry) = self.retry_at {
            due = due.min(retry.max(last + self.cfg.min_interval));
        }
        due
    }

    /// Whether a sync is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.last_start.is_none() || now >= self.next_due()
    }

    /// A sync starts at `now`; it covers every change requested so far.
    pub fn started(&mut self, now: Instant) {
        self.last_start = Some(now);
        self.requested = false;
        self.retry_at = None;
    }

    /// The sync that started last finished at `now`.
    pub fn finished(&mut self, ok: bool, now: Instant) {
        if ok {
            self.consecutive_failures = 0;
            return;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.retry_at = Some(now + self.backoff());
    }

    /// Delay before the next retry, doubling with each consecutive failure.
    fn backoff(&self) -> Duration {
        let base = self.cfg.min_interval.max(Duration::from_secs(1));
        let shift = self.consecutive_failures.saturating_sub(1).min(16);
        base.saturating_mul(1 << shift).min(self.cfg.max_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(min: u64, max: u64) -> Schedule {
        Schedule::new(ScheduleConfig {
            min_interval: Duration::from_secs(min),
            max_interval: Duration::from_secs(max),
        })
    }

    #[test]
    fn first_sync_is_due_at_once() {
        let s = sched(1, 30);
        assert!(s.is_due(Instant::now()));
    }

    #[test]
    fn requests_wait_for_min_interval() {
        let t0 = Instant::now();
        let mut s = sched(2, 30);
        s.started(t0);
        s.finished(true, t0);
        assert!(!s.is_due(t0 + Duration::from_secs(1)), "idle, not due");
        s.request();
        assert!(
            !s.is_due(t0 + Duration::from_secs(1)),
            "within min interval"
        );
        assert!(s.is_due(t0 + Duration::from_secs(2)));
        assert_eq!(s.next_due(), t0 + Duration::from_secs(2));
    }

    #[test]
    fn periodic_sync_without_changes() {
        let t0 = Instant::now();
        let mut s = sched(1, 30);
        s.started(t0);
        s.finished(true, t0);
        assert!(!s.is_due(t0 + Duration::from_secs(29)));
        assert!(s.is_due(t0 + Duration::from_secs(30)));
    }

    #[test]
    fn failures_back_off_exponentially_up_to_max() {
        let t0 = Instant::now();
        let mut s = sched(1, 30);
        let mut delays = Vec::new();
        let mut now = t0;
        for _ in 0..7 {
            s.started(now);
            s.finished(false, now);
            let due = s.next_due();
            delays.push((due - now).as_secs());
            now = due;
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(s.consecutive_failures(), 7);
        s.started(now);
        s.finished(true, now);
        assert_eq!(s.consecutive_failures(), 0);
        assert_eq!(s.next_due(), now + Duration::from_secs(30));
    }

    #[test]
    fn retry_never_sooner_than_min_interval() {
        let t0 = Instant::now();
        let mut s = sched(5, 60);
        s.started(t0);
        s.finished(false, t0);
        assert_eq!(s.next_due(), t0 + Duration::from_secs(5));
    }

    #[test]
    fn a_start_consumes_requests_made_before_it() {
        let t0 = Instant::now();
        let mut s = sched(1, 30);
        s.request();
        s.started(t0);
        s.finished(true, t0);
        assert_eq!(s.next_due(), t0 + Duration::from_secs(30));
    }
}
