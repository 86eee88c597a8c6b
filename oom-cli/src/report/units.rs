//! Values as pprof's measurement package prints them: unit families (bytes, time,
//! GCU) with pprof's aliases, scaling to a fixed or the largest fitting unit, the
//! two-decimal labels and the six-character percentages of `-top`.

/// One unit of a family: canonical name, lower-case aliases, size in base units.
struct Unit {
    name: &'static str,
    aliases: &'static [&'static str],
    factor: f64,
}

/// A family of convertible units; the default is used when the target is unknown.
struct UnitFamily {
    units: &'static [Unit],
    default: usize,
}

const BYTE_UNITS: &[Unit] = &[
    Unit {
        name: "B",
        aliases: &["b", "byte"],
        factor: 1.0,
    },
    Unit {
        name: "kB",
        aliases: &["kb", "kbyte", "kilobyte"],
        factor: 1024.0,
    },
    Unit {
        name: "MB",
        aliases: &["mb", "mbyte", "megabyte"],
        factor: 1048576.0,
    },
    Unit {
        name: "GB",
        aliases: &["gb", "gbyte", "gigabyte"],
        factor: 1073741824.0,
    },
    Unit {
        name: "TB",
        aliases: &["tb", "tbyte", "terabyte"],
        factor: 1099511627776.0,
    },
    Unit {
        name: "PB",
        aliases: &["pb", "pbyte", "petabyte"],
        factor: 1125899906842624.0,
    },
];

const TIME_UNITS: &[Unit] = &[
    Unit {
        name: "ns",
        aliases: &["ns", "nanosecond"],
        factor: 1.0,
    },
    Unit {
        name: "us",
        aliases: &["μs", "us", "microsecond"],
        factor: 1e3,
    },
    Unit {
        name: "ms",
        aliases: &["ms", "millisecond"],
        factor: 1e6,
    },
    Unit {
        name: "s",
        aliases: &["s", "sec", "second"],
        factor: 1e9,
    },
    Unit {
        name: "hrs",
        aliases: &["hour", "hr"],
        factor: 3600e9,
    },
];

const GCU_UNITS: &[Unit] = &[
    Unit {
        name: "n*GCU",
        aliases: &["nanogcu"],
        factor: 1e-9,
    },
    Unit {
        name: "u*GCU",
        aliases: &["microgcu"],
        factor: 1e-6,
    },
    Unit {
        name: "m*GCU",
        aliases: &["milligcu"],
        factor: 1e-3,
    },
    Unit {
        name: "GCU",
        aliases: &["gcu"],
        factor: 1.0,
    },
    Unit {
        name: "k*GCU",
        aliases: &["kilogcu"],
        factor: 1e3,
    },
    Unit {
        name: "M*GCU",
        aliases: &["megagcu"],
        factor: 1e6,
    },
    Unit {
        name: "G*GCU",
        aliases: &["gigagcu"],
        factor: 1e9,
    },
    Unit {
        name: "T*GCU",
        aliases: &["teragcu"],
        factor: 1e12,
    },
    Unit {
        name: "P*GCU",
        aliases: &["petagcu"],
        factor: 1e15,
    },
];

const FAMILIES: &[UnitFamily] = &[
    UnitFamily {
        units: BYTE_UNITS,
        default: 0,
    },
    // Seconds are the time default.
    UnitFamily {
        units: TIME_UNITS,
        default: 3,
    },
    UnitFamily {
        units: GCU_UNITS,
        default: 3,
    },
];

impl UnitFamily {
    /// The unit a profile's unit string names: case-insensitive, a plural `s` dropped
    /// from names longer than two bytes (`bytes`, `nanoseconds`).
    fn sniff(&self, unit: &str) -> Option<&'static Unit> {
        let lower = unit.to_lowercase();
        let key = if lower.len() > 2 {
            lower.strip_suffix('s').unwrap_or(&lower)
        } else {
            &lower
        };
        self.units.iter().find(|u| u.aliases.contains(&key))
    }

    fn convert(&self, value: i64, from: &str, to: &str) -> Option<(f64, &'static str)> {
        let from = self.sniff(from)?;
        let v = value as f64 * from.factor;
        let default = &self.units[self.default];
        if to == "minimum" || to == "auto" {
            // The largest unit in which the value is at least 1.
            let best = self.units.iter().filter(|u| v / u.factor >= 1.0).fold(
                None::<&Unit>,
                |b, u| match b {
                    Some(b) if b.factor > u.factor => Some(b),
                    _ => Some(u),
                },
            );
            return Some(match best {
                Some(u) => (v / u.factor, u.name),
                None => (v / default.factor, default.name),
            });
        }
        Some(match self.sniff(to) {
            Some(u) => (v / u.factor, u.name),
            None => (v / default.factor, default.name),
        })
    }
}

/// `value` in `from` units expressed in `to` (a unit, or `minimum`/`auto` for the
/// largest fitting one): the number and the unit's name (empty for plain counts).
pub fn scale(value: i64, from: &str, to: &str) -> (f64, String) {
    if value < 0 && value != i64::MIN {
        let (v, u) = scale(-value, from, to);
        return (-v, u);
    }
    for family in FAMILIES {
        if let Some((v, u)) = family.convert(value, from, to) {
            return (v, u.to_string());
        }
    }
    match to {
        "count" | "sample" | "unit" | "minimum" | "auto" => (value as f64, String::new()),
        _ => (value as f64, to.to_string()),
    }
}

/// `value` as pprof labels it: two decimals unless they are `.00`, then the unit;
/// zero is `0` without a unit.
pub fn scaled_label(value: i64, from: &str, to: &str) -> String {
    let (v, u) = scale(value, from, to);
    let s = format!("{v:.2}");
    let s = s.strip_suffix(".00").unwrap_or(&s);
    if s == "0" || s == "-0" {
        return "0".into();
    }
    format!("{s}{u}")
}

/// `value` as a share of `total`, six characters wide: `  100%`, `76.70%`, ` 0.92%`,
/// `0.015%`, `    0%` (two significant digits under 1%).
pub fn percentage(value: i64, total: i64) -> String {
    let ratio = if total != 0 {
        (value as f64 / total as f64).abs() * 100.0
    } else {
        0.0
    };
    if (99.95..=100.05).contains(&ratio) {
        "  100%".into()
    } else if ratio >= 1.0 {
        format!("{ratio:5.2}%")
    } else {
        format!("{:>5}%", two_significant(ratio))
    }
}

/// A non-negative number with two significant digits in the shortest of fixed or
/// exponent notation, trailing zeros dropped: `0.51`, `0.0012`, `1.2e-05`, `0`
/// (the `%.2g` rule: exponent form below 1e-4 or from 1e2).
fn two_significant(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return if x == 0.0 { "0".into() } else { format!("{x}") };
    }
    // `{:.1e}` rounds to two significant digits: "5.1e-1".
    let e = format!("{x:.1e}");
    let Some((mant, exp)) = e.split_once('e') else {
        return e;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    if !(-4..2).contains(&exp) {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", exp.abs());
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        format!("0.{zeros}{digits}")
    } else {
        // exp is 0 or 1: the point falls inside or after the digits.
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{digits}{}", "0".repeat(int_len - digits.len()))
        } else {
            format!("{}.{}", &digits[..int_len], &digits[int_len..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_like_pprof() {
        assert_eq!(scaled_label(0, "bytes", "MB"), "0");
        assert_eq!(scaled_label(40 << 20, "bytes", "MB"), "40MB");
        assert_eq!(scaled_label(66_584_576, "bytes", "MB"), "63.50MB");
        assert_eq!(scaled_label(524_861, "bytes", "kB"), "512.56kB");
        assert_eq!(scaled_label(671_088, "bytes", "MB"), "0.64MB");
        assert_eq!(scaled_label(12881, "count", "count"), "12881");
        assert_eq!(scaled_label(-2048, "bytes", "kB"), "-2kB");
        assert_eq!(scaled_label(1_500_000, "nanoseconds", "auto"), "1.50ms");
        assert_eq!(scaled_label(30_000_000_000, "nanoseconds", "auto"), "30s");
        assert_eq!(scaled_label(3, "bytes", "minimum"), "3B");
        assert_eq!(scaled_label(7, "widgets", "widgets"), "7widgets");
    }

    #[test]
    fn scale_picks_the_largest_fitting_unit() {
        assert_eq!(scale(1023, "bytes", "minimum").1, "B");
        assert_eq!(scale(1024, "bytes", "minimum").1, "kB");
        assert_eq!(scale(5 << 30, "bytes", "minimum").1, "GB");
        assert_eq!(scale(0, "bytes", "minimum").1, "B");
        assert_eq!(scale(12, "count", "minimum").1, "");
        assert_eq!(scale(1, "kilobytes", "B"), (1024.0, "B".into()));
    }

    #[test]
    fn percentages_like_pprof() {
        assert_eq!(percentage(100, 100), "  100%");
        assert_eq!(percentage(9996, 10000), "  100%");
        assert_eq!(percentage(7670, 10000), "76.70%");
        assert_eq!(percentage(92, 10000), " 0.92%");
        assert_eq!(percentage(2, 12922), "0.015%");
        assert_eq!(percentage(0, 12922), "    0%");
        assert_eq!(percentage(1, 10_000_000), "1e-05%");
        assert_eq!(percentage(12, 10_000_000), "0.00012%");
        assert_eq!(percentage(5, 0), "    0%");
        assert_eq!(percentage(-50, 100), "50.00%");
        assert_eq!(percentage(995, 100_000), "    1%");
        assert_eq!(percentage(9996, 1_000_000), "    1%");
    }

    #[test]
    fn two_significant_digits() {
        assert_eq!(two_significant(0.51234), "0.51");
        assert_eq!(two_significant(0.5), "0.5");
        assert_eq!(two_significant(0.0012), "0.0012");
        assert_eq!(two_significant(0.000012), "1.2e-05");
        assert_eq!(two_significant(0.00001), "1e-05");
        assert_eq!(two_significant(0.996), "1");
        assert_eq!(two_significant(0.0999), "0.1");
    }
}
