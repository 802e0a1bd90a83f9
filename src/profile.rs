//! Where a training step's time goes: data gathering, forward, backward,
//! optimizer, and host waits.
//!
//! Off unless [`enable`] is called (`wgtrain train --profile`, `wgtrain bench
//! --profile`); then the model and training loop mark phase boundaries with
//! [`phase`], and the host's wall time between marks is charged to the phase
//! being left. On the CPU device that is the compute time. On the GPU the
//! host only records commands, so the GPU device also charges each dispatch's
//! execution time, measured with timestamp queries, to the phase current when
//! it was recorded ([`record_device_time`]); adapters without timestamp
//! queries are timed by waiting after every dispatch instead.
//!
//! The profiler is process-wide: one training run at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The parts of a training step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Gathering the minibatch on the device.
    Data,
    /// The model's forward pass, input to logits.
    Forward,
    /// The loss and its gradient.
    Loss,
    /// Backpropagation through the layers.
    Backward,
    /// The optimizer's parameter updates.
    Optimizer,
    /// The host blocked on the device (loss read-back, downloads).
    HostWait,
    /// Time not charged to another phase (before the first step, between steps).
    Other,
}

impl Phase {
    /// Every phase, in the order reports list them.
    pub const ALL: [Phase; 7] = [
        Phase::Data,
        Phase::Forward,
        Phase::Loss,
        Phase::Backward,
        Phase::Optimizer,
        Phase::HostWait,
        Phase::Other,
    ];

    /// The name printed in reports (`host wait`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Data => "data",
            Phase::Forward => "forward",
            Phase::Loss => "loss",
            Phase::Backward => "backward",
            Phase::Optimizer => "optimizer",
            Phase::HostWait => "host wait",
            Phase::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);

struct State {
    current: Phase,
    since: Instant,
    host: [f64; 7],
    device: [f64; 7],
    /// Device time per kernel entry point: (name, calls, seconds).
    kernels: Vec<(&'static str, u64, f64)>,
    /// How device time was measured, for the report.
    device_clock: Option<&'static str>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    if !is_enabled() {
        return None;
    }
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    guard.as_mut().map(f)
}

/// Starts (or restarts) profiling from zero.
pub fn enable() {
    *STATE.lock().unwrap_or_else(|e| e.into_inner()) = Some(State {
        current: Phase::Other,
        since: Instant::now(),
        host: [0.0; 7],
        device: [0.0; 7],
        kernels: Vec::new(),
        device_clock: None,
    });
    ENABLED.store(true, Ordering::Release);
}

/// Whether [`enable`] has been called, so phases and timings are recorded.
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// Enters `p`, charging the host time since the last mark to the phase left.
/// Returns the phase left, so a nested mark can restore it.
pub fn phase(p: Phase) -> Phase {
    with_state(|s| {
        let now = Instant::now();
        s.host[s.current.index()] += now.duration_since(s.since).as_secs_f64();
        s.since = now;
        std::mem::replace(&mut s.current, p)
    })
    .unwrap_or(Phase::Other)
}

/// The phase the host is in (the GPU labels dispatches with it).
pub fn current() -> Phase {
    with_state(|s| s.current).unwrap_or(Phase::Other)
}

/// Charges `seconds` of device execution of `kernel` to `phase`.
pub fn record_device_time(phase: Phase, kernel: &'static str, seconds: f64, clock: &'static str) {
    with_state(|s| {
        s.device[phase.index()] += seconds;
        s.device_clock = Some(clock);
        match s.kernels.iter_mut().find(|k| k.0 == kernel) {
            Some(k) => {
                k.1 += 1;
                k.2 += seconds;
            }
            None => s.kernels.push((kernel, 1, seconds)),
        }
    });
}

/// Totals so far.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Host wall time per phase, seconds.
    pub host: Vec<(Phase, f64)>,
    /// Device execution time per phase (GPU only), seconds.
    pub device: Vec<(Phase, f64)>,
    /// Device time per kernel, most expensive first: (entry, calls, seconds).
    pub kernels: Vec<(&'static str, u64, f64)>,
    /// How device time was measured (e.g. `timestamp queries`); `None` if none was.
    pub device_clock: Option<&'static str>,
}

/// Closes the current phase and returns the totals.
pub fn report() -> Report {
    phase(current());
    with_state(|s| {
        let mut kernels = s.kernels.clone();
        kernels.sort_by(|a, b| b.2.total_cmp(&a.2));
        Report {
            host: Phase::ALL.iter().map(|&p| (p, s.host[p.index()])).collect(),
            device: Phase::ALL
                .iter()
                .map(|&p| (p, s.device[p.index()]))
                .collect(),
            kernels,
            device_clock: s.device_clock,
        }
    })
    .unwrap_or_default()
}

impl Report {
    /// A table of milliseconds per step and shares, for `steps` steps.
    pub fn table(&self, steps: usize) -> String {
        let steps = steps.max(1) as f64;
        let host_total: f64 = self.host.iter().map(|p| p.1).sum();
        let dev_total: f64 = self.device.iter().map(|p| p.1).sum();
        let mut s = String::new();
        let has_device = dev_total > 0.0;
        s += &format!("{:<10} {:>14} {:>7}", "phase", "host ms/step", "share");
        if has_device {
            s += &format!(" {:>14} {:>7}", "device ms/step", "share");
        }
        s.push('\n');
        for (i, (p, h)) in self.host.iter().enumerate() {
            let d = self.device[i].1;
            if *h == 0.0 && d == 0.0 {
                continue;
            }
            s += &format!(
                "{:<10} {:>14.3} {:>6.1}%",
                p.name(),
                1e3 * h / steps,
                100.0 * h / host_total.max(1e-12)
            );
            if has_device {
                s += &format!(" {:>14.3} {:>6.1}%", 1e3 * d / steps, 100.0 * d / dev_total);
            }
            s.push('\n');
        }
        if has_device {
            // Per-step launch overhead is what small models pay for: the
            // count says how many launches a step makes (dispatches on the
            // GPU, operations on the CPU).
            let calls: u64 = self.kernels.iter().map(|k| k.1).sum();
            s += &format!(
                "{:.0} device operations per step (GPU: compute dispatches)\n",
                calls as f64 / steps
            );
            s += &format!(
                "device time measured with {}; busiest kernels (those over 0.5 % after the first 8):\n",
                self.device_clock.unwrap_or("?")
            );
            // Every kernel with a visible share, so a step's whole cost can
            // be read off (the busiest first).
            let visible = self
                .kernels
                .iter()
                .enumerate()
                .take_while(|(i, k)| *i < 8 || k.2 >= 0.005 * dev_total)
                .map(|(_, k)| k);
            for (name, calls, secs) in visible.take(24) {
                s += &format!(
                    "  {name:<24} {:>8.3} ms/step {:>6} calls/step {:>6.1}%\n",
                    1e3 * secs / steps,
                    (*calls as f64 / steps).round(),
                    100.0 * secs / dev_total
                );
            }
        }
        s
    }
}

/// Charges the wall time until it is dropped to `kernel` as device time in
/// the current phase: how the CPU device reports its operations (they run
/// synchronously, so wall time is execution time). Free when profiling is
/// off.
pub struct OpTimer {
    kernel: &'static str,
    start: Option<Instant>,
}

/// Starts an [`OpTimer`] for `kernel`; it records nothing when profiling is off.
pub fn op_timer(kernel: &'static str) -> OpTimer {
    OpTimer {
        kernel,
        start: is_enabled().then(Instant::now),
    }
}

impl Drop for OpTimer {
    fn drop(&mut self) {
        if let Some(t) = self.start {
            record_device_time(
                current(),
                self.kernel,
                t.elapsed().as_secs_f64(),
                "wall time per CPU operation",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_counts_operations_per_step() {
        let r = Report {
            host: vec![(Phase::Forward, 0.2)],
            device: vec![(Phase::Forward, 0.1)],
            kernels: vec![("matmul", 30, 0.06), ("activation", 10, 0.04)],
            device_clock: Some("timestamp queries"),
        };
        let t = r.table(10);
        assert!(t.contains("4 device operations per step"), "{t}");
        assert!(t.contains("3 calls/step"), "{t}");
    }
}
