use ndarray::{Array2, ArrayViewD, Axis};

use crate::Layout;

/// Global average pooling of a `(N, C, H, W)` or `(N, H, W, C)` feature map to `(N, C)`,
/// what Keras' `GlobalAveragePooling2D` computes. A 2-D input is already pooled and is
/// returned as it is.
pub fn global_average_pool(map: ArrayViewD<'_, f32>, layout: Layout) -> Result<Array2<f32>, String> {
    let pooled = match (map.ndim(), layout) {
        (2, _) => map.to_owned(),
        (4, Layout::Nchw) => map.mean_axis(Axis(3)).and_then(|m| m.mean_axis(Axis(2))).ok_or("empty feature map")?,
        (4, Layout::Nhwc) => map.mean_axis(Axis(2)).and_then(|m| m.mean_axis(Axis(1))).ok_or("empty feature map")?,
        (d, _) => return Err(format!("feature output has {d} dimensions; expected a 4-D map or a 2-D pooled output")),
    };
    pooled.into_dimensionality().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array4, IxDyn};

    #[test]
    fn pools_each_channel_over_space_in_both_layouts() {
        // channel c of image n holds n*100 + c*10 + (spatial index)
        let nchw = Array4::from_shape_fn((2, 3, 2, 2), |(n, c, y, x)| (n * 100 + c * 10 + y * 2 + x) as f32);
        let got = global_average_pool(nchw.view().into_dyn(), Layout::Nchw).unwrap();
        let want = Array2::from_shape_fn((2, 3), |(n, c)| (n * 100 + c * 10) as f32 + 1.5);
        assert_eq!(got, want);
        let nhwc = nchw.view().permuted_axes([0, 2, 3, 1]).to_owned();
        assert_eq!(global_average_pool(nhwc.view().into_dyn(), Layout::Nhwc).unwrap(), want);
    }

    #[test]
    fn pooled_outputs_pass_through_and_odd_ranks_are_refused() {
        let p = Array2::from_shape_fn((2, 4), |(i, j)| (i * 4 + j) as f32);
        assert_eq!(global_average_pool(p.view().into_dyn(), Layout::Nchw).unwrap(), p);
        let odd = ndarray::ArrayD::<f32>::zeros(IxDyn(&[2, 3, 4]));
        assert!(global_average_pool(odd.view(), Layout::Nchw).unwrap_err().contains("3 dimensions"));
    }
}
