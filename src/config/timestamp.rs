//! RFC 3339 timestamps for scheduled events (`"2026-12-01T10:00:00Z"`,
//! `"2026-12-01T11:00:00+01:00"`), as milliseconds since the Unix epoch, and back for logs and
//! pages. Written out (a few lines of calendar arithmetic) rather than pulling in a date crate.

/// Days from 1970-01-01 to the civil date (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn number(text: &str) -> Option<u32> {
    text.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse().ok())
        .flatten()
}

/// Parses an RFC 3339 date-time with a `Z` or `±HH:MM` offset (fractional seconds allowed) into
/// milliseconds since the epoch. `None` when it is not one, or is before 1970.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let mut date_parts = date.splitn(3, '-');
    let (y, mo, d) = (date_parts.next()?, date_parts.next()?, date_parts.next()?);
    if y.len() != 4 || mo.len() != 2 || d.len() != 2 {
        return None;
    }
    let (year, month, day) = (i64::from(number(y)?), number(mo)?, number(d)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let (time, offset_s) = if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        (time, 0i64)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (time, offset) = rest.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (oh, om) = offset[1..].split_once(':')?;
        if oh.len() != 2 || om.len() != 2 || number(oh)? > 23 || number(om)? > 59 {
            return None;
        }
        (
            time,
            sign * i64::from(number(oh)? * 3_600 + number(om)? * 60),
        )
    };
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock = hms.splitn(3, ':');
    let (h, mi, s) = (clock.next()?, clock.next()?, clock.next()?);
    if h.len() != 2 || mi.len() != 2 || s.len() != 2 {
        return None;
    }
    let (hour, minute, second) = (number(h)?, number(mi)?, number(s)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let millis = if fraction.is_empty() {
        0
    } else {
        number(fraction)?;
        fraction
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(3)
            .fold(0, |ms, b| ms * 10 + u64::from(b - b'0'))
    };
    let seconds = days_from_civil(year, month, day) * 86_400
        + i64::from(hour * 3_600 + minute * 60 + second.min(59))
        - offset_s;
    u64::try_from(seconds).ok().map(|s| s * 1_000 + millis)
}

/// Formats milliseconds since the epoch as RFC 3339 in UTC, to the second.
pub fn format_rfc3339(ms: u64) -> String {
    let seconds = (ms / 1_000) as i64;
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-12-01T10:00:00Z"),
            Some(1_796_119_200_000)
        );
        assert_eq!(
            parse_rfc3339("2026-12-01T11:00:00+01:00"),
            parse_rfc3339("2026-12-01T10:00:00Z")
        );
        assert_eq!(
            parse_rfc3339("2026-12-01T05:30:00-04:30"),
            parse_rfc3339("2026-12-01T10:00:00Z")
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00.25Z"),
            Some(1_709_164_800_250)
        );
    }

    #[test]
    fn refuses_what_is_not_a_timestamp() {
        for bad in [
            "2026-12-01",
            "2026-12-01T10:00:00",
            "2026-13-01T10:00:00Z",
            "2025-02-29T10:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T10:00Z",
            "1969-12-31T23:59:59Z",
            "tomorrow",
            "2026-12-01T10:00:00+1:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_back() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2026-12-01T10:00:00Z",
            "2024-02-29T23:59:59Z",
        ] {
            assert_eq!(format_rfc3339(parse_rfc3339(text).expect(text)), text);
        }
    }
}
