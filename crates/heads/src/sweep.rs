//! Choosing the probe's `C` on validation as the CLIP paper does: a log grid from 10⁻⁶ to
//! 10⁶, eight steps a decade (97 values), searched by fitting every second decade first and
//! then halving the interval around the lowest validation log loss until neighbouring grid
//! values are compared (15 fits instead of 97). The search assumes the curve has one valley,
//! as the protocol does; [`sweep_grid`] is the grid a brute-force check evaluates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Grid steps a decade of `C`.
const STEPS_PER_DECADE: i32 = 8;
/// The grid's ends, in steps: 10⁻⁶ and 10⁶.
const LOW: i32 = -6 * STEPS_PER_DECADE;
const HIGH: i32 = 6 * STEPS_PER_DECADE;
/// The first pass's spacing, in steps: every second decade.
const COARSE: i32 = 2 * STEPS_PER_DECADE;

/// What the sweep measured, stored in `run.json`: every `C` fitted, in ascending order, and
/// the one kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// The `C` of lowest validation log loss.
    pub chosen: f64,
    /// Each `C` fitted, ascending.
    pub points: Vec<SweepPoint>,
}

/// One `C` of the sweep: the probe fitted on train at that strength, scored on validation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Inverse L2 strength.
    pub c: f64,
    /// Mean log loss on validation (without the penalty).
    pub val_loss: f64,
    /// Accuracy on validation.
    pub val_acc: f64,
    /// L-BFGS iterations the fit took from its warm start.
    pub iterations: usize,
}

/// The `C` of grid step `k`: 10^(k/8).
pub(crate) fn grid_c(k: i32) -> f64 {
    10f64.powf(f64::from(k) / f64::from(STEPS_PER_DECADE))
}

/// Every `C` the sweep may choose, ascending: 10⁻⁶ … 10⁶, eight a decade.
pub fn sweep_grid() -> Vec<f64> {
    (LOW..=HIGH).map(grid_c).collect()
}

/// The grid step of lowest `loss` found by the coarse pass and bisection (see the module
/// docs), `loss` called once per step it visits, in the order visited; a NaN loss counts as
/// the worst, and of equal losses the smaller `C` (the stronger penalty) wins.
pub(crate) fn search<E>(mut loss: impl FnMut(i32) -> Result<f64, E>) -> Result<i32, E> {
    let mut seen: BTreeMap<i32, f64> = BTreeMap::new();
    let mut visit = |k: i32, seen: &mut BTreeMap<i32, f64>| -> Result<(), E> {
        if (LOW..=HIGH).contains(&k) && !seen.contains_key(&k) {
            let v = loss(k)?;
            seen.insert(k, if v.is_nan() { f64::INFINITY } else { v });
        }
        Ok(())
    };
    let lowest = |seen: &BTreeMap<i32, f64>| {
        let (k, _) = seen.iter().fold((0, f64::INFINITY), |(bk, bv), (&k, &v)| if v < bv { (k, v) } else { (bk, bv) });
        if seen.values().all(|v| v.is_infinite()) { *seen.keys().next().expect("a point") } else { k }
    };
    for k in (LOW..=HIGH).step_by(COARSE as usize) {
        visit(k, &mut seen)?;
    }
    let mut best = lowest(&seen);
    let mut step = COARSE;
    while step > 1 {
        step /= 2;
        visit(best - step, &mut seen)?;
        visit(best + step, &mut seen)?;
        best = lowest(&seen);
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force over the whole grid.
    fn argmin(f: &dyn Fn(i32) -> f64) -> i32 {
        (LOW..=HIGH).fold(LOW, |b, k| if f(k) < f(b) { k } else { b })
    }

    #[test]
    fn the_search_finds_the_grid_minimum_of_any_one_valley_curve_in_15_fits() {
        let grid = sweep_grid();
        assert_eq!((grid.len(), grid[0], grid[96]), (97, 1e-6, 1e6));
        assert!((grid[48] - 1.0).abs() < 1e-15 && (grid[56] - 10.0).abs() < 1e-12);
        // valleys at every grid step, and between steps, asymmetric
        for centre in (LOW * 10..=HIGH * 10).step_by(7) {
            let f = |k: i32| {
                let d = f64::from(k) - f64::from(centre) / 10.0;
                if d < 0.0 { d * d } else { 3.0 * d.abs().powf(1.5) }
            };
            let mut calls = Vec::new();
            let found = search::<()>(|k| {
                calls.push(k);
                Ok(f(k))
            })
            .unwrap();
            assert_eq!(found, argmin(&f), "valley at {}", f64::from(centre) / 10.0);
            assert!(calls.len() <= 15, "{} fits: {calls:?}", calls.len());
            let mut unique = calls.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), calls.len(), "no step fitted twice");
        }
    }

    #[test]
    fn ties_and_nan_losses_keep_the_stronger_penalty_and_errors_stop_the_search() {
        assert_eq!(search::<()>(|_| Ok(1.0)), Ok(LOW), "a flat curve: the smallest C");
        assert_eq!(search::<()>(|k| Ok(if k > 0 { f64::NAN } else { -f64::from(k) })), Ok(0));
        assert_eq!(search::<()>(|_| Ok(f64::NAN)), Ok(LOW));
        let mut calls = 0;
        assert_eq!(
            search(|k| {
                calls += 1;
                if k == 0 { Err("diverged") } else { Ok(1.0) }
            }),
            Err("diverged")
        );
        assert_eq!(calls, 4, "stopped at the failing fit");
    }
}
