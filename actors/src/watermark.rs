//! The watermark valve: one subtask's event time from its input channels.
//!
//! Each input channel reports watermarks (event time reached `t`), idleness
//! (its sender has nothing to say for now) and its end. The subtask's watermark
//! is the minimum over the channels that are active or ended (an ended channel
//! counts as the maximum watermark), and it only ever moves forward. When every
//! channel that has not ended is idle, the subtask is idle too, and says so
//! downstream, so that an idle source does not hold back event time.
//!
//! ```
//! use weir_actors::watermark::WatermarkValve;
//! let mut valve = WatermarkValve::new(2);
//! assert_eq!(valve.on_watermark(0, 10), None); // channel 1 is still at the minimum
//! assert_eq!(valve.on_watermark(1, 7), Some(7));
//! assert_eq!(valve.on_idle(1, true), (Some(10), None)); // the idle channel no longer counts
//! // Channel 0 ends (the maximum watermark) and all that is left is idle:
//! assert_eq!(valve.on_end(0), (Some(i64::MAX), Some(true)));
//! ```

#[derive(Clone, Copy, Debug)]
struct ChannelTime {
    watermark: i64,
    idle: bool,
    ended: bool,
}

/// Combines the event time of several input channels.
#[derive(Clone, Debug)]
pub struct WatermarkValve {
    channels: Vec<ChannelTime>,
    watermark: i64,
    idle: bool,
}

impl Default for WatermarkValve {
    fn default() -> Self {
        WatermarkValve::new(0)
    }
}

impl WatermarkValve {
    /// A valve over `channels` channels, all active at the minimum watermark.
    pub fn new(channels: usize) -> Self {
        WatermarkValve {
            channels: vec![
                ChannelTime {
                    watermark: i64::MIN,
                    idle: false,
                    ended: false
                };
                channels
            ],
            watermark: i64::MIN,
            idle: false,
        }
    }

    /// The last watermark the valve let through (`i64::MIN` before the first).
    pub fn current(&self) -> i64 {
        self.watermark
    }

    fn advance(&mut self) -> Option<i64> {
        let min = self
            .channels
            .iter()
            .filter(|c| !c.idle || c.ended)
            .map(|c| c.watermark)
            .min()?;
        if min > self.watermark {
            self.watermark = min;
            Some(min)
        } else {
            None
        }
    }

    fn idle_change(&mut self) -> Option<bool> {
        let open = self.channels.iter().filter(|c| !c.ended);
        let all_idle = open.clone().count() > 0 && open.clone().all(|c| c.idle);
        let change = (all_idle != self.idle).then_some(all_idle);
        self.idle = all_idle;
        change
    }

    /// Channel `channel` reached `watermark`; returns the valve's new watermark if it advanced.
    pub fn on_watermark(&mut self, channel: usize, watermark: i64) -> Option<i64> {
        let ch = &mut self.channels[channel];
        ch.watermark = ch.watermark.max(watermark);
        self.advance()
    }

    /// Channel `channel` went idle or active; returns the new watermark if it
    /// advanced and the valve's idleness if it changed.
    pub fn on_idle(&mut self, channel: usize, idle: bool) -> (Option<i64>, Option<bool>) {
        self.channels[channel].idle = idle;
        (self.advance(), self.idle_change())
    }

    /// Channel `channel` ended; returns the new watermark if it advanced and the
    /// valve's idleness if it changed.
    pub fn on_end(&mut self, channel: usize) -> (Option<i64>, Option<bool>) {
        let ch = &mut self.channels[channel];
        ch.ended = true;
        ch.watermark = i64::MAX;
        (self.advance(), self.idle_change())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_over_channels_moves_forward_only() {
        let mut v = WatermarkValve::new(3);
        assert_eq!(v.on_watermark(0, 5), None);
        assert_eq!(v.on_watermark(1, 3), None);
        assert_eq!(v.on_watermark(2, 4), Some(3));
        assert_eq!(
            v.on_watermark(1, 1),
            None,
            "a channel going back changes nothing"
        );
        assert_eq!(v.on_watermark(1, 9), Some(4));
        assert_eq!(v.current(), 4);
    }

    #[test]
    fn idle_channels_do_not_hold_back_event_time() {
        let mut v = WatermarkValve::new(2);
        v.on_watermark(0, 100);
        assert_eq!(v.on_idle(1, true), (Some(100), None));
        assert_eq!(v.on_watermark(0, 200), Some(200));
        // Reactivated behind the current watermark: no regression.
        assert_eq!(v.on_idle(1, false), (None, None));
        assert_eq!(v.on_watermark(0, 300), None);
        assert_eq!(v.on_watermark(1, 250), Some(250));
    }

    #[test]
    fn all_idle_makes_the_valve_idle_and_activity_wakes_it() {
        let mut v = WatermarkValve::new(2);
        assert_eq!(v.on_idle(0, true).1, None);
        assert_eq!(v.on_idle(1, true), (None, Some(true)));
        assert_eq!(v.on_idle(0, false).1, Some(false));
    }

    #[test]
    fn end_of_every_channel_is_the_maximum_watermark() {
        let mut v = WatermarkValve::new(2);
        v.on_watermark(0, 10);
        v.on_watermark(1, 20);
        assert_eq!(v.on_end(0), (Some(20), None));
        assert_eq!(v.on_end(1), (Some(i64::MAX), None));
    }
}
