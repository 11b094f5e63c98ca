//! Byte-aware flow control of the AMQP consumer: how many messages the broker may deliver before
//! the gateway acknowledges some (the consumer's prefetch, its *window*).
//!
//! RabbitMQ counts a prefetch in messages only (`prefetch_size` is not implemented), and a
//! consumer's prefetch is fixed when it starts consuming: a later `basic.qos` with
//! `global = false` applies to consumers started afterwards, and the channel-wide `global = true`
//! variant is deprecated, refused by quorum queues and denied by default since RabbitMQ 4.3. So
//! the window is chosen here from the sizes of the messages seen, and a new window is applied by
//! cancelling the consumer, settling what it delivered, and consuming again (see
//! [`super::AmqpConsumer`]).
//!
//! The rule: the first window assumes messages as large as RabbitMQ's own default limit
//! ([`ASSUMED_LARGEST_MESSAGE`]) or `max_message_bytes` if larger; after a batch that filled
//! the window it doubles, as long as the doubled window times the batch's largest message
//! stays within `max_inflight_bytes`, up to `prefetch`; a message too large for the window
//! shrinks it at once to what fits (at least one message).

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
    /// The largest message delivered since the last batch was taken, bytes.
    largest: usize,
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
        let first = fitting(max_inflight_bytes, ASSUMED_LARGEST_MESSAGE.max(max_message_bytes)).min(prefetch);
        Window {
            prefetch,
            max_inflight_bytes,
            current: first,
            target: first,
            largest: 0,
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

    /// Whether the consumer should be restarted with [`Window::target`].
    pub fn change_due(&self) -> bool {
        self.target != self.current
    }

    /// A message of `size` bytes was delivered. When the window times its size exceeds
    /// `max_inflight_bytes`, the target shrinks at once to what fits (at least one message).
    pub fn on_message(&mut self, size: usize) {
        self.largest = self.largest.max(size);
        let fits = fitting(self.max_inflight_bytes, size);
        if fits < self.target {
            self.target = fits;
        }
    }

    /// A batch was taken; `full`: every message the window allows was delivered and not yet
    /// acknowledged, so the window held the consumer back. Then the target doubles, when the
    /// doubled window of messages as large as the batch's largest still fits (or grows to what
    /// fits).
    pub fn on_batch(&mut self, full: bool) {
        let largest = std::mem::take(&mut self.largest);
        if self.change_due() || !full || self.current >= self.prefetch {
            return;
        }
        let doubled = self.current.saturating_mul(2).min(self.prefetch);
        let next = doubled.min(fitting(self.max_inflight_bytes, largest));
        if next > self.current {
            self.target = next;
        }
    }

    /// A new consumer starts with the target window: returns it.
    pub fn restart(&mut self) -> u16 {
        self.current = self.target;
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;
    const KIB: usize = 1 << 10;

    /// Grow a window on batches of `size`-byte messages that fill it, restarting at each change,
    /// until it stops changing: the windows it went through.
    fn ramp(w: &mut Window, size: usize) -> Vec<u16> {
        let mut seen = vec![w.current()];
        for _ in 0..64 {
            w.on_message(size);
            w.on_batch(true);
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
        w.on_message(5 * KIB);
        w.on_batch(true);
        assert!(!w.change_due(), "prefetch is the ceiling");
    }

    #[test]
    fn growth_stops_where_the_doubled_window_of_the_largest_message_would_not_fit() {
        let mut w = Window::new(2000, 64 * MIB, MIB);
        // 4 × 1 MiB fits; 8, 16, 32 and 64 too; 128 × 1 MiB would not.
        assert_eq!(ramp(&mut w, MIB), [4, 8, 16, 32, 64]);
        // Messages of 300 KiB: 64 → 128 would be 37.5 MiB, fits; 256 × 300 KiB = 75 MiB does
        // not, but 218 of them do: the window goes to what fits.
        assert_eq!(ramp(&mut w, 300 * KIB), [64, 128, 218]);
    }

    #[test]
    fn a_window_that_did_not_fill_does_not_grow() {
        let mut w = Window::new(2000, 64 * MIB, MIB);
        w.on_message(KIB);
        w.on_batch(false);
        assert!(!w.change_due());
        assert_eq!(w.current(), 4);
    }

    #[test]
    fn a_large_message_shrinks_the_window_at_once_to_what_fits() {
        let mut w = Window::new(2000, 64 * MIB, MIB);
        ramp(&mut w, 2 * KIB);
        assert_eq!(w.current(), 2000);
        w.on_message(15 * MIB);
        assert!(w.change_due(), "no need to wait for the end of the batch");
        assert_eq!(w.target(), 4, "64 MiB / 15 MiB");
        w.on_message(100 * MIB);
        assert_eq!(w.target(), 1, "never below one message");
        w.on_batch(true);
        assert_eq!(w.target(), 1, "a batch end does not undo a shrink");
        assert_eq!(w.restart(), 1);
    }

    #[test]
    fn after_a_shrink_the_window_grows_back_only_on_small_messages() {
        let mut w = Window::new(2000, 64 * MIB, MIB);
        w.on_message(15 * MIB);
        w.on_batch(true);
        assert!(!w.change_due(), "4 × 15 MiB fits, 8 × 15 MiB does not");
        assert_eq!(ramp(&mut w, 15 * MIB), [4]);
        assert_eq!(ramp(&mut w, KIB), [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2000]);
    }

    #[test]
    fn a_message_that_fits_the_target_changes_nothing() {
        let mut w = Window::new(2000, 64 * MIB, MIB);
        w.on_message(16 * MIB);
        assert!(!w.change_due());
        w.on_message(17 * MIB);
        assert_eq!(w.target(), 3);
    }
}
