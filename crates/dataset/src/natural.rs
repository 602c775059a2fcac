use std::cmp::Ordering;

/// Compares strings the way people count: digit runs by value, so `2.jpg` < `10.jpg`.
/// Ties on value (`01` vs `1`) fall back to plain byte order so the order stays total.
///
/// ```
/// let mut files = vec!["cat.10.jpg", "cat.2.jpg", "cat.1.jpg"];
/// files.sort_by(|a, b| imgclf_dataset::natural_cmp(a, b));
/// assert_eq!(files, ["cat.1.jpg", "cat.2.jpg", "cat.10.jpg"]);
/// ```
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    while let (Some(&ca), Some(&cb)) = (x.first(), y.first()) {
        if ca.is_ascii_digit() && cb.is_ascii_digit() {
            let (da, ra) = split_digits(x);
            let (db, rb) = split_digits(y);
            let (ta, tb) = (trim_zeros(da), trim_zeros(db));
            let ord = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb));
            if ord != Ordering::Equal {
                return ord;
            }
            (x, y) = (ra, rb);
        } else {
            if ca != cb {
                return ca.cmp(&cb);
            }
            (x, y) = (&x[1..], &y[1..]);
        }
    }
    x.len().cmp(&y.len()).then_with(|| a.cmp(b))
}

fn split_digits(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    s.split_at(n)
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        v.sort_by(|a, b| natural_cmp(a, b));
        v
    }

    #[test]
    fn numbers_sort_by_value_not_by_characters() {
        assert_eq!(
            sorted(&["10.jpg", "2.jpg", "1.jpg", "100.jpg", "20.jpg"]),
            ["1.jpg", "2.jpg", "10.jpg", "20.jpg", "100.jpg"]
        );
    }

    #[test]
    fn prefixed_names_and_several_digit_runs() {
        assert_eq!(
            sorted(&["cat.10.jpg", "cat.9.jpg", "dog.1.jpg", "cat.1.jpg"]),
            ["cat.1.jpg", "cat.9.jpg", "cat.10.jpg", "dog.1.jpg"]
        );
        assert_eq!(
            sorted(&["00012_00010.png", "00012_00002.png", "00002_00029.png"]),
            ["00002_00029.png", "00012_00002.png", "00012_00010.png"]
        );
    }

    #[test]
    fn leading_zeros_tie_break_keeps_order_total() {
        assert_eq!(natural_cmp("01", "1"), "01".cmp("1"));
        assert_ne!(natural_cmp("01", "1"), Ordering::Equal);
        assert_eq!(natural_cmp("a", "a"), Ordering::Equal);
        assert_eq!(natural_cmp("a", "a1"), Ordering::Less);
    }
}
