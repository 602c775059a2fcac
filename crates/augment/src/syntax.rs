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

/// The spellings of a yes/no value, with their meaning.
const BOOLEANS: [(&str, bool); 8] = [
    ("true", true),
    ("false", false),
    ("1", true),
    ("0", false),
    ("yes", true),
    ("no", false),
    ("on", true),
    ("off", false),
];

/// A yes/no value in one of [`BOOLEANS`]' spellings (any case).
fn boolean(value: &str) -> Option<bool> {
    BOOLEANS.iter().find(|(s, _)| s.eq_ignore_ascii_case(value)).map(|&(_, b)| b)
}

/// A number, or a fraction as Keras users write `rescale=1./255`: `1/255`.
fn number(value: &str) -> Option<f64> {
    match value.split_once('/') {
        Some((a, b)) => Some(a.trim().parse::<f64>().ok()? / b.trim().parse::<f64>().ok()?),
        None => value.trim().parse().ok(),
    }
}

/// The settings a key sets: `shift` sets both shifts, so it combines with neither.
fn fields(key: &str) -> Vec<&str> {
    if key == "shift" { vec!["wshift", "hshift"] } else { vec![key] }
}

impl FromStr for AugmentParams {
    type Err = String;

    /// `none` (or nothing) for no augmentation, else `key=value` items (see the module), each
    /// key once; `hflip` and `vflip` alone mean yes, or take `=true/false/1/0/yes/no/on/off`.
    /// The values are checked as [`Augmenter::new`] checks them.
    fn from_str(s: &str) -> Result<AugmentParams, String> {
        let mut p = AugmentParams::default();
        if matches!(s.trim(), "" | "none") {
            return Ok(p);
        }
        let mut seen: Vec<&str> = Vec::new();
        for item in s.split(',').map(str::trim) {
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            if let Some(k) = seen.iter().find(|k| fields(k).iter().any(|f| fields(key).contains(f))) {
                return Err(format!("`{item}`: {} already set by `{k}`", fields(key).join("/")));
            }
            let text = || value.ok_or_else(|| format!("`{item}`: expected {key}=VALUE"));
            let real = || -> Result<f64, String> {
                let v = text()?;
                number(v).ok_or_else(|| format!("`{item}`: `{v}` is not a number"))
            };
            let single = || -> Result<f32, String> {
                let v = text()?;
                match v.contains('/') {
                    true => real().map(|r| r as f32),
                    false => v.parse().map_err(|_| format!("`{item}`: `{v}` is not a number")),
                }
            };
            let pair = || -> Result<[f64; 2], String> {
                let (lo, hi) = text()?.split_once(':').ok_or(format!("`{item}`: expected {key}=LO:HI"))?;
                match (number(lo), number(hi)) {
                    (Some(lo), Some(hi)) => Ok([lo, hi]),
                    _ => Err(format!("`{item}`: expected {key}=LO:HI with numbers")),
                }
            };
            let flag = || match value {
                None => Ok(true),
                Some(v) => boolean(v).ok_or_else(|| {
                    let spellings: Vec<&str> = BOOLEANS.iter().map(|(s, _)| *s).collect();
                    format!("`{item}`: `{v}` is not yes or no (one of {})", spellings.join(", "))
                }),
            };
            match key {
                "rotation" => p.rotation_range = real()?,
                "shift" => (p.width_shift_range, p.height_shift_range) = (real()?, real()?),
                "wshift" => p.width_shift_range = real()?,
                "hshift" => p.height_shift_range = real()?,
                "shear" => p.shear_range = real()?,
                "zoom" if value.is_some_and(|v| v.contains(':')) => p.zoom_range = pair()?,
                "zoom" => p.zoom_range = AugmentParams::zoom(real()?),
                "hflip" => p.horizontal_flip = flag()?,
                "vflip" => p.vertical_flip = flag()?,
                "brightness" => p.brightness_range = Some(pair()?),
                "channel_shift" => p.channel_shift_range = real()?,
                "fill" => p.fill_mode = text()?.parse().map_err(|e| format!("fill={e}"))?,
                "cval" => p.cval = single()?,
                "rescale" => p.rescale = Some(single()?),
                "" => return Err(format!("`{s}`: an empty item (two commas, or one at an end)")),
                _ => return Err(format!("unknown `{key}`: expected none, or {KEYS}")),
            }
            seen.push(key);
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
        assert!(err("hflip=maybe").contains("not yes or no"));
        assert!(err("rotation=10,rotation=20").contains("already set by `rotation`"));
        assert!(err("shift=0.1,wshift=0.2").contains("already set by `shift`"));
        assert!(err("rescale=0").contains("rescale: must be a number in (0, 1000000], got 0"));
        assert!(err("rotation=30,").contains("an empty item"));
    }

    #[test]
    fn flips_mean_what_they_say_and_fractions_are_numbers() {
        let p = |s: &str| s.parse::<AugmentParams>().unwrap();
        for (spelling, meaning) in BOOLEANS {
            assert_eq!(p(&format!("hflip={spelling}")).horizontal_flip, meaning, "hflip={spelling}");
            assert_eq!(p(&format!("vflip={}", spelling.to_uppercase())).vertical_flip, meaning, "vflip={spelling}");
        }
        assert!(p("hflip").horizontal_flip && !p("hflip").vertical_flip);
        assert_eq!(p("rescale=1/255").rescale, Some(1.0 / 255.0));
        assert_eq!(p("rescale=1./255").rescale, Some((1.0f64 / 255.0) as f32));
    }

    /// What an item list must give, worked out apart from the parser: each item sets its
    /// field to the number it names (`a/b` a fraction), a flag to its word's meaning (alone:
    /// yes); an unknown key, a repeated one, a word that is no number or no yes/no, or values
    /// out of range refuse the whole list.
    fn model(items: &[(&str, Option<&str>)]) -> Option<AugmentParams> {
        let mut p = AugmentParams::default();
        for (i, &(key, value)) in items.iter().enumerate() {
            if items[..i].iter().any(|(k, _)| *k == key) {
                return None;
            }
            let real = || value.and_then(number);
            let single = || match value? {
                v if v.contains('/') => number(v).map(|r| r as f32),
                v => v.parse::<f32>().ok(),
            };
            match key {
                "rotation" => p.rotation_range = real()?,
                "wshift" => p.width_shift_range = real()?,
                "shear" => p.shear_range = real()?,
                "channel_shift" => p.channel_shift_range = real()?,
                "rescale" => p.rescale = Some(single()?),
                "hflip" => p.horizontal_flip = value.map_or(Some(true), boolean)?,
                "vflip" => p.vertical_flip = value.map_or(Some(true), boolean)?,
                _ => return None,
            }
        }
        Augmenter::new(p.clone()).ok().map(|_| p)
    }

    /// Seeded random item lists: each either parses to exactly what [`model`] says, and
    /// prints and parses back the same, or is refused where the model refuses it; nothing is
    /// silently read as something else.
    #[test]
    fn random_specs_parse_to_what_they_say_or_are_refused() {
        let keys = ["rotation", "wshift", "shear", "channel_shift", "rescale", "hflip", "vflip", "spin"];
        let values = [
            None,
            Some("0"),
            Some("0.2"),
            Some("1"),
            Some("30"),
            Some("-1"),
            Some("nan"),
            Some("inf"),
            Some("1e9"),
            Some("x"),
            Some(""),
            Some("1/255"),
            Some("true"),
            Some("Off"),
            Some("no"),
            Some("2"),
        ];
        let mut rng = imgclf_dataset::Rng::new(24);
        let (mut parsed, mut refused) = (0, 0);
        for _ in 0..5000 {
            let items: Vec<(&str, Option<&str>)> =
                (0..1 + rng.below(3)).map(|_| (keys[rng.below(keys.len())], values[rng.below(values.len())])).collect();
            let spec: Vec<String> = items
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k.to_string(),
                })
                .collect();
            let spec = spec.join(",");
            match (spec.parse::<AugmentParams>(), model(&items)) {
                (Ok(p), Some(want)) => {
                    assert_eq!(p, want, "`{spec}`");
                    assert_eq!(p.to_string().parse::<AugmentParams>().unwrap(), p, "`{spec}` round trip");
                    parsed += 1;
                }
                (Err(_), None) => refused += 1,
                (Ok(p), None) => panic!("`{spec}` should be refused, parsed as {p:?}"),
                (Err(e), Some(_)) => panic!("`{spec}` should parse, refused: {e}"),
            }
        }
        assert!(parsed > 500 && refused > 500, "both outcomes drawn: {parsed} parsed, {refused} refused");
    }
}
