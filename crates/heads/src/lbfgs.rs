//! L-BFGS with a strong-Wolfe line search (Nocedal & Wright, algorithms 7.4, 3.5 and 3.6): the
//! minimiser scikit-learn's `lbfgs` solver hands its logistic loss to (SciPy's L-BFGS-B, here
//! without bounds), with its stopping rules: the largest gradient entry under `tol`, or a
//! relative decrease of the objective under 64 machine epsilons.

use std::collections::VecDeque;

/// Corrections kept (SciPy's `maxcor` default).
const MEMORY: usize = 10;
/// Sufficient decrease and curvature constants of the Wolfe conditions.
const C1: f64 = 1e-4;
const C2: f64 = 0.9;
/// Evaluations one line search may take.
const SEARCH: usize = 40;
/// SciPy's `ftol` as scikit-learn sets it: 64 machine epsilons.
const FTOL: f64 = 64.0 * f64::EPSILON;

/// Why the minimiser stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The largest gradient entry fell to `tol` or under: converged.
    Gradient,
    /// The objective stopped decreasing (a relative step under 64 ε, or no step lowered it).
    Flat,
    /// `max_iter` iterations were taken first.
    Iterations,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::Gradient => "converged (no gradient entry above tol)",
            Stop::Flat => "stopped where the objective no longer decreases",
            Stop::Iterations => "stopped at max_iter before converging",
        })
    }
}

/// A point the minimiser evaluated: the objective, its gradient, and what else the evaluation
/// reported.
#[derive(Debug, Clone)]
pub struct Point<A> {
    /// Where.
    pub x: Vec<f64>,
    /// The objective there.
    pub f: f64,
    /// Its gradient there.
    pub g: Vec<f64>,
    /// What the evaluation reported besides (for the probe: rows classified right).
    pub aux: A,
}

/// Where the minimiser stopped, after how many iterations, and why.
#[derive(Debug, Clone)]
pub struct Minimum<A> {
    /// The last point accepted.
    pub point: Point<A>,
    /// Iterations taken.
    pub iterations: usize,
    /// Why it stopped.
    pub stop: Stop,
}

/// An objective: its value, gradient and extra report at a point, or why it could not be had.
pub type Objective<'a, A, E> = dyn FnMut(&[f64]) -> Result<(f64, Vec<f64>, A), E> + 'a;

/// The largest absolute entry.
pub fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimises `eval` (objective, gradient and an extra report at a point) from `x0`; each
/// accepted iterate is passed to `on_iter` with its number.
pub fn minimize<A: Clone, E>(
    eval: &mut Objective<'_, A, E>,
    x0: Vec<f64>,
    tol: f64,
    max_iter: usize,
    on_iter: &mut dyn FnMut(usize, &Point<A>),
) -> Result<Minimum<A>, E> {
    let (f, g, aux) = eval(&x0)?;
    let mut at = Point { x: x0, f, g, aux };
    let mut memory: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::with_capacity(MEMORY);
    for iteration in 0..max_iter {
        if max_abs(&at.g) <= tol {
            return Ok(Minimum { point: at, iterations: iteration, stop: Stop::Gradient });
        }
        let mut d = direction(&at.g, &memory);
        let mut slope = dot(&d, &at.g);
        if slope.is_nan() || slope >= 0.0 {
            // not a descent direction (the curvature pairs went stale): steepest descent
            memory.clear();
            d = at.g.iter().map(|v| -v).collect();
            slope = -dot(&at.g, &at.g);
        }
        // the first step is scaled to a unit move, as SciPy's is
        let first = match memory.is_empty() {
            true => (1.0 / dot(&d, &d).sqrt()).min(1.0),
            false => 1.0,
        };
        let Some(next) = line_search(eval, &at, &d, slope, first)? else {
            return Ok(Minimum { point: at, iterations: iteration, stop: Stop::Flat });
        };
        let s: Vec<f64> = next.x.iter().zip(&at.x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = next.g.iter().zip(&at.g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > f64::EPSILON * dot(&y, &y) {
            if memory.len() == MEMORY {
                memory.pop_front();
            }
            memory.push_back((s, y, 1.0 / sy));
        }
        let decrease = (at.f - next.f) / at.f.abs().max(next.f.abs()).max(1.0);
        at = next;
        on_iter(iteration + 1, &at);
        if decrease <= FTOL {
            return Ok(Minimum { point: at, iterations: iteration + 1, stop: Stop::Flat });
        }
    }
    let stop = if max_abs(&at.g) <= tol { Stop::Gradient } else { Stop::Iterations };
    Ok(Minimum { point: at, iterations: max_iter, stop })
}

/// `-H·g` by the two-loop recursion over the kept curvature pairs, `H₀ = γI` with
/// `γ = sᵀy / yᵀy` of the newest pair.
fn direction(g: &[f64], memory: &VecDeque<(Vec<f64>, Vec<f64>, f64)>) -> Vec<f64> {
    let mut q = g.to_vec();
    let mut alphas = Vec::with_capacity(memory.len());
    for (s, y, rho) in memory.iter().rev() {
        let a = rho * dot(s, &q);
        q.iter_mut().zip(y).for_each(|(q, y)| *q -= a * y);
        alphas.push(a);
    }
    let gamma = memory.back().map_or(1.0, |(_, y, rho)| 1.0 / (rho * dot(y, y)));
    q.iter_mut().for_each(|q| *q *= gamma);
    for ((s, y, rho), a) in memory.iter().zip(alphas.iter().rev()) {
        let b = rho * dot(y, &q);
        q.iter_mut().zip(s).for_each(|(q, s)| *q += (a - b) * s);
    }
    q.iter_mut().for_each(|q| *q = -*q);
    q
}

/// A trial step: its length, the point, and the slope along the direction there.
struct Trial<A> {
    t: f64,
    point: Point<A>,
    slope: f64,
}

/// A step along `d` from `at` meeting the strong Wolfe conditions, or the lowest step found
/// meeting sufficient decrease; `None` when no step lowered the objective.
fn line_search<A: Clone, E>(
    eval: &mut Objective<'_, A, E>,
    at: &Point<A>,
    d: &[f64],
    slope: f64,
    first: f64,
) -> Result<Option<Point<A>>, E> {
    let mut trial = |t: f64| -> Result<Trial<A>, E> {
        let x: Vec<f64> = at.x.iter().zip(d).map(|(x, d)| x + t * d).collect();
        let (f, g, aux) = eval(&x)?;
        let slope = dot(&g, d);
        Ok(Trial { t, point: Point { x, f, g, aux }, slope })
    };
    let armijo = |tr: &Trial<A>| tr.point.f.is_finite() && tr.point.f <= at.f + C1 * tr.t * slope;
    let start = Trial { t: 0.0, point: at.clone(), slope };
    let mut previous = start;
    let mut t = first;
    for i in 0..SEARCH {
        let tr = trial(t)?;
        if !tr.point.f.is_finite() {
            // overflow: a shorter step
            t = (previous.t + t) / 2.0;
            continue;
        }
        if !armijo(&tr) || (i > 0 && tr.point.f >= previous.point.f) {
            return zoom(&mut trial, &armijo, previous, tr, slope, SEARCH - i - 1);
        }
        if tr.slope.abs() <= -C2 * slope {
            return Ok(Some(tr.point));
        }
        if tr.slope >= 0.0 {
            let hi = Trial { t: previous.t, point: previous.point, slope: previous.slope };
            return zoom(&mut trial, &armijo, tr, hi, slope, SEARCH - i - 1);
        }
        t *= 2.0;
        previous = tr;
    }
    Ok((previous.t > 0.0).then_some(previous.point))
}

/// Narrows `[lo, hi]` (`lo` meets sufficient decrease, is the lower, and its slope points
/// toward `hi`) to a strong-Wolfe step by safeguarded cubic interpolation.
fn zoom<A: Clone, E>(
    trial: &mut dyn FnMut(f64) -> Result<Trial<A>, E>,
    armijo: &dyn Fn(&Trial<A>) -> bool,
    mut lo: Trial<A>,
    mut hi: Trial<A>,
    slope: f64,
    evaluations: usize,
) -> Result<Option<Point<A>>, E> {
    for _ in 0..evaluations {
        let (a, b) = (lo.t.min(hi.t), lo.t.max(hi.t));
        if b - a <= f64::EPSILON * b.max(1.0) {
            break;
        }
        let t = cubic(&lo, &hi).filter(|t| *t > a + 0.1 * (b - a) && *t < b - 0.1 * (b - a)).unwrap_or((a + b) / 2.0);
        let tr = trial(t)?;
        if !armijo(&tr) || tr.point.f >= lo.point.f {
            hi = tr;
        } else {
            if tr.slope.abs() <= -C2 * slope {
                return Ok(Some(tr.point));
            }
            if tr.slope * (hi.t - lo.t) >= 0.0 {
                hi = lo;
            }
            lo = tr;
        }
    }
    Ok((lo.t > 0.0).then_some(lo.point))
}

/// The minimiser of the cubic through two trials' values and slopes, when it has one.
fn cubic<A>(p: &Trial<A>, q: &Trial<A>) -> Option<f64> {
    let d1 = p.slope + q.slope - 3.0 * (p.point.f - q.point.f) / (p.t - q.t);
    let root = d1 * d1 - p.slope * q.slope;
    if root.is_nan() || root < 0.0 {
        return None;
    }
    let d2 = (q.t - p.t).signum() * root.sqrt();
    let t = q.t - (q.t - p.t) * (q.slope + d2 - d1) / (q.slope - p.slope + 2.0 * d2);
    t.is_finite().then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rosenbrock(x: &[f64]) -> Result<(f64, Vec<f64>, ()), ()> {
        let (a, b) = (x[0], x[1]);
        let f = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
        let g = vec![-2.0 * (1.0 - a) - 400.0 * a * (b - a * a), 200.0 * (b - a * a)];
        Ok((f, g, ()))
    }

    #[test]
    fn finds_the_rosenbrock_minimum_from_the_classic_start() {
        let mut iterations = 0;
        let min = minimize(&mut rosenbrock, vec![-1.2, 1.0], 1e-10, 200, &mut |i, _| iterations = i).unwrap();
        // at f ≈ 1e-22 the objective stops decreasing before the gradient reaches 1e-10
        assert_ne!(min.stop, Stop::Iterations, "{min:?}");
        assert!((min.point.x[0] - 1.0).abs() < 1e-8 && (min.point.x[1] - 1.0).abs() < 1e-8, "{min:?}");
        assert_eq!(iterations, min.iterations);
        assert!(min.iterations < 60, "L-BFGS takes tens of iterations here, not hundreds: {}", min.iterations);
    }

    #[test]
    fn a_badly_scaled_quadratic_is_solved_and_the_iteration_cap_is_kept() {
        // f = Σ cᵢ (xᵢ - i)² / 2 with curvatures over two decades (SciPy's L-BFGS-B: 68
        // iterations, stopped as the objective flattens, gradient 7e-7)
        let c: Vec<f64> = (0..20).map(|i| 10f64.powf(i as f64 * 2.0 / 19.0)).collect();
        let mut eval = |x: &[f64]| -> Result<(f64, Vec<f64>, ()), ()> {
            let f = x.iter().enumerate().map(|(i, v)| c[i] * (v - i as f64).powi(2) / 2.0).sum();
            Ok((f, x.iter().enumerate().map(|(i, v)| c[i] * (v - i as f64)).collect(), ()))
        };
        let min = minimize(&mut eval, vec![0.0; 20], 1e-8, 1000, &mut |_, _| {}).unwrap();
        assert_ne!(min.stop, Stop::Iterations, "{min:?}");
        assert!(max_abs(&min.point.g) < 1e-5, "{min:?}");
        assert!(min.point.x.iter().enumerate().all(|(i, v)| (v - i as f64).abs() < 1e-6), "{:?}", min.point.x);
        assert!(min.iterations < 150, "{}", min.iterations);
        let capped = minimize(&mut eval, vec![0.0; 20], 1e-9, 3, &mut |_, _| {}).unwrap();
        assert_eq!((capped.stop, capped.iterations), (Stop::Iterations, 3));
    }

    #[test]
    fn errors_of_the_objective_come_back() {
        let mut failing = |_: &[f64]| -> Result<(f64, Vec<f64>, ()), &str> { Err("unreadable") };
        assert_eq!(minimize(&mut failing, vec![0.0], 1e-6, 10, &mut |_, _| {}).unwrap_err(), "unreadable");
    }
}
