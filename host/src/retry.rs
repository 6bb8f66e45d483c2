//! Capped, jittered retry delays within a deadline.
//!
//! etcd refuses membership changes while the cluster is unsettled and
//! accepts them again at a moment no client can predict (FACTS.md: 5 s
//! after a promotion). Retrying too slowly wastes that moment; retrying in
//! lock-step from several joiners makes them collide. So the delay grows
//! from `initial` to a small `cap`, each one drawn at random from its
//! upper half ("equal jitter"), and nothing is retried past the deadline.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    next: Duration,
    cap: Duration,
    deadline: Instant,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, cap: Duration, deadline: Instant) -> Self {
        Self {
            next: initial.min(cap),
            cap,
            deadline,
        }
    }

    /// The delay to wait before the next attempt, or `None` when that
    /// attempt would start past the deadline.
    pub(crate) fn next_delay(&mut self) -> Option<Duration> {
        let ceiling = self.next;
        self.next = (self.next * 2).min(self.cap);
        let half = ceiling / 2;
        let delay = half + rand::rng().random_range(Duration::ZERO..=half);
        (Instant::now() + delay < self.deadline).then_some(delay)
    }

    /// Sleep for the next delay; `false` when the deadline is reached.
    pub(crate) async fn wait(&mut self) -> bool {
        match self.next_delay() {
            Some(delay) => {
                tokio::time::sleep(delay).await;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_jitter_in_the_upper_half() {
        let mut backoff = Backoff::new(
            Duration::from_millis(40),
            Duration::from_millis(200),
            Instant::now() + Duration::from_secs(60),
        );
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay().unwrap()).collect();
        for (delay, ceiling) in delays.iter().zip([40u64, 80, 160, 200, 200, 200, 200, 200]) {
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                *delay >= ceiling / 2 && *delay <= ceiling,
                "{delay:?} vs {ceiling:?}"
            );
        }
    }

    #[test]
    fn nothing_is_retried_past_the_deadline() {
        let mut backoff = Backoff::new(
            Duration::from_secs(2),
            Duration::from_secs(2),
            Instant::now() + Duration::from_millis(500),
        );
        assert_eq!(backoff.next_delay(), None);
    }
}
