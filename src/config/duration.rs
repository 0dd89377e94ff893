//! Human durations in config files: `"250ms"`, `"30s"`, `"5m"`, `"2h"`, `"1d"`.

use std::time::Duration;

/// Parses a duration written as a whole number followed by a unit (`ms`, `s`, `m`, `h`, `d`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| {
        format!("`{text}` has no unit: write it like \"30s\", \"5m\" or \"250ms\"")
    })?;
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` must start with a whole number, like \"30s\""))?;
    let millis = match unit {
        "ms" => Some(value),
        "s" => value.checked_mul(1_000),
        "m" => value.checked_mul(60_000),
        "h" => value.checked_mul(3_600_000),
        "d" => value.checked_mul(86_400_000),
        _ => {
            return Err(format!(
                "`{text}` has unknown unit `{unit}` (use ms, s, m, h or d)"
            ))
        }
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_duration(" 1d "), Ok(Duration::from_secs(86_400)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("s").unwrap_err().contains("whole number"));
        assert!(parse_duration("3x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("-3s").is_err());
        assert!(parse_duration("1.5s").is_err());
    }
}
