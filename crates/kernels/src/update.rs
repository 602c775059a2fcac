//! The optimizer's step applied where a parameter lives: on the CPU in candle's own storage,
//! without copying it out and back every step; elsewhere through a copy.

use std::cell::RefCell;

use candle_core::{CpuStorage, InplaceOp1, Layout, Result, Tensor, Var};

/// Runs `step(parameter, gradient)` on the values of `var` and `grad` (same shape), changing
/// `var` in place.
pub fn update_in_place(var: &Var, grad: &Tensor, mut step: impl FnMut(&mut [f32], &[f32])) -> Result<()> {
    if !var.device().is_cpu() {
        let g = grad.flatten_all()?.to_vec1::<f32>()?;
        let mut p = var.flatten_all()?.to_vec1::<f32>()?;
        step(&mut p, &g);
        return var.set(&Tensor::from_vec(p, var.shape(), var.device())?);
    }
    let grad = grad.contiguous()?;
    let (storage, layout) = grad.storage_and_layout();
    let g = crate::conv::storage_values(&storage, layout, "gradient")?;
    var.inplace_op1(&InPlace(RefCell::new(|p: &mut [f32]| step(p, g))))
}

/// `f` run on a tensor's values in place.
struct InPlace<F>(RefCell<F>);

impl<F: FnMut(&mut [f32])> InplaceOp1 for InPlace<F> {
    fn name(&self) -> &'static str {
        "in-place"
    }
    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("a parameter is not contiguous")
        };
        let CpuStorage::F32(values) = storage else { candle_core::bail!("a parameter is not f32") };
        (self.0.borrow_mut())(&mut values[start..end]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_step_changes_the_parameter_where_it_lives() {
        let var = Var::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], (2, 2), &Device::Cpu).unwrap();
        let grad = Tensor::from_vec(vec![0.5f32, -1.0, 0.0, 2.0], (2, 2), &Device::Cpu).unwrap();
        update_in_place(&var, &grad.t().unwrap(), |p, g| p.iter_mut().zip(g).for_each(|(p, g)| *p -= g)).unwrap();
        // the transposed gradient is made contiguous first: [[0.5, 0], [-1, 2]]
        assert_eq!(var.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [0.5, 2.0, 4.0, 2.0]);
    }
}
