//! Matrix products for the heads, through the `gemm` crate: AVX-512/AVX2 kernels and rayon
//! threads. Each output element is reduced in a fixed order, so results do not depend on the
//! number of threads.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// `a · b`.
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let mut c = Array2::<f32>::zeros((a.nrows(), b.ncols()));
    matmul_into(a, b, c.view_mut());
    c
}

/// `c = a · b`, `c` in any layout: gemm is fastest with some operands when it writes a
/// column-major `c` (`Array2::zeros((m, n).f())`), as the CNNs' kernel gradients.
pub fn matmul_into(a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "inner dimensions differ");
    assert_eq!(c.dim(), (m, n), "the product's shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let [ars, acs] = strides(a.strides());
    let [brs, bcs] = strides(b.strides());
    let [crs, ccs] = strides(c.strides());
    let parallelism = if m * n * k >= 1 << 18 { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: the pointers and strides describe the three arrays exactly (ndarray views in
    // element units), `c` is borrowed mutably so it does not alias `a` or `b`, and the
    // dimensions were checked to agree. `read_dst` is false: `c`'s old values are not read.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            ccs,
            crs,
            false,
            a.as_ptr(),
            acs,
            ars,
            b.as_ptr(),
            bcs,
            brs,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

fn strides(s: &[isize]) -> [isize; 2] {
    [s[0], s[1]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, ShapeBuilder};

    #[test]
    fn matches_the_textbook_product_for_plain_and_transposed_views() {
        let a = Array2::from_shape_fn((37, 70), |(i, j)| ((i * 7 + j * 3) % 11) as f32 - 5.0);
        let b = Array2::from_shape_fn((70, 23), |(i, j)| ((i * 5 + j) % 13) as f32 * 0.5);
        let naive = Array2::from_shape_fn((37, 23), |(i, j)| (0..70).map(|k| a[[i, k]] * b[[k, j]]).sum::<f32>());
        assert_eq!(matmul(a.view(), b.view()), naive);
        let at = a.t().to_owned();
        assert_eq!(matmul(at.t(), b.view()), naive, "transposed operand");
        assert_eq!(
            matmul(a.slice(ndarray::s![.., ..0]), b.slice(ndarray::s![..0, ..])),
            Array2::<f32>::zeros((37, 23))
        );
        let mut column_major = Array2::<f32>::from_elem((37, 23).f(), f32::NAN);
        matmul_into(a.view(), b.view(), column_major.view_mut());
        assert_eq!(column_major, naive, "column-major product, old values overwritten");
        assert_eq!(column_major.strides(), [1, 37]);
    }
}
