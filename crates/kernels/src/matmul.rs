//! Matrix products for the heads, through the `gemm` crate: AVX-512/AVX2 kernels and rayon
//! threads. Each output element is reduced in a fixed order, so results do not depend on the
//! number of threads.

use ndarray::{Array2, ArrayView2, Order, ShapeBuilder};

/// `a · b`.
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    matmul_in(a, b, Order::RowMajor)
}

/// `a · b` laid out in `order`: from some operands gemm writes a column-major product several
/// times faster than a row-major one (the CNNs' kernel gradients). Nothing is zeroed first:
/// gemm writes every element.
pub fn matmul_in(a: ArrayView2<f32>, b: ArrayView2<f32>, order: Order) -> Array2<f32> {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "inner dimensions differ");
    let mut c = Array2::<f32>::uninit((m, n).set_f(order == Order::ColumnMajor));
    let [ars, acs] = strides(a.strides());
    let [brs, bcs] = strides(b.strides());
    let [crs, ccs] = strides(c.strides());
    let parallelism = if m * n * k >= 1 << 18 { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: the pointers and strides describe the three arrays exactly (ndarray views in
    // element units), `c` is fresh so it aliases neither operand, and the dimensions were
    // checked to agree. With `read_dst` false gemm never reads `c` and writes every element
    // (zeros when `k` is 0), so `c` is initialised afterwards.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr().cast::<f32>(),
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
        c.assume_init()
    }
}

fn strides(s: &[isize]) -> [isize; 2] {
    [s[0], s[1]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

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
        let column_major = matmul_in(a.view(), b.view(), Order::ColumnMajor);
        assert_eq!(column_major, naive, "column-major product");
        assert_eq!(column_major.strides(), [1, 37]);
        assert_eq!(matmul_in(at.t(), b.view(), Order::ColumnMajor), naive, "transposed operand, column-major");
    }
}
