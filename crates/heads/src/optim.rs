//! Keras' optimizers, with its update rules and defaults (TF-Keras 2.15; see `--help` for the
//! one deliberate difference: Adadelta's learning rate is 1.0 as in the Keras the tutorial used).

use serde::{Deserialize, Serialize};

/// An update rule and its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum Rule {
    Sgd { momentum: f32, nesterov: bool },
    Rmsprop { rho: f32, epsilon: f32 },
    Adam { beta_1: f32, beta_2: f32, epsilon: f32 },
    Adadelta { rho: f32, epsilon: f32 },
}

/// What `--optimizer` configures: a rule, its learning rate and Keras' inverse-time decay
/// `lr / (1 + decay · step)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    pub rule: Rule,
    pub learning_rate: f32,
    pub decay: f32,
}

impl OptimizerConfig {
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

    /// One update of every parameter tensor from its gradient.
    pub fn step(&mut self, params: &mut [&mut [f32]], grads: &[&[f32]]) {
        let lr = self.config.learning_rate / (1.0 + self.config.decay * self.iterations as f32);
        self.iterations += 1;
        let t = self.iterations as i32;
        for ((p, g), [a, b]) in params.iter_mut().zip(grads).zip(&mut self.slots) {
            debug_assert!(p.len() == g.len() && g.len() == a.len());
            match self.config.rule {
                Rule::Sgd { momentum, nesterov } => {
                    for i in 0..p.len() {
                        if momentum == 0.0 {
                            p[i] -= lr * g[i];
                            continue;
                        }
                        a[i] = momentum * a[i] - lr * g[i];
                        p[i] += if nesterov { momentum * a[i] - lr * g[i] } else { a[i] };
                    }
                }
                Rule::Rmsprop { rho, epsilon } => {
                    for i in 0..p.len() {
                        a[i] = rho * a[i] + (1.0 - rho) * g[i] * g[i];
                        p[i] -= lr * g[i] / (a[i] + epsilon).sqrt();
                    }
                }
                Rule::Adam { beta_1, beta_2, epsilon } => {
                    let alpha = lr * (1.0 - beta_2.powi(t)).sqrt() / (1.0 - beta_1.powi(t));
                    for i in 0..p.len() {
                        a[i] += (g[i] - a[i]) * (1.0 - beta_1);
                        b[i] += (g[i] * g[i] - b[i]) * (1.0 - beta_2);
                        p[i] -= alpha * a[i] / (b[i].sqrt() + epsilon);
                    }
                }
                Rule::Adadelta { rho, epsilon } => {
                    for i in 0..p.len() {
                        a[i] = rho * a[i] + (1.0 - rho) * g[i] * g[i];
                        let delta = (b[i] + epsilon).sqrt() / (a[i] + epsilon).sqrt() * g[i];
                        b[i] = rho * b[i] + (1.0 - rho) * delta * delta;
                        p[i] -= lr * delta;
                    }
                }
            }
        }
    }
}
