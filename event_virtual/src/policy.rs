//! Which member gets an event: member health and the choice rules of FAILOVER and ROUND-ROBIN,
//! as pure functions of the time (no I/O), so every rule is unit-tested without a daemon.

use std::time::{Duration, Instant};

/// A member's health within its group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// When the member last failed; `None` while healthy.
    pub failed_at: Option<Instant>,
    /// The token of the one event sent to probe a failed member after `failover_timeout`;
    /// other events skip the member until that probe's outcome is known.
    pub probe: Option<u64>,
}

/// What [`Health`] means right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Healthy,
    /// Failed less than `failover_timeout` ago: skipped.
    Resting,
    /// Failed long enough ago: the next event probes it.
    Expired,
    /// A probe is in flight.
    Probing,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Healthy => "ok",
            State::Resting => "failed",
            State::Expired => "failed (to be probed)",
            State::Probing => "probing",
        }
    }
}

impl Health {
    pub fn state(&self, now: Instant, rest: Duration) -> State {
        match self.failed_at {
            None => State::Healthy,
            Some(_) if self.probe.is_some() => State::Probing,
            Some(t) if now.saturating_duration_since(t) >= rest => State::Expired,
            Some(_) => State::Resting,
        }
    }

    /// A success: healthy again, no probe pending.
    pub fn recovered(&mut self) {
        *self = Health::default();
    }

    /// A failure at `now`; any probe is over.
    pub fn failed(&mut self, now: Instant) {
        self.failed_at = Some(now);
        self.probe = None;
    }
}

/// The choice for one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// Send to this member; `probe`: it is a failed member being tried again.
    Send { member: usize, probe: bool },
    /// Wait for the probe of a preferred member (FAILOVER keeps order per destination).
    Hold,
    /// Every member was tried for this event.
    Exhausted,
}

/// Walk `order` (member indexes, preferred first) skipping members already `tried` for this
/// event: the first healthy member, or the first whose rest is over (as a probe). A member
/// being probed makes the event wait when `hold_for_probe`, else it is skipped. When none is
/// eligible, the least recently failed untried member is tried anyway: OpenSIPS dropped the
/// event here, although that member may well work again.
pub fn pick(
    order: impl IntoIterator<Item = usize>,
    health: &[Health],
    tried: &[bool],
    now: Instant,
    rest: Duration,
    hold_for_probe: bool,
) -> Pick {
    let mut fallback: Option<(Instant, usize)> = None;
    for i in order {
        let (Some(h), Some(false)) = (health.get(i), tried.get(i).copied()) else {
            continue;
        };
        match h.state(now, rest) {
            State::Healthy => {
                return Pick::Send {
                    member: i,
                    probe: false,
                }
            }
            State::Expired => {
                return Pick::Send {
                    member: i,
                    probe: true,
                }
            }
            State::Probing if hold_for_probe => return Pick::Hold,
            State::Probing | State::Resting => {
                let at = h.failed_at.unwrap_or(now);
                if fallback.is_none_or(|(best, _)| at < best) {
                    fallback = Some((at, i));
                }
            }
        }
    }
    fallback.map_or(Pick::Exhausted, |(_, member)| Pick::Send {
        member,
        probe: false,
    })
}

/// Member indexes from `start`, wrapping around: ROUND-ROBIN's order.
pub fn rotation(start: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |k| (start + k) % n.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REST: Duration = Duration::from_secs(30);

    fn failed(at: Instant) -> Health {
        Health {
            failed_at: Some(at),
            probe: None,
        }
    }

    #[test]
    fn first_healthy_member_in_order() {
        let now = Instant::now();
        let h = [failed(now), Health::default(), Health::default()];
        let tried = [false; 3];
        assert_eq!(
            pick(0..3, &h, &tried, now, REST, true),
            Pick::Send {
                member: 1,
                probe: false
            }
        );
        assert_eq!(
            pick(rotation(2, 3), &h, &tried, now, REST, false),
            Pick::Send {
                member: 2,
                probe: false
            }
        );
        assert_eq!(
            pick(0..3, &h, &[false, true, false], now, REST, true),
            Pick::Send {
                member: 2,
                probe: false
            }
        );
    }

    #[test]
    fn a_rested_member_is_probed_once_and_others_wait_or_skip() {
        let t0 = Instant::now();
        let now = t0 + REST;
        let mut h = [failed(t0), Health::default()];
        assert_eq!(
            pick(0..2, &h, &[false; 2], now, REST, true),
            Pick::Send {
                member: 0,
                probe: true
            }
        );
        h[0].probe = Some(7);
        assert_eq!(pick(0..2, &h, &[false; 2], now, REST, true), Pick::Hold);
        assert_eq!(
            pick(0..2, &h, &[false; 2], now, REST, false),
            Pick::Send {
                member: 1,
                probe: false
            }
        );
        h[0].recovered();
        assert_eq!(h[0].state(now, REST), State::Healthy);
    }

    #[test]
    fn all_failed_tries_the_least_recently_failed_then_gives_up() {
        let t0 = Instant::now();
        let h = [
            failed(t0 + Duration::from_secs(2)),
            failed(t0),
            failed(t0 + Duration::from_secs(1)),
        ];
        let now = t0 + Duration::from_secs(3);
        assert_eq!(
            pick(0..3, &h, &[false; 3], now, REST, true),
            Pick::Send {
                member: 1,
                probe: false
            }
        );
        assert_eq!(
            pick(0..3, &h, &[false, true, false], now, REST, true),
            Pick::Send {
                member: 2,
                probe: false
            }
        );
        assert_eq!(pick(0..3, &h, &[true; 3], now, REST, true), Pick::Exhausted);
    }

    #[test]
    fn rotation_wraps() {
        assert_eq!(rotation(2, 3).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(rotation(0, 0).count(), 0);
    }
}
