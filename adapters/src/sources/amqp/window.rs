//! Byte-aware flow control of the AMQP consumer: how many messages the broker may deliver before
//! the gateway acknowledges some (the consumer's prefetch, its *window*).
//!
//! RabbitMQ counts a prefetch in messages only (`prefetch_size` is not implemented), and a
//! consumer's prefetch is fixed when it starts consuming: a later `basic.qos` with
//! `global = false` applies to consumers started afterwards, and the channel-wide `global = true`
//! variant is deprecated, refused by quorum queues and denied by default since RabbitMQ 4.3
//! (`gateway/examples/amqp_qos_probe.rs` shows this against a broker). So the window is chosen
//! here from the sizes of the messages seen, and a new window is applied by cancelling the
//! consumer and consuming again (see [`super::AmqpConsumer`]).
//!
//! The rule:
//! - the first window assumes messages as large as RabbitMQ's own default limit
//!   ([`ASSUMED_LARGEST_MESSAGE`]), or `max_message_bytes` if larger;
//! - the messages are looked at in *rounds* of one window's worth of deliveries: after a round
//!   in which the window held the consumer back (every message it allows was delivered and
//!   unacknowledged), the window doubles, as long as the doubled window of the round's largest
//!   message stays within `max_inflight_bytes`, up to `prefetch`;
//! - a message too large for the window shrinks it at once to what fits (at least one message);
//! - a consumer with the new window starts only when the messages still held from before, plus
//!   the new window of messages as large as those it was sized on, stay within `prefetch` and
//!   `max_inflight_bytes` ([`Window::may_restart`]).

/// Message size the first window is computed for: RabbitMQ's default `max_message_size` since
/// 4.0 (16 MiB). A message larger than that is only delivered when the broker allows it.
pub const ASSUMED_LARGEST_MESSAGE: usize = 16 << 20;

/// The window of one consumer and the one its successor gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    prefetch: u16,
    max_inflight_bytes: usize,
    /// The window the running consumer was started with.
    current: u16,
    /// The window the next consumer gets; differs from `current` when a change is due.
    target: u16,
    /// The message size the target was computed from (for [`Window::may_restart`]).
    basis: usize,
    /// Deliveries in the current round (a round is `current` deliveries).
    round_seen: usize,
    /// The largest message of the current round, bytes.
    round_largest: usize,
    /// Whether the window held the consumer back during the current round.
    round_full: bool,
}

/// Messages of `size` bytes that fit in `bytes`: at least one, at most `u16::MAX`.
fn fitting(bytes: usize, size: usize) -> u16 {
    let n = bytes.checked_div(size).unwrap_or(usize::MAX);
    u16::try_from(n).unwrap_or(u16::MAX).max(1)
}

impl Window {
    /// The first window for a consumer with these settings (`prefetch` at least 1).
    pub fn new(prefetch: u16, max_inflight_bytes: usize, max_message_bytes: usize) -> Window {
        let prefetch = prefetch.max(1);
        let assumed = ASSUMED_LARGEST_MESSAGE.max(max_message_bytes);
        let first = fitting(max_inflight_bytes, assumed).min(prefetch);
        Window {
            prefetch,
            max_inflight_bytes,
            current: first,
            target: first,
            basis: assumed,
            round_seen: 0,
            round_largest: 0,
            round_full: false,
        }
    }

    /// The running consumer's window.
    pub fn current(&self) -> u16 {
        self.current
    }

    /// The window the next consumer is to get.
    pub fn target(&self) -> u16 {
        self.target
    }

    /// Whether the consumer should be replaced by one with [`Window::target`].
    pub fn change_due(&self) -> bool {
        self.target != self.current
    }

    /// A message of `size` bytes was delivered; `exhausted`: with it, every message the running
    /// consumer's window allows is delivered and unacknowledged. A message too large for the
    /// window shrinks the target at once; the end of a round in which the window was exhausted
    /// doubles it when the doubled window of the round's largest message fits.
    pub fn on_message(&mut self, size: usize, exhausted: bool) {
        self.round_seen += 1;
        self.round_largest = self.round_largest.max(size);
        self.round_full |= exhausted;
        let fits = fitting(self.max_inflight_bytes, size);
        if fits < self.target {
            self.target = fits;
        }
        if self.change_due() {
            self.basis = self.basis.max(size);
        }
        if self.round_seen < usize::from(self.current) {
            return;
        }
        if self.round_full && !self.change_due() && self.current < self.prefetch {
            let doubled = self.current.saturating_mul(2).min(self.prefetch);
            let next = doubled.min(fitting(self.max_inflight_bytes, self.round_largest));
            if next > self.current {
                self.target = next;
                self.basis = self.round_largest;
            }
        }
        self.new_round();
    }

    fn new_round(&mut self) {
        self.round_seen = 0;
        self.round_largest = 0;
        self.round_full = false;
    }

    /// Whether a consumer with the target window may start while `held_messages` messages of
    /// `held_bytes` bytes delivered before are unacknowledged: always when none are; otherwise
    /// when they and the target window of messages as large as the one it was sized on stay
    /// within `prefetch` and `max_inflight_bytes`.
    pub fn may_restart(&self, held_messages: usize, held_bytes: usize) -> bool {
        let window = usize::from(self.target);
        held_messages == 0
            || (held_messages + window <= usize::from(self.prefetch)
                && held_bytes.saturating_add(window.saturating_mul(self.basis)) <= self.max_inflight_bytes)
    }

    /// A consumer starts with the target window: returns it.
    pub fn restart(&mut self) -> u16 {
        self.current = self.target;
        self.new_round();
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;
    const KIB: usize = 1 << 10;

    /// Deliver rounds of `size`-byte messages that exhaust the window, restarting at each change,
    /// until it stops changing: the windows it went through.
    fn ramp(w: &mut Window, size: usize) -> Vec<u16> {
        let mut seen = vec![w.current()];
        for _ in 0..64 {
            for i in 1..=w.current() {
                w.on_message(size, i == w.current());
            }
            if !w.change_due() {
                break;
            }
            seen.push(w.restart());
        }
        seen
    }

    #[test]
    fn the_first_window_assumes_sixteen_mib_messages_or_max_message_bytes_if_larger() {
        assert_eq!(Window::new(2000, 64 * MIB, MIB).current(), 4);
        assert_eq!(Window::new(2000, 64 * MIB, 32 * MIB).current(), 2);
        assert_eq!(Window::new(2000, MIB, MIB).current(), 1, "never below one message");
        assert_eq!(Window::new(3, 1 << 40, MIB).current(), 3, "never above prefetch");
        assert_eq!(Window::new(0, 64 * MIB, MIB).current(), 1, "prefetch 0 is taken as 1");
    }

    #[test]
    fn small_messages_double_the_window_up_to_prefetch() {
        let mut w = Window::new(2000, 64 * MIB, MIB);
        assert_eq!(ramp(&mut w, 5 * KIB), [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2000]);
        assert_eq!(ramp(&mut w, 5 * KIB), [2000], "prefetch is the ceiling");
    }

    #[test]
    fn growth_stops_where_the_doubled_window_of_the_rounds_largest_message_would_not_fit() {
        let mut w = Window::new(2000, 64 * MIB, MIB);
        // 4 × 1 MiB fits; 8, 16, 32 and 64 too; 128 × 1 MiB would not.
        assert_eq!(ramp(&mut w, MIB), [4, 8, 16, 32, 64]);
        // Messages of 300 KiB: 128 of them fit (37.5 MiB); 256 would not (75 MiB), but 218 do.
        assert_eq!(ramp(&mut w, 300 * KIB), [64, 128, 218]);
    }

    #[test]
    fn a_window_that_never_held_the_consumer_back_does_not_grow() {
        let mut w = Window::new(2000, 64 * MIB, MIB);
        for _ in 0..100 {
            w.on_message(KIB, false);
        }
        assert!(!w.change_due());
        assert_eq!(w.current(), 4);
    }

    #[test]
    fn a_large_message_shrinks_the_window_at_once_to_what_fits() {
        let mut w = Window::new(2000, 64 * MIB, MIB);
        ramp(&mut w, 2 * KIB);
        assert_eq!(w.current(), 2000);
        w.on_message(15 * MIB, false);
        assert!(w.change_due(), "no need to wait for the end of a round");
        assert_eq!(w.target(), 4, "64 MiB / 15 MiB");
        w.on_message(100 * MIB, false);
        assert_eq!(w.target(), 1, "never below one message");
        for _ in 0..2000 {
            w.on_message(KIB, true);
        }
        assert_eq!(w.target(), 1, "the end of a round does not undo a shrink");
        assert_eq!(w.restart(), 1);
    }

    #[test]
    fn after_a_shrink_the_window_grows_back_on_rounds_of_small_messages() {
        let mut w = Window::new(2000, 64 * MIB, MIB);
        assert_eq!(ramp(&mut w, 15 * MIB), [4], "4 × 15 MiB fits, 8 × 15 MiB does not");
        assert_eq!(ramp(&mut w, KIB), [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2000]);
    }

    #[test]
    fn a_new_consumer_waits_until_what_is_held_and_its_window_fit() {
        let mut w = Window::new(2000, 64 * MIB, MIB);
        assert!(w.may_restart(0, 0));
        ramp(&mut w, KIB);
        assert_eq!(w.current(), 2000);
        w.on_message(15 * MIB, false);
        assert_eq!(w.target(), 4);
        assert!(!w.may_restart(3, 45 * MIB), "45 MiB held + 4 × 15 MiB exceed 64 MiB");
        assert!(w.may_restart(0, 0), "with nothing held it may always start");
        let mut w = Window::new(2000, 64 * MIB, MIB);
        for i in 1..=4 {
            w.on_message(KIB, i == 4);
        }
        assert_eq!(w.target(), 8);
        assert!(w.may_restart(4, 4 * KIB), "4 small held + 8 small: within both bounds");
        assert!(!w.may_restart(1995, 1995 * KIB), "1995 held + 8 exceed prefetch");
    }

    #[test]
    fn a_message_that_fits_the_target_changes_nothing() {
        let mut w = Window::new(2000, 64 * MIB, MIB);
        w.on_message(16 * MIB, false);
        assert!(!w.change_due());
        w.on_message(17 * MIB, false);
        assert_eq!(w.target(), 3);
    }
}
