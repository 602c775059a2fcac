//! The names users type for a library's choices (engines, filters, fill modes, schedules, …):
//! one macro gives such an enum `FromStr` (case-insensitive, with aliases) and `Display` (its
//! first name), so every crate parses and prints its own vocabulary the same way.

/// `"a, b or c"`: the names in a message that lists what is expected.
///
/// ```
/// assert_eq!(imgclf_dataset::one_of(&["auto", "ort", "tract"]), "auto, ort or tract");
/// assert_eq!(imgclf_dataset::one_of(&["fp32"]), "fp32");
/// ```
pub fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Implements `FromStr` and `Display` for an enum of unit variants from its names: the first
/// name of each variant is the one `Display` prints, the others are aliases `FromStr` also
/// takes; parsing ignores case and says what it expected on failure.
///
/// ```
/// #[derive(Debug, PartialEq)]
/// enum Mode { Fast, Exact }
/// imgclf_dataset::named_enum!(Mode { Mode::Fast => "fast" | "quick", Mode::Exact => "exact" });
///
/// assert_eq!("Quick".parse::<Mode>(), Ok(Mode::Fast));
/// assert_eq!(Mode::Exact.to_string(), "exact");
/// assert_eq!("slow".parse::<Mode>(), Err("`slow`: expected fast or exact".to_string()));
/// ```
#[macro_export]
macro_rules! named_enum {
    ($ty:ty { $($variant:path => $name:literal $(| $alias:literal)*),+ $(,)? }) => {
        impl ::std::str::FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s.to_ascii_lowercase().as_str() {
                    $($name $(| $alias)* => Ok($variant),)+
                    _ => Err(format!("`{s}`: expected {}", $crate::one_of(&[$($name),+]))),
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(match self {
                    $($variant => $name,)+
                })
            }
        }
    };
}
