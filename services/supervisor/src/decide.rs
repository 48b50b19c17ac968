//! The scaling decision, pure: from the replica count and the measured load,
//! the count to go to and why. Up at once; down only once the wanted count
//! stayed lower for a whole cooldown, to the highest count wanted meanwhile.

use std::time::{Duration, Instant};

/// The fewest and most replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// `minReplicas`.
    pub min: u32,
    /// `maxReplicas`.
    pub max: u32,
}

/// What the replicas aim for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    /// Jobs waiting or running per replica.
    pub backlog_per_replica: u64,
    /// Average CPU use of a replica, in percent of its basis.
    pub cpu_percent: Option<u32>,
    /// Average memory use of a replica, in percent of its basis.
    pub memory_percent: Option<u32>,
}

/// The load measured at one poll.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Load {
    /// `num_pending + num_ack_pending` over the pool's consumers.
    pub backlog: u64,
    /// Average CPU use of the replicas in percent, once measured.
    pub cpu_percent: Option<f64>,
    /// Average memory use of the replicas in percent, once measured.
    pub memory_percent: Option<f64>,
}

/// A change of the replica count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Replicas before.
    pub from: u32,
    /// Replicas after.
    pub to: u32,
    /// Why, e.g. `backlog 120 > 6×5`.
    pub why: String,
}

/// The time since when fewer replicas were wanted, and the most wanted since.
#[derive(Debug, Clone, Copy)]
struct Lower {
    since: Instant,
    highest: u32,
}

/// Decides the replica count of one pool, poll after poll.
#[derive(Debug, Clone)]
pub struct Scaler {
    bounds: Bounds,
    targets: Targets,
    cooldown: Duration,
    lower: Option<Lower>,
}

impl Scaler {
    /// A scaler within `bounds` aiming at `targets`, scaling down after `cooldown`.
    pub fn new(bounds: Bounds, targets: Targets, cooldown: Duration) -> Self {
        let targets = Targets {
            backlog_per_replica: targets.backlog_per_replica.max(1),
            ..targets
        };
        Self {
            bounds,
            targets,
            cooldown,
            lower: None,
        }
    }

    /// The count to start with: `replicas`, within the bounds.
    pub fn initial(&self, replicas: u32) -> u32 {
        self.clamp(u64::from(replicas))
    }

    fn clamp(&self, wanted: u64) -> u32 {
        let wanted = u32::try_from(wanted).unwrap_or(u32::MAX);
        wanted.clamp(self.bounds.min, self.bounds.max)
    }

    /// Replicas wanted for `load` with `current` replicas, within the bounds,
    /// and the reason of the largest wish.
    pub fn wanted(&self, current: u32, load: &Load) -> (u32, String) {
        let per = self.targets.backlog_per_replica;
        let mut best = (
            load.backlog.div_ceil(per),
            format!("backlog {} > {current}×{per}", load.backlog),
        );
        for (what, used, target) in [
            ("cpu", load.cpu_percent, self.targets.cpu_percent),
            ("memory", load.memory_percent, self.targets.memory_percent),
        ] {
            let (Some(used), Some(target)) = (used, target) else {
                continue;
            };
            if target == 0 || current == 0 {
                continue;
            }
            // As the Kubernetes HPA: replicas × use / target, rounded up.
            let wish = (f64::from(current) * used / f64::from(target)).ceil() as u64;
            if wish > best.0 {
                best = (wish, format!("{what} {used:.0}% > {target}%"));
            }
        }
        let clamped = self.clamp(best.0);
        if u64::from(clamped) > best.0 {
            best.1 = format!("minReplicas {}", self.bounds.min);
        }
        (clamped, best.1)
    }

    /// Why `to` replicas are enough for `load`.
    fn why_fewer(&self, to: u32, load: &Load) -> String {
        let per = self.targets.backlog_per_replica;
        let mut parts = vec![format!("backlog {} ≤ {to}×{per}", load.backlog)];
        for (what, used, target) in [
            ("cpu", load.cpu_percent, self.targets.cpu_percent),
            ("memory", load.memory_percent, self.targets.memory_percent),
        ] {
            if let (Some(used), Some(target)) = (used, target) {
                parts.push(format!("{what} {used:.0}% ≤ {target}%"));
            }
        }
        if to == self.bounds.min {
            parts.push(format!("minReplicas {}", self.bounds.min));
        }
        parts.join(", ")
    }

    /// The decision at `now` for `current` replicas under `load`, if any.
    pub fn decide(&mut self, current: u32, load: &Load, now: Instant) -> Option<Decision> {
        let (wanted, why) = self.wanted(current, load);
        if wanted >= current {
            self.lower = None;
            return (wanted > current).then_some(Decision {
                from: current,
                to: wanted,
                why,
            });
        }
        let lower = self.lower.get_or_insert(Lower {
            since: now,
            highest: wanted,
        });
        lower.highest = lower.highest.max(wanted);
        if now.saturating_duration_since(lower.since) < self.cooldown {
            return None;
        }
        let to = lower.highest;
        self.lower = None;
        let cooldown = shoal_protocol::Duration(self.cooldown);
        Some(Decision {
            from: current,
            to,
            why: format!(
                "{} for {cooldown}: cooldown passed",
                self.why_fewer(to, load)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaler(cooldown: u64) -> Scaler {
        Scaler::new(
            Bounds { min: 1, max: 6 },
            Targets {
                backlog_per_replica: 5,
                cpu_percent: Some(80),
                memory_percent: Some(75),
            },
            Duration::from_secs(cooldown),
        )
    }

    fn backlog(jobs: u64) -> Load {
        Load {
            backlog: jobs,
            ..Load::default()
        }
    }

    #[test]
    fn a_backlog_scales_up_at_once_and_is_clamped_to_the_maximum() {
        let mut scaler = scaler(30);
        let decision = scaler
            .decide(1, &backlog(120), Instant::now())
            .expect("a decision");
        assert_eq!((decision.from, decision.to), (1, 6));
        assert_eq!(decision.why, "backlog 120 > 1×5");
        let decision = scaler
            .decide(2, &backlog(11), Instant::now())
            .expect("a decision");
        assert_eq!(decision.to, 3);
        assert_eq!(scaler.decide(6, &backlog(500), Instant::now()), None);
    }

    #[test]
    fn scale_down_waits_for_the_cooldown_and_goes_to_the_most_wanted_meanwhile() {
        let mut scaler = scaler(30);
        let start = Instant::now();
        assert_eq!(scaler.decide(6, &backlog(0), start), None);
        assert_eq!(
            scaler.decide(6, &backlog(12), start + Duration::from_secs(10)),
            None
        );
        assert_eq!(
            scaler.decide(6, &backlog(0), start + Duration::from_secs(29)),
            None
        );
        let decision = scaler
            .decide(6, &backlog(0), start + Duration::from_secs(30))
            .expect("cooldown passed");
        assert_eq!((decision.from, decision.to), (6, 3));
        assert!(
            decision.why.ends_with("for 30s: cooldown passed"),
            "{}",
            decision.why
        );
    }

    #[test]
    fn a_wish_as_high_as_the_count_restarts_the_cooldown() {
        let mut scaler = scaler(30);
        let start = Instant::now();
        assert_eq!(scaler.decide(4, &backlog(0), start), None);
        assert_eq!(
            scaler.decide(4, &backlog(20), start + Duration::from_secs(20)),
            None
        );
        assert_eq!(
            scaler.decide(4, &backlog(0), start + Duration::from_secs(40)),
            None
        );
        let decision = scaler
            .decide(4, &backlog(0), start + Duration::from_secs(70))
            .expect("cooldown passed");
        assert_eq!(decision.to, 1);
        assert!(decision.why.contains("minReplicas 1"), "{}", decision.why);
    }

    #[test]
    fn the_count_stays_within_the_minimum_and_maximum() {
        let mut scaler = Scaler::new(
            Bounds { min: 2, max: 4 },
            Targets {
                backlog_per_replica: 5,
                cpu_percent: None,
                memory_percent: None,
            },
            Duration::ZERO,
        );
        assert_eq!(scaler.initial(1), 2);
        assert_eq!(scaler.initial(9), 4);
        let up = scaler
            .decide(1, &backlog(0), Instant::now())
            .expect("below the minimum");
        assert_eq!((up.to, up.why.as_str()), (2, "minReplicas 2"));
        assert_eq!(scaler.decide(4, &backlog(1000), Instant::now()), None);
        assert_eq!(scaler.decide(2, &backlog(0), Instant::now()), None);
    }

    #[test]
    fn cpu_or_memory_above_target_scales_up_in_proportion() {
        let mut scaler = scaler(30);
        let hot = Load {
            backlog: 0,
            cpu_percent: Some(93.0),
            memory_percent: Some(10.0),
        };
        let decision = scaler.decide(2, &hot, Instant::now()).expect("cpu");
        assert_eq!((decision.to, decision.why.as_str()), (3, "cpu 93% > 80%"));
        let full = Load {
            backlog: 0,
            cpu_percent: Some(10.0),
            memory_percent: Some(150.0),
        };
        let decision = scaler.decide(2, &full, Instant::now()).expect("memory");
        assert_eq!(
            (decision.to, decision.why.as_str()),
            (4, "memory 150% > 75%")
        );
    }

    #[test]
    fn cpu_near_its_target_holds_the_replicas_and_low_cpu_lets_them_go() {
        let mut scaler = scaler(0);
        let busy = Load {
            backlog: 0,
            cpu_percent: Some(70.0),
            memory_percent: None,
        };
        assert_eq!(scaler.decide(3, &busy, Instant::now()), None);
        let calm = Load {
            backlog: 0,
            cpu_percent: Some(20.0),
            memory_percent: None,
        };
        let decision = scaler.decide(3, &calm, Instant::now()).expect("down");
        assert_eq!(decision.to, 1);
        assert!(decision.why.contains("cpu 20% ≤ 80%"), "{}", decision.why);
    }
}
