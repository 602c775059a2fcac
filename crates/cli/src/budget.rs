//! `--memory-budget`: how many bytes of feature rows `train-head`, `evaluate` and `predict`
//! hold at once; splits over it are read from the feature files in chunks.

#[derive(clap::Args)]
pub struct BudgetArgs {
    /// Feature rows held in memory at once, e.g. 2GiB or 512MiB (default: a quarter of the
    /// memory available, at most 1.5GiB). Splits that fit are held whole (the same numbers as
    /// ever); bigger ones are read from the feature files in chunks, an epoch visiting the
    /// chunks in a seeded order.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_budget: Option<usize>,
}

impl BudgetArgs {
    /// The flag as given (`None`: the default, which `HeadInputs::open` chooses).
    pub fn given(&self) -> Option<usize> {
        self.memory_budget
    }
}

/// `2GiB`, `512MiB`, `1.5G`, `800MB`, `65536`: binary units for `K`/`M`/`G`/`T` with or
/// without `iB`, decimal for `KB`/`MB`/`GB`/`TB`; plain numbers are bytes.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() || number.parse::<f64>().is_err() {
        return Err(format!("`{}` is not a size such as 2GiB or 512MiB", crate::abbreviate(text)));
    }
    let unit_bytes: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024f64.powi(2),
        "g" | "gib" => 1024f64.powi(3),
        "t" | "tib" => 1024f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => {
            let other = crate::abbreviate(other);
            return Err(format!("unknown unit `{other}` (use B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB)"));
        }
    };
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a size such as 2GiB or 512MiB"))?;
    let bytes = value * unit_bytes;
    if !(1.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!("`{}`: a budget is at least one byte and at most 16 EiB", crate::abbreviate(text)));
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_and_decimal_units_and_nonsense_is_refused() {
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("800MB"), Ok(800_000_000));
        assert_eq!(parse_size("65536"), Ok(65536));
        for bad in ["", "GiB", "2 parsecs", "0", "-1G", "1..2G"] {
            assert!(parse_size(bad).is_err(), "{bad} was accepted");
        }
    }
}
