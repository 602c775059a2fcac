//! Keras' optimizers, with its update rules and defaults (TF-Keras 2.15; see `--help` for the
//! one deliberate difference: Adadelta's learning rate is 1.0 as in the Keras the tutorial used).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// An update rule and its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum Rule {
    /// Stochastic gradient descent.
    Sgd {
        /// Momentum (0: none).
        momentum: f32,
        /// Nesterov's look-ahead momentum.
        nesterov: bool,
    },
    /// RMSprop.
    Rmsprop {
        /// Decay of the squared-gradient average.
        rho: f32,
        /// Added to the denominator.
        epsilon: f32,
    },
    /// Adam.
    Adam {
        /// Decay of the gradient average.
        beta_1: f32,
        /// Decay of the squared-gradient average.
        beta_2: f32,
        /// Added to the denominator.
        epsilon: f32,
    },
    /// Adadelta.
    Adadelta {
        /// Decay of both running averages.
        rho: f32,
        /// Added inside both square roots.
        epsilon: f32,
    },
}

/// What `--optimizer` configures: a rule, its learning rate and Keras' inverse-time decay
/// `lr / (1 + decay · step)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// How each step updates the weights.
    pub rule: Rule,
    /// The learning rate before decay.
    pub learning_rate: f32,
    /// Keras' inverse-time decay per step.
    pub decay: f32,
}

impl std::str::FromStr for OptimizerConfig {
    type Err = String;

    /// The optimizer Keras builds from its name, with Keras' defaults.
    fn from_str(s: &str) -> Result<OptimizerConfig, String> {
        OptimizerConfig::keras_default(s)
            .ok_or_else(|| format!("`{s}`: expected {}", OptimizerConfig::NAMES.join(", ")))
    }
}

impl std::fmt::Display for OptimizerConfig {
    /// The rule's Keras name (`sgd`, `rmsprop`, `adam`, `adadelta`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.rule {
            Rule::Sgd { .. } => "sgd",
            Rule::Rmsprop { .. } => "rmsprop",
            Rule::Adam { .. } => "adam",
            Rule::Adadelta { .. } => "adadelta",
        })
    }
}

impl OptimizerConfig {
    /// Refuses a learning rate, decay or momentum outside [`imgclf_dataset::limits`].
    pub fn check(&self) -> Result<(), crate::HeadError> {
        use imgclf_dataset::limits::{DECAY, LEARNING_RATE, MOMENTUM};
        let momentum = match self.rule {
            Rule::Sgd { momentum, .. } => momentum,
            _ => 0.0,
        };
        LEARNING_RATE.check_f32(self.learning_rate).map_err(crate::HeadError::Config)?;
        DECAY.check_f32(self.decay).map_err(crate::HeadError::Config)?;
        MOMENTUM.check_f32(momentum).map_err(crate::HeadError::Config)?;
        Ok(())
    }

    /// Sets SGD's momentum (and Nesterov's variant); refused for the other rules, which have
    /// none.
    pub fn set_momentum(&mut self, momentum: f32, nesterov: bool) -> Result<(), crate::HeadError> {
        match &mut self.rule {
            Rule::Sgd { momentum: m, nesterov: n } => {
                (*m, *n) = (momentum, nesterov);
                Ok(())
            }
            _ => Err(crate::HeadError::Config(format!(
                "`momentum` and `nesterov` apply to `optimizer` sgd only, not {self}"
            ))),
        }
    }

    /// The names [`OptimizerConfig::keras_default`] knows.
    pub const NAMES: [&str; 4] = ["sgd", "rmsprop", "adam", "adadelta"];

    /// The optimizer Keras builds from its name (`optimizer='adam'`).
    pub fn keras_default(name: &str) -> Option<OptimizerConfig> {
        let eps = 1e-7;
        let (rule, learning_rate) = match name.to_ascii_lowercase().as_str() {
            "sgd" => (Rule::Sgd { momentum: 0.0, nesterov: false }, 0.01),
            "rmsprop" => (Rule::Rmsprop { rho: 0.9, epsilon: eps }, 0.001),
            "adam" => (Rule::Adam { beta_1: 0.9, beta_2: 0.999, epsilon: eps }, 0.001),
            "adadelta" => (Rule::Adadelta { rho: 0.95, epsilon: eps }, 1.0),
            _ => return None,
        };
        Some(OptimizerConfig { rule, learning_rate, decay: 0.0 })
    }
}

/// An optimizer's state over a fixed list of parameter tensors, seen as flat slices.
#[derive(Debug, Clone)]
pub struct Optimizer {
    /// The rule and its rates.
    pub config: OptimizerConfig,
    /// Steps taken so far.
    pub iterations: u64,
    /// Two accumulators per parameter tensor (velocity, second moment...), as the rule needs.
    slots: Vec<[Vec<f32>; 2]>,
}

impl Optimizer {
    /// State for parameter tensors of the given sizes.
    pub fn new(config: OptimizerConfig, sizes: &[usize]) -> Optimizer {
        let slots = sizes.iter().map(|&n| [vec![0.0; n], vec![0.0; n]]).collect();
        Optimizer { config, iterations: 0, slots }
    }

    /// The accumulators, per parameter tensor: what a checkpoint saves.
    pub fn slots(&self) -> &[[Vec<f32>; 2]] {
        &self.slots
    }

    /// An optimizer continued from a checkpoint: `iterations` steps taken, accumulators `slots`.
    pub fn resume(config: OptimizerConfig, iterations: u64, slots: Vec<[Vec<f32>; 2]>) -> Optimizer {
        Optimizer { config, iterations, slots }
    }

    /// One update of every parameter tensor from its gradient. Elementwise, so large tensors
    /// are updated in parallel chunks with the same result on any number of threads.
    pub fn step(&mut self, params: &mut [&mut [f32]], grads: &[&[f32]]) {
        let rates = self.begin_step();
        for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            self.update(rates, i, p, g);
        }
    }

    /// Starts a step: the rates that every tensor's [`Optimizer::update`] of this step uses.
    /// [`Optimizer::step`] is `begin_step` then `update` for each tensor in order; callers
    /// that hold parameters elsewhere (in a tensor library's storage) update them in place.
    pub fn begin_step(&mut self) -> StepRates {
        let learning_rate = self.config.learning_rate / (1.0 + self.config.decay * self.iterations as f32);
        self.iterations += 1;
        StepRates { learning_rate, t: self.iterations as i32 }
    }

    /// Updates parameter tensor `i` (in the order of the sizes given to [`Optimizer::new`])
    /// from its gradient, within the step `rates` began.
    pub fn update(&mut self, rates: StepRates, i: usize, p: &mut [f32], g: &[f32]) {
        let [a, b] = &mut self.slots[i];
        assert!(p.len() == g.len() && g.len() == a.len(), "parameter and gradient sizes differ");
        const CHUNK: usize = 1 << 14;
        let rule = self.config.rule;
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(a.par_chunks_mut(CHUNK).zip(b.par_chunks_mut(CHUNK)))
            .for_each(|((p, g), (a, b))| update(rule, rates.learning_rate, rates.t, p, g, a, b));
    }
}

/// The learning rate and step number (from 1) of one optimizer step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRates {
    /// After the decay.
    pub learning_rate: f32,
    /// Steps taken, this one included.
    pub t: i32,
}

/// The update rule on one chunk of a tensor, its gradient and its two accumulators.
fn update(rule: Rule, lr: f32, t: i32, p: &mut [f32], g: &[f32], a: &mut [f32], b: &mut [f32]) {
    let each = p.iter_mut().zip(g).zip(a.iter_mut().zip(b.iter_mut()));
    match rule {
        Rule::Sgd { momentum, nesterov } if momentum == 0.0 && !nesterov => {
            each.for_each(|((p, g), _)| *p -= lr * g);
        }
        Rule::Sgd { momentum, nesterov } => each.for_each(|((p, g), (v, _))| {
            *v = momentum * *v - lr * g;
            *p += if nesterov { momentum * *v - lr * g } else { *v };
        }),
        Rule::Rmsprop { rho, epsilon } => each.for_each(|((p, g), (v, _))| {
            *v = rho * *v + (1.0 - rho) * g * g;
            *p -= lr * g / (*v + epsilon).sqrt();
        }),
        Rule::Adam { beta_1, beta_2, epsilon } => {
            let alpha = lr * (1.0 - beta_2.powi(t)).sqrt() / (1.0 - beta_1.powi(t));
            each.for_each(|((p, g), (m, v))| {
                *m += (g - *m) * (1.0 - beta_1);
                *v += (g * g - *v) * (1.0 - beta_2);
                *p -= alpha * *m / (v.sqrt() + epsilon);
            });
        }
        Rule::Adadelta { rho, epsilon } => each.for_each(|((p, g), (acc_g, acc_d))| {
            *acc_g = rho * *acc_g + (1.0 - rho) * g * g;
            let delta = (*acc_d + epsilon).sqrt() / (*acc_g + epsilon).sqrt() * g;
            *acc_d = rho * *acc_d + (1.0 - rho) * delta * delta;
            *p -= lr * delta;
        }),
    }
}
