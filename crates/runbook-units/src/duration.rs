//! Durations as scenario files and lab options write them: `90s`, `2m`,
//! `500ms`, `1h`, `1.5s`.

use std::time::Duration;

/// Parses `90s`, `2m`, `500ms`, `1h`; `None` for anything else, and for
/// durations past a year (a typo, and past u64 seconds they would panic).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok().filter(|d| d.as_secs() <= 366 * 24 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bounds() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3 minutes"), None);
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("9000h"), None);
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("99999999999999999999s"), None, "refused, not a panic");
        assert_eq!(parse_duration("400d"), None);
        assert_eq!(parse_duration("soon"), None);
    }
}
