//! What a user tells `train-head` (or Python's `train_head`): every setting optional, resolved
//! here, once for both, into the [`TrainConfig`] a run stores. Without a head named, the probe
//! (C chosen on validation where there is one); a mini-batch setting without a head names
//! the tutorial's head.

use crate::config::{ClassWeight, InverseL2, Lbfgs, Solver, TrainConfig};
use crate::head::{Architecture, HeadConfig};
use crate::optim::OptimizerConfig;
use crate::{HeadError, HeadInputs};

/// The head a user names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    /// Logistic regression by L-BFGS on standardised features (the default).
    Probe,
    /// The tutorial's head: Dropout → Dense, trained by mini-batches.
    Logistic,
    /// Dense(hidden, relu) → Dropout → Dense, trained by mini-batches.
    Mlp,
}

imgclf_dataset::named_enum!(HeadKind {
    HeadKind::Probe => "probe",
    HeadKind::Logistic => "logistic",
    HeadKind::Mlp => "mlp",
});

/// How the weights are fitted, as a user names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolverKind {
    /// Mini-batches and an optimizer.
    Sgd,
    /// L-BFGS to the penalised minimum (the probe).
    Lbfgs,
}

imgclf_dataset::named_enum!(SolverKind {
    SolverKind::Sgd => "sgd",
    SolverKind::Lbfgs => "lbfgs",
});

/// Every training setting, each optional (`None`: the default of the head it ends up with).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainOptions {
    /// The head (default: the probe; the tutorial's when a mini-batch setting is given).
    pub head: Option<HeadKind>,
    /// The solver (lbfgs for the probe, sgd for the others).
    pub solver: Option<SolverKind>,
    /// Units of the mlp head's hidden layer (256).
    pub hidden: Option<usize>,
    /// Dropout before the output layer (0.5).
    pub dropout: Option<f32>,
    /// L2 weight decay of the mini-batch heads (0).
    pub l2: Option<f32>,
    /// The optimizer with Keras' defaults (adadelta).
    pub optimizer: Option<OptimizerConfig>,
    /// Its learning rate (the optimizer's default).
    pub learning_rate: Option<f32>,
    /// Inverse-time learning-rate decay (0).
    pub decay: Option<f32>,
    /// SGD momentum (0).
    pub momentum: Option<f32>,
    /// Nesterov momentum (SGD).
    pub nesterov: bool,
    /// Epochs (8).
    pub epochs: Option<usize>,
    /// Rows per gradient step (128).
    pub batch_size: Option<usize>,
    /// Seed of initialisation, shuffling, dropout and the held-out rows.
    pub seed: u64,
    /// Standardise the features (always for the probe).
    pub standardize: bool,
    /// Share of train held out for validation.
    pub val_split: Option<f32>,
    /// Early-stopping patience in epochs.
    pub patience: Option<usize>,
    /// Loss weight per class.
    pub class_weight: Option<ClassWeight>,
    /// The probe's C (auto where there is validation, else 1).
    pub c: Option<InverseL2>,
    /// Refit the probe on train and validation.
    pub refit: bool,
    /// The probe's gradient tolerance (1e-4).
    pub tol: Option<f64>,
    /// The probe's iterations at most (1000).
    pub max_iter: Option<usize>,
}

/// [`TrainOptions`] resolved: the config, the head it names, and a note for the user when a
/// default was chosen for want of validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// What the run stores and trains by.
    pub config: TrainConfig,
    /// The head named or defaulted.
    pub head: HeadKind,
    /// Why a default was what it was (the probe's C without validation).
    pub note: Option<String>,
}

impl Resolved {
    /// The head in words: `the probe (... C chosen on validation)`, `mlp-256 by mini-batches`.
    pub fn describe(&self) -> String {
        match (self.head, &self.config.solver, self.config.head.architecture) {
            (_, Solver::Lbfgs(l), _) => format!(
                "the probe (logistic regression by L-BFGS on standardised features, C {})",
                if l.c == InverseL2::Auto { "chosen on validation".to_string() } else { format!("= {}", l.c) }
            ),
            (_, _, Architecture::Mlp { hidden }) => format!("mlp-{hidden} by mini-batches (`head` mlp)"),
            _ => "the tutorial's logistic head by mini-batches (`head` logistic)".into(),
        }
    }
}

impl TrainOptions {
    /// The mini-batch heads' settings given, by their names.
    fn minibatch_settings(&self) -> Vec<&'static str> {
        [
            ("`epochs`", self.epochs.is_some()),
            ("`batch_size`", self.batch_size.is_some()),
            ("`optimizer`", self.optimizer.is_some()),
            ("`learning_rate`", self.learning_rate.is_some()),
            ("`decay`", self.decay.is_some()),
            ("`momentum`", self.momentum.is_some() || self.nesterov),
            ("`dropout`", self.dropout.is_some()),
            ("`hidden`", self.hidden.is_some()),
            ("`l2`", self.l2.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    /// The head and solver named: the probe unless a head, the sgd solver or a mini-batch
    /// setting says otherwise.
    fn head_and_solver(&self) -> Result<(HeadKind, SolverKind), HeadError> {
        Ok(match (self.head, self.solver) {
            (None, None) if !self.minibatch_settings().is_empty() => (HeadKind::Logistic, SolverKind::Sgd),
            (None | Some(HeadKind::Probe), None | Some(SolverKind::Lbfgs)) => (HeadKind::Probe, SolverKind::Lbfgs),
            (Some(HeadKind::Probe), Some(SolverKind::Sgd)) => {
                return Err(HeadError::Config(
                    "`head` probe is fitted by lbfgs; the tutorial's head is `head` logistic".into(),
                ));
            }
            (None, Some(SolverKind::Sgd)) => (HeadKind::Logistic, SolverKind::Sgd),
            (Some(head), solver) => (head, solver.unwrap_or(SolverKind::Sgd)),
        })
    }

    /// The config these options name for training on `inputs`: validated when they have a
    /// labelled validation split or `val_split` holds part of train out.
    pub fn config_for(&self, inputs: &HeadInputs) -> Result<Resolved, HeadError> {
        self.config(self.val_split.is_some() || inputs.validation().is_some())
    }

    /// The config these options name, for features that have validation (`validated`: a
    /// labelled validation split or `val_split`) or not; settings that contradict each other
    /// are refused. The config's limits are checked when a plan is made from it.
    pub fn config(&self, validated: bool) -> Result<Resolved, HeadError> {
        let tutorial = TrainConfig::tutorial();
        let fail = |m: String| Err(HeadError::Config(m));
        let mut optimizer = self.optimizer.unwrap_or(tutorial.optimizer);
        if let Some(lr) = self.learning_rate {
            optimizer.learning_rate = lr;
        }
        optimizer.decay = self.decay.unwrap_or(0.0);
        if self.momentum.is_some() || self.nesterov {
            optimizer.set_momentum(self.momentum.unwrap_or(0.0), self.nesterov)?;
        }
        let (head, solver) = self.head_and_solver()?;
        if solver == SolverKind::Lbfgs && head != HeadKind::Mlp {
            if self.l2.is_some_and(|l2| l2 != 0.0) {
                return fail("`l2` is the SGD heads' penalty; the lbfgs probe's is `c` (scikit-learn's C)".into());
            }
            let given = self.minibatch_settings();
            if !given.is_empty() {
                return fail(format!(
                    "{} set the mini-batch heads; the probe has none: name `head` logistic (the tutorial's) or `head` \
                     mlp",
                    given.join(", ")
                ));
            }
        }
        if self.refit && solver == SolverKind::Sgd {
            return fail(format!("`refit` refits the probe; `head` {head} trains by mini-batches"));
        }
        let architecture = match head {
            HeadKind::Probe | HeadKind::Logistic => Architecture::Logistic,
            HeadKind::Mlp => Architecture::Mlp { hidden: self.hidden.unwrap_or(256) },
        };
        let mut note = None;
        let solver = match solver {
            SolverKind::Sgd => Solver::Sgd,
            SolverKind::Lbfgs => {
                let c = match (self.c, validated) {
                    (Some(c), _) => c,
                    (None, true) => InverseL2::Auto,
                    (None, false) => {
                        note = Some(
                            "no validation to choose C on: C = 1 (scikit-learn's default); `val_split` lets `c` auto \
                             choose it"
                                .into(),
                        );
                        InverseL2::Value(1.0)
                    }
                };
                let defaults = Lbfgs::default();
                Solver::Lbfgs(Lbfgs {
                    c,
                    tol: self.tol.unwrap_or(defaults.tol),
                    max_iter: self.max_iter.unwrap_or(defaults.max_iter),
                    refit: self.refit,
                })
            }
        };
        let lbfgs = matches!(solver, Solver::Lbfgs(_));
        let dropout = if lbfgs { 0.0 } else { self.dropout.unwrap_or(tutorial.head.dropout) };
        let config = TrainConfig {
            head: HeadConfig { architecture, dropout, l2: self.l2.unwrap_or(0.0) },
            optimizer,
            epochs: self.epochs.unwrap_or(tutorial.epochs),
            batch_size: self.batch_size.unwrap_or(tutorial.batch_size),
            seed: self.seed,
            standardize: self.standardize || lbfgs,
            val_split: self.val_split,
            patience: self.patience,
            class_weight: self.class_weight.clone().unwrap_or(ClassWeight::None),
            solver,
        };
        Ok(Resolved { config, head, note })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_head_is_the_probe_and_a_minibatch_setting_is_the_tutorials_head() {
        let probe = TrainOptions::default().config(true).unwrap();
        assert_eq!(probe.head, HeadKind::Probe);
        assert!(matches!(probe.config.solver, Solver::Lbfgs(Lbfgs { c: InverseL2::Auto, .. })));
        assert!(probe.config.standardize && probe.config.head.dropout == 0.0 && probe.note.is_none());
        let unvalidated = TrainOptions::default().config(false).unwrap();
        assert!(matches!(unvalidated.config.solver, Solver::Lbfgs(Lbfgs { c: InverseL2::Value(1.0), .. })));
        assert!(unvalidated.note.unwrap().contains("no validation to choose C on"));

        let tutorial = TrainOptions { epochs: Some(3), ..TrainOptions::default() }.config(true).unwrap();
        assert_eq!(tutorial.config, TrainConfig { epochs: 3, ..TrainConfig::tutorial() });
        let named = TrainOptions { head: Some(HeadKind::Logistic), ..TrainOptions::default() }.config(true).unwrap();
        assert_eq!(named.config, TrainConfig::tutorial());
        let mlp = TrainOptions { head: Some(HeadKind::Mlp), hidden: Some(64), ..TrainOptions::default() };
        assert_eq!(mlp.config(true).unwrap().config.head.architecture, Architecture::Mlp { hidden: 64 });
    }

    #[test]
    fn contradictions_are_refused_by_the_settings_names() {
        let refused = |o: TrainOptions| o.config(true).unwrap_err().to_string();
        let probe = || TrainOptions { head: Some(HeadKind::Probe), ..TrainOptions::default() };
        let e = refused(TrainOptions { epochs: Some(2), batch_size: Some(4), ..probe() });
        assert!(e.contains("`epochs`, `batch_size` set the mini-batch heads"), "{e}");
        assert!(refused(TrainOptions { l2: Some(0.1), ..probe() }).contains("the lbfgs probe's is `c`"));
        let e = refused(TrainOptions { solver: Some(SolverKind::Sgd), ..probe() });
        assert!(e.contains("`head` probe is fitted by lbfgs"), "{e}");
        let e = refused(TrainOptions { head: Some(HeadKind::Mlp), refit: true, ..TrainOptions::default() });
        assert!(e.contains("`refit` refits the probe; `head` mlp trains by mini-batches"), "{e}");
        let e =
            refused(TrainOptions { momentum: Some(0.9), head: Some(HeadKind::Logistic), ..TrainOptions::default() });
        assert!(e.contains("apply to `optimizer` sgd only"), "{e}");
    }
}
