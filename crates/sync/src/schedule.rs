//! When the next sync should run: upstream's bounded-frequency rules plus retry backoff, as a pure state machine.
//!
//! - requested syncs are rate limited by a token bucket that refills one token per `min_interval` and holds at
//!   most `burst` tokens (upstream allows 2 back to back, so a Service and its EndpointSlice arriving together
//!   are programmed without waiting a whole `min_interval` for the second);
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

/// Syncs that may run back to back before `min_interval` applies (upstream's burstSyncs).
pub const BURST_SYNCS: u32 = 2;

/// The scheduling state.
#[derive(Clone, Debug)]
pub struct Schedule {
    cfg: ScheduleConfig,
    last_start: Option<Instant>,
    requested: bool,
    retry_at: Option<Instant>,
    consecutive_failures: u32,
    /// Rate-limit tokens as of `tokens_at`.
    tokens: f64,
    tokens_at: Option<Instant>,
}

impl Schedule {
    pub fn new(cfg: ScheduleConfig) -> Schedule {
        Schedule {
            cfg,
            last_start: None,
            requested: true,
            retry_at: None,
            consecutive_failures: 0,
            tokens: BURST_SYNCS as f64,
            tokens_at: None,
        }
    }

    /// Tokens available at `at` (refilled one per `min_interval`, capped at the burst).
    fn tokens_at(&self, at: Instant) -> f64 {
        let min = self.cfg.min_interval.as_secs_f64();
        let burst = BURST_SYNCS as f64;
        match self.tokens_at {
            _ if min == 0.0 => burst,
            None => burst,
            Some(t) => {
                (self.tokens + at.saturating_duration_since(t).as_secs_f64() / min).min(burst)
            }
        }
    }

    /// When the next token is available.
    fn token_ready(&self) -> Instant {
        let Some(t) = self.tokens_at else {
            return self.last_start.unwrap_or_else(Instant::now);
        };
        let missing = (1.0 - self.tokens).max(0.0);
        t + self.cfg.min_interval.mul_f64(missing)
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
            due = due.min(self.token_ready());
        }
        if let Some(retry) = self.retry_at {
            due = due.min(retry.max(self.token_ready()));
        }
        due
    }

    /// Whether a sync is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.last_start.is_none() || now >= self.next_due()
    }

    /// A sync starts at `now`; it covers every change requested so far.
    pub fn started(&mut self, now: Instant) {
        self.tokens = (self.tokens_at(now) - 1.0).max(0.0);
        self.tokens_at = Some(now);
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
    fn two_syncs_may_run_back_to_back_then_min_interval_applies() {
        let t0 = Instant::now();
        let mut s = sched(2, 30);
        s.started(t0);
        s.finished(true, t0);
        assert!(!s.is_due(t0 + Duration::from_secs(1)), "idle, not due");
        // A second change right away uses the burst.
        s.request();
        assert_eq!(s.next_due(), t0);
        s.started(t0);
        s.finished(true, t0);
        // A third waits for a token: one min_interval after the burst was spent.
        s.request();
        assert!(
            !s.is_due(t0 + Duration::from_secs(1)),
            "within min interval"
        );
        assert_eq!(s.next_due(), t0 + Duration::from_secs(2));
        assert!(s.is_due(t0 + Duration::from_secs(2)));
    }

    #[test]
    fn tokens_refill_while_idle() {
        let t0 = Instant::now();
        let mut s = sched(2, 300);
        for _ in 0..2 {
            s.started(t0);
            s.finished(true, t0);
        }
        // Long idle: both tokens are back, so two quick syncs are allowed again.
        let t1 = t0 + Duration::from_secs(60);
        s.request();
        assert!(s.is_due(t1));
        s.started(t1);
        s.finished(true, t1);
        s.request();
        assert_eq!(s.next_due(), t1);
        s.started(t1);
        s.finished(true, t1);
        s.request();
        assert_eq!(s.next_due(), t1 + Duration::from_secs(2));
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
    fn retry_waits_for_backoff_and_a_token() {
        let t0 = Instant::now();
        let mut s = sched(5, 60);
        s.started(t0);
        s.finished(false, t0);
        // Backoff (5 s) dominates; a token is there already.
        assert_eq!(s.next_due(), t0 + Duration::from_secs(5));
        let mut s = sched(5, 60);
        s.started(t0);
        s.started(t0);
        s.finished(false, t0);
        // Burst spent: the retry also waits for a token.
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
