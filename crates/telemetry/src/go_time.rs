//! Timestamps as Go's `encoding/json` writes a `time.Time` in UTC (RFC 3339 with nanoseconds, trailing zeros
//! of the fraction removed, `Z` suffix), so JSON bodies match upstream kube-proxy's byte for byte.

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats `t` like Go's `time.Time.MarshalJSON` for a UTC time, without the surrounding quotes.
///
/// Times before 1970 are clamped to Go's zero time (`0001-01-01T00:00:00Z`), which is what an unset
/// `time.Time` prints as.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let Ok(since) = t.duration_since(UNIX_EPOCH) else {
        return "0001-01-01T00:00:00Z".to_string();
    };
    let secs = since.as_secs();
    let nanos = since.subsec_nanos();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Go's zero `time.Time` as JSON text (used when no proxier has ever synced).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a 400-year era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_like_go_json() {
        let cases = [
            (0u64, 0u32, "1970-01-01T00:00:00Z"),
            (1_700_000_000, 0, "2023-11-14T22:13:20Z"),
            (1_700_000_000, 500_000_000, "2023-11-14T22:13:20.5Z"),
            (1_700_000_000, 123_456_789, "2023-11-14T22:13:20.123456789Z"),
            (951_782_400, 1_000, "2000-02-29T00:00:00.000001Z"),
            (4_107_542_399, 0, "2100-02-28T23:59:59Z"),
        ];
        for (secs, nanos, want) in cases {
            let t = UNIX_EPOCH + Duration::new(secs, nanos);
            assert_eq!(rfc3339_nano(t), want, "secs={secs} nanos={nanos}");
        }
    }

    #[test]
    fn before_epoch_is_go_zero_time() {
        let t = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(rfc3339_nano(t), ZERO_TIME);
    }
}
