//! Each optimizer's first steps against TF-Keras 2.15 on the same problem; the numbers come
//! from fixtures/make_optimizer_reference.py.

use imgclf_heads::{Optimizer, OptimizerConfig, Rule};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    a: Vec<f32>,
    c: Vec<f32>,
    p0: Vec<f32>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    rule: Rule,
    learning_rate: f32,
    decay: f32,
    steps: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/optimizer_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixtures/optimizer_reference.json")).unwrap()
}

#[test]
fn every_optimizer_follows_keras_step_by_step() {
    let r = reference();
    assert_eq!(r.cases.len(), 8, "one case per rule, plus momentum, Nesterov and decay variants");
    for case in &r.cases {
        let config = OptimizerConfig { rule: case.rule, learning_rate: case.learning_rate, decay: case.decay };
        let mut optimizer = Optimizer::new(config, &[r.p0.len()]);
        let mut p = r.p0.clone();
        for (step, expected) in case.steps.iter().enumerate() {
            let g: Vec<f32> = p.iter().zip(&r.a).zip(&r.c).map(|((p, a), c)| a * (p - c)).collect();
            optimizer.step(&mut [&mut p[..]], &[&g[..]]);
            for (i, (got, want)) in p.iter().zip(expected).enumerate() {
                assert!(
                    (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "{} step {} parameter {i}: {got} vs Keras {want}",
                    case.name,
                    step + 1
                );
            }
        }
    }
}

#[test]
fn named_optimizers_carry_keras_defaults() {
    let adam = OptimizerConfig::keras_default("Adam").unwrap();
    assert_eq!(adam.learning_rate, 0.001);
    assert_eq!(adam.rule, Rule::Adam { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 });
    assert_eq!(OptimizerConfig::keras_default("sgd").unwrap().learning_rate, 0.01);
    assert_eq!(OptimizerConfig::keras_default("rmsprop").unwrap().rule, Rule::Rmsprop { rho: 0.9, epsilon: 1e-7 });
    // Adadelta at 1.0, as in the Keras the tutorial ran (TF-Keras 2.x lowered it to 0.001).
    assert_eq!(OptimizerConfig::keras_default("adadelta").unwrap().learning_rate, 1.0);
    assert!(OptimizerConfig::keras_default("lbfgs").is_none());
}
