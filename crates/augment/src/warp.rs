//! One bilinear resampling pass through an affine map, with scipy `ndimage`'s boundary rules
//! (`mode=` with `order=1`), which is what Keras' `apply_affine_transform` calls.

use image::RgbImage;
use ndarray::Array3;

/// How points that map outside the source image are filled (Keras' `fill_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FillMode {
    /// `aaaa|abcd|dddd`: the edge pixel.
    Nearest,
    /// `kkkk|abcd|kkkk`: the constant `cval`.
    Constant,
    /// `dcba|abcd|dcba`: mirrored, the edge repeated.
    Reflect,
    /// `abcd|abcd|abcd`: scipy's `wrap`, whose period is one pixel short of the size.
    Wrap,
}

imgclf_dataset::named_enum!(FillMode {
    FillMode::Nearest => "nearest",
    FillMode::Constant => "constant",
    FillMode::Reflect => "reflect",
    FillMode::Wrap => "wrap",
});

impl FillMode {
    /// A continuous coordinate brought into `[0, len - 1]` as scipy's `map_coordinate`
    /// does; `None` means the constant fill.
    fn map(self, c: f64, len: usize) -> Option<f64> {
        let last = len as f64 - 1.0;
        if (0.0..=last).contains(&c) {
            return Some(c);
        }
        if len <= 1 {
            return (self != FillMode::Constant).then_some(0.0);
        }
        Some(match self {
            FillMode::Constant => return None,
            FillMode::Nearest => c.clamp(0.0, last),
            FillMode::Reflect => {
                let period = 2.0 * len as f64;
                if c < 0.0 {
                    let c = if c < -period { period * (-c / period).trunc() + c } else { c };
                    if c < -(len as f64) { c + period } else { (if c > -1e-15 { 1e-15 } else { -c }) - 1.0 }
                } else {
                    let c = c - period * (c / period).trunc();
                    if c >= len as f64 { period - c - 1.0 } else { c }
                }
            }
            FillMode::Wrap => {
                let period = last;
                if c < 0.0 { c + period * ((-c / period).trunc() + 1.0) } else { c - period * (c / period).trunc() }
            }
        })
    }

    /// An integer sample index outside `0..len` brought inside (only reached by a neighbour
    /// whose weight is not zero in `reflect` mode, or with weight zero otherwise).
    fn index(self, i: i64, len: usize) -> usize {
        let n = len as i64;
        let i = match self {
            FillMode::Reflect if i < 0 => -i - 1,
            FillMode::Reflect if i >= n => 2 * n - i - 1,
            _ => i,
        };
        i.clamp(0, n - 1) as usize
    }
}

/// `source (row, col) = m · (row, col) + offset` for each output pixel, as scipy's
/// `affine_transform(matrix, offset)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// The linear part, mapping output `(row, column)` to input coordinates.
    pub m: [[f64; 2]; 2],
    /// The offset added after it.
    pub offset: [f64; 2],
}

impl Affine {
    /// The map that leaves every pixel where it is.
    pub const IDENTITY: Affine = Affine { m: [[1.0, 0.0], [0.0, 1.0]], offset: [0.0, 0.0] };

    /// `self ∘ then`: the map that applies `then` to output coordinates first.
    pub fn compose(&self, then: &Affine) -> Affine {
        let a = &self.m;
        let b = &then.m;
        let m = [
            [a[0][0] * b[0][0] + a[0][1] * b[1][0], a[0][0] * b[0][1] + a[0][1] * b[1][1]],
            [a[1][0] * b[0][0] + a[1][1] * b[1][0], a[1][0] * b[0][1] + a[1][1] * b[1][1]],
        ];
        let o = then.offset;
        let offset =
            [a[0][0] * o[0] + a[0][1] * o[1] + self.offset[0], a[1][0] * o[0] + a[1][1] * o[1] + self.offset[1]];
        Affine { m, offset }
    }
}

/// Resamples `src` through `map` into an image of the same size, bilinearly, as
/// `(height, width, 3)` f32 values in 0..=255.
pub fn warp(src: &RgbImage, map: &Affine, fill: FillMode, cval: f32) -> Array3<f32> {
    let (w, h) = (src.width() as usize, src.height() as usize);
    let pixels = src.as_raw();
    let mut out = Array3::<f32>::zeros((h, w, 3));
    let dst = out.as_slice_mut().expect("fresh arrays are contiguous");
    let Affine { m, offset } = *map;
    let (last_r, last_c) = (h as f64 - 1.0, w as f64 - 1.0);
    for (r, row) in dst.chunks_exact_mut(w * 3).enumerate() {
        // Source coordinates advance by a constant step along an output row.
        let mut sr = m[0][0] * r as f64 + offset[0];
        let mut sc = m[1][0] * r as f64 + offset[1];
        for px in row.chunks_exact_mut(3) {
            let (r_here, c_here) = (sr, sc);
            sr += m[0][1];
            sc += m[1][1];
            // Inside, away from the last row and column: no boundary rule applies.
            let (fr, fc, [ra, rb], [ca, cb]) = if r_here >= 0.0 && r_here < last_r && c_here >= 0.0 && c_here < last_c {
                let (r0, c0) = (r_here as usize, c_here as usize);
                ((r_here - r0 as f64) as f32, (c_here - c0 as f64) as f32, [r0, r0 + 1], [c0, c0 + 1])
            } else {
                let (Some(sr), Some(sc)) = (fill.map(r_here, h), fill.map(c_here, w)) else {
                    px.fill(cval);
                    continue;
                };
                let (r0, c0) = (sr.floor(), sc.floor());
                let (fr, fc) = ((sr - r0) as f32, (sc - c0) as f32);
                let (r0, c0) = (r0 as i64, c0 as i64);
                let rows = [fill.index(r0, h), fill.index(r0 + 1, h)];
                let cols = [fill.index(c0, w), fill.index(c0 + 1, w)];
                (fr, fc, rows, cols)
            };
            let (a, b, c, d) = ((ra * w + ca) * 3, (ra * w + cb) * 3, (rb * w + ca) * 3, (rb * w + cb) * 3);
            for k in 0..3 {
                let top = pixels[a + k] as f32 * (1.0 - fc) + pixels[b + k] as f32 * fc;
                let bottom = pixels[c + k] as f32 * (1.0 - fc) + pixels[d + k] as f32 * fc;
                px[k] = top * (1.0 - fr) + bottom * fr;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_outside_follow_scipy_for_each_mode() {
        // len 5: valid coordinates are [0, 4].
        assert_eq!(FillMode::Nearest.map(-2.5, 5), Some(0.0));
        assert_eq!(FillMode::Nearest.map(7.0, 5), Some(4.0));
        assert_eq!(FillMode::Constant.map(-0.01, 5), None);
        assert_eq!(FillMode::Constant.map(4.0, 5), Some(4.0));
        // reflect (half-sample symmetric): -1 mirrors to 0, 5 mirrors to 4, 6 to 3.
        assert_eq!(FillMode::Reflect.map(-1.0, 5), Some(0.0));
        assert_eq!(FillMode::Reflect.map(5.0, 5), Some(4.0));
        assert_eq!(FillMode::Reflect.map(6.0, 5), Some(3.0));
        // scipy's wrap has period len - 1 = 4.
        assert_eq!(FillMode::Wrap.map(-1.0, 5), Some(3.0));
        assert_eq!(FillMode::Wrap.map(5.0, 5), Some(1.0));
    }

    #[test]
    fn composing_applies_the_inner_map_first() {
        let shift = Affine { m: Affine::IDENTITY.m, offset: [1.0, 2.0] };
        let scale = Affine { m: [[2.0, 0.0], [0.0, 3.0]], offset: [0.0, 0.0] };
        // scale ∘ shift: (r, c) -> scale(shift(r, c)) = (2(r + 1), 3(c + 2))
        let both = scale.compose(&shift);
        assert_eq!(both.m, [[2.0, 0.0], [0.0, 3.0]]);
        assert_eq!(both.offset, [2.0, 6.0]);
    }
}
