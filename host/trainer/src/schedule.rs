//! Learning-rate schedules with linear warm-up, as `transformers.get_scheduler` defines them.

use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// Shape of the learning rate after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Constant after warm-up.
    Constant,
    /// Linear decay to 0 at the last step.
    Linear,
    /// Half-cosine decay to 0 at the last step.
    Cosine,
}

impl std::str::FromStr for ScheduleKind {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "constant" => Ok(Self::Constant),
            "linear" => Ok(Self::Linear),
            "cosine" => Ok(Self::Cosine),
            other => Err(TrainError::Config(format!(
                "unknown schedule `{other}` (expected constant, linear or cosine)"
            ))),
        }
    }
}

/// Learning rate as a function of the optimiser step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Decay shape.
    pub kind: ScheduleKind,
    /// Peak learning rate.
    pub peak: f64,
    /// Linear warm-up steps (from 0 to the peak).
    pub warmup_steps: u64,
    /// Total optimiser steps of the run.
    pub total_steps: u64,
}

impl Schedule {
    /// Learning rate of the optimiser step with 0-based index `step` (the HF Trainer convention:
    /// the scheduler is evaluated at the number of steps already taken, so with warm-up the
    /// first step has lr 0).
    pub fn lr(&self, step: u64) -> f64 {
        let step = step as f64;
        let warmup = self.warmup_steps as f64;
        if step < warmup {
            return self.peak * step / warmup.max(1.0);
        }
        let span = (self.total_steps as f64 - warmup).max(1.0);
        let progress = ((step - warmup) / span).clamp(0.0, 1.0);
        let factor = match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Linear => 1.0 - progress,
            ScheduleKind::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        };
        self.peak * factor.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_matches_transformers() {
        let s = Schedule {
            kind: ScheduleKind::Cosine,
            peak: 1.0,
            warmup_steps: 2,
            total_steps: 10,
        };
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(1) - 0.5).abs() < 1e-12);
        assert!((s.lr(2) - 1.0).abs() < 1e-12);
        assert!((s.lr(6) - 0.5).abs() < 1e-12);
        assert!(s.lr(10).abs() < 1e-12);
    }

    #[test]
    fn linear_decays_to_zero() {
        let s = Schedule {
            kind: ScheduleKind::Linear,
            peak: 2.0,
            warmup_steps: 0,
            total_steps: 4,
        };
        assert!((s.lr(0) - 2.0).abs() < 1e-12);
        assert!((s.lr(2) - 1.0).abs() < 1e-12);
        assert!((s.lr(3) - 0.5).abs() < 1e-12);
    }
}
