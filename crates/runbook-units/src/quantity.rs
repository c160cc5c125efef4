//! Kubernetes resource quantities (`1`, `500m`, `2Gi`, `1e3`) parsed to an exact
//! value so that checks compare values, not strings: `1` equals `1000m`.

use std::cmp::Ordering;
use std::fmt;

/// A quantity held exactly as a count of nano-units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity {
    nanos: i128,
}

/// Why a quantity string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {0:?}: expected a number with an optional suffix (m, k, M, G, Ki, Mi, Gi, …)")]
pub struct QuantityError(pub String);

const NANO: i128 = 1_000_000_000;

impl Quantity {
    /// Parses the Kubernetes quantity syntax.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let err = || QuantityError(text.to_string());
        let s = text.trim();
        let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        if number.is_empty() || number == "+" || number == "-" {
            return Err(err());
        }
        let (multiplier, exponent): (i128, i32) = match suffix {
            "" => (1, 0),
            "n" => (1, -9),
            "u" => (1, -6),
            "m" => (1, -3),
            "k" => (1, 3),
            "M" => (1, 6),
            "G" => (1, 9),
            "T" => (1, 12),
            "P" => (1, 15),
            "E" => (1, 18),
            "Ki" => (1 << 10, 0),
            "Mi" => (1 << 20, 0),
            "Gi" => (1 << 30, 0),
            "Ti" => (1 << 40, 0),
            "Pi" => (1 << 50, 0),
            "Ei" => (1 << 60, 0),
            s if s.starts_with(['e', 'E']) => (1, s[1..].parse().map_err(|_| err())?),
            _ => return Err(err()),
        };
        let negative = number.starts_with('-');
        let digits = number.strip_prefix(['+', '-']).unwrap_or(number);
        let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
        if int_part.is_empty() && frac_part.is_empty()
            || !(int_part.chars().chain(frac_part.chars())).all(|c| c.is_ascii_digit())
        {
            return Err(err());
        }
        // value = digits * 10^(exponent - frac_len) * multiplier, in nanos (+9).
        let mantissa: i128 = format!("{int_part}{frac_part}").parse().unwrap_or(0);
        let scale = exponent - frac_part.len() as i32 + 9;
        let mut nanos = mantissa.checked_mul(multiplier).ok_or_else(err)?;
        if scale >= 0 {
            nanos = nanos.checked_mul(10i128.checked_pow(scale as u32).ok_or_else(err)?).ok_or_else(err)?;
        } else {
            // Below a nano-unit Kubernetes rounds up; so do we.
            let div = 10i128.checked_pow((-scale) as u32).ok_or_else(err)?;
            nanos = (nanos + div - 1) / div;
        }
        Ok(Quantity { nanos: if negative { -nanos } else { nanos } })
    }

    /// The value in milli-units (CPU is usually read in millicores).
    pub fn millis(&self) -> i128 {
        self.nanos / 1_000_000
    }

    /// The value in whole units, rounded up (memory in bytes).
    pub fn units_ceil(&self) -> i128 {
        (self.nanos + NANO - 1).div_euclid(NANO)
    }

    /// The value as a float (for ratios and display only).
    pub fn as_f64(&self) -> f64 {
        self.nanos as f64 / NANO as f64
    }
}

impl PartialOrd<i128> for Quantity {
    fn partial_cmp(&self, other: &i128) -> Option<Ordering> {
        self.nanos.partial_cmp(&(other * NANO))
    }
}

impl PartialEq<i128> for Quantity {
    fn eq(&self, other: &i128) -> bool {
        self.nanos == other * NANO
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos % NANO == 0 {
            write!(f, "{}", self.nanos / NANO)
        } else if self.nanos % 1_000_000 == 0 {
            write!(f, "{}m", self.nanos / 1_000_000)
        } else {
            write!(f, "{}n", self.nanos)
        }
    }
}

/// Parses a Redis memory size as redis.conf reads it (`2mb` = 2097152,
/// `2m` = 2000000, `1gb`, plain bytes): Redis's units, not Kubernetes'.
pub fn parse_redis_memory(text: &str) -> Option<u64> {
    let s = text.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().ok()?;
    let mult: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn equal_values_in_different_forms() {
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("0.5"), q("500m"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1e3"), q("1k"));
        assert_eq!(q("2Gi").units_ceil(), 2 * 1024 * 1024 * 1024);
        assert!(q("500m") < q("1"));
        assert_eq!(q("1"), 1i128);
        assert_eq!(q("250m").millis(), 250);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "m", "1x", "abc", "1..2", "--1"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn displays_compactly() {
        assert_eq!(q("1000m").to_string(), "1");
        assert_eq!(q("0.5").to_string(), "500m");
    }

    #[test]
    fn redis_units_are_not_kubernetes_units() {
        assert_eq!(parse_redis_memory("2mb"), Some(2_097_152));
        assert_eq!(parse_redis_memory("2m"), Some(2_000_000));
        assert_eq!(parse_redis_memory("100"), Some(100));
        assert_eq!(parse_redis_memory("2 mb"), None);
    }
}
