//! The one-line form of [`AugmentParams`] that commands and configs take: `none`, or
//! comma-separated items with Keras' meaning, e.g.
//! `rotation=30,shift=0.1,shear=0.2,zoom=0.2,hflip,brightness=0.7:1.3,fill=nearest`.
//!
//! ```
//! use imgclf_augment::{AugmentParams, FillMode};
//!
//! let p: AugmentParams = "rotation=40,shift=0.2,zoom=0.2,hflip,fill=reflect".parse().unwrap();
//! assert_eq!((p.rotation_range, p.width_shift_range, p.height_shift_range), (40.0, 0.2, 0.2));
//! assert_eq!(p.zoom_range, [0.8, 1.2]);
//! assert!(p.horizontal_flip && p.fill_mode == FillMode::Reflect);
//! // printed back in the same syntax
//! assert_eq!(p.to_string(), "rotation=40,shift=0.2,zoom=0.8:1.2,hflip,fill=reflect");
//! assert_eq!("none".parse::<AugmentParams>().unwrap(), AugmentParams::default());
//! assert!("zoom=1.5".parse::<AugmentParams>().unwrap_err().contains("zoom_range"));
//! ```

use std::fmt;
use std::str::FromStr;

use crate::{AugmentParams, Augmenter};

/// The keys, for messages.
const KEYS: &str = "rotation=, shift=, wshift=, hshift=, shear=, zoom=Z|LO:HI, hflip, vflip, brightness=LO:HI, \
                    channel_shift=, fill=, cval=, rescale=";

impl FromStr for AugmentParams {
    type Err = String;

    /// `none` (or nothing) for no augmentation, else `key=value` items (see the module);
    /// the values are checked as [`Augmenter::new`] checks them.
    fn from_str(s: &str) -> Result<AugmentParams, String> {
        let mut p = AugmentParams::default();
        if matches!(s.trim(), "" | "none") {
            return Ok(p);
        }
        for item in s.split(',').map(str::trim) {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            let number = || value.parse::<f64>().map_err(|_| format!("`{item}`: `{value}` is not a number"));
            let pair = || -> Result<[f64; 2], String> {
                let (lo, hi) = value.split_once(':').ok_or(format!("`{item}`: expected {key}=LO:HI"))?;
                match (lo.parse(), hi.parse()) {
                    (Ok(lo), Ok(hi)) => Ok([lo, hi]),
                    _ => Err(format!("`{item}`: expected {key}=LO:HI with numbers")),
                }
            };
            match key {
                "rotation" => p.rotation_range = number()?,
                "shift" => (p.width_shift_range, p.height_shift_range) = (number()?, number()?),
                "wshift" => p.width_shift_range = number()?,
                "hshift" => p.height_shift_range = number()?,
                "shear" => p.shear_range = number()?,
                "zoom" if value.contains(':') => p.zoom_range = pair()?,
                "zoom" => p.zoom_range = AugmentParams::zoom(number()?),
                "hflip" => p.horizontal_flip = true,
                "vflip" => p.vertical_flip = true,
                "brightness" => p.brightness_range = Some(pair()?),
                "channel_shift" => p.channel_shift_range = number()?,
                "fill" => p.fill_mode = value.parse().map_err(|e| format!("fill={e}"))?,
                "cval" => p.cval = number()? as f32,
                "rescale" => p.rescale = Some(number()? as f32),
                _ => return Err(format!("unknown `{key}`: expected none, or {KEYS}")),
            }
        }
        Augmenter::new(p.clone()).map_err(|e| e.to_string())?;
        Ok(p)
    }
}

impl fmt::Display for AugmentParams {
    /// The items that differ from no augmentation, in the order of [`AugmentParams`]'s
    /// fields; `none` when there are none. Parsing it gives the same parameters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let none = AugmentParams::default();
        let mut items = Vec::new();
        let mut number = |key: &str, v: f64, default: f64| {
            if v != default {
                items.push(format!("{key}={v}"));
            }
        };
        number("rotation", self.rotation_range, 0.0);
        if self.width_shift_range == self.height_shift_range {
            number("shift", self.width_shift_range, 0.0);
        } else {
            number("wshift", self.width_shift_range, 0.0);
            number("hshift", self.height_shift_range, 0.0);
        }
        number("shear", self.shear_range, 0.0);
        number("channel_shift", self.channel_shift_range, 0.0);
        if self.zoom_range != none.zoom_range {
            items.push(format!("zoom={}:{}", self.zoom_range[0], self.zoom_range[1]));
        }
        if self.horizontal_flip {
            items.push("hflip".into());
        }
        if self.vertical_flip {
            items.push("vflip".into());
        }
        if let Some([lo, hi]) = self.brightness_range {
            items.push(format!("brightness={lo}:{hi}"));
        }
        if self.fill_mode != none.fill_mode {
            items.push(format!("fill={}", self.fill_mode));
        }
        if self.cval != none.cval {
            items.push(format!("cval={}", self.cval));
        }
        if let Some(r) = self.rescale {
            items.push(format!("rescale={r}"));
        }
        if items.is_empty() { f.write_str("none") } else { f.write_str(&items.join(",")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FillMode;

    #[test]
    fn every_field_survives_a_round_trip() {
        let p = AugmentParams {
            rotation_range: 15.0,
            width_shift_range: 0.1,
            height_shift_range: 0.15,
            shear_range: 10.0,
            zoom_range: [0.9, 1.25],
            horizontal_flip: true,
            vertical_flip: true,
            fill_mode: FillMode::Constant,
            cval: 3.0,
            brightness_range: Some([0.5, 1.5]),
            channel_shift_range: 20.0,
            rescale: Some(0.5),
        };
        assert_eq!(p.to_string().parse::<AugmentParams>().unwrap(), p);
        assert_eq!(AugmentParams::default().to_string(), "none");
    }

    #[test]
    fn mistakes_are_named() {
        let err = |s: &str| s.parse::<AugmentParams>().unwrap_err();
        assert!(err("spin=3").contains("unknown `spin`"));
        assert!(err("rotation=x").contains("`x` is not a number"));
        assert!(err("brightness=1.2").contains("brightness=LO:HI"));
        assert!(err("fill=mirror").contains("nearest, constant, reflect or wrap"));
        assert!(err("rotation=-5").contains("rotation_range"));
    }
}
