//! Go-syntax durations (`30s`, `1m0s`, `500ms`, `1h`, `-1s`): parsing like Go's
//! `time.ParseDuration`, printing like Go's `Duration.String()`, and serde as that string
//! (the way `metav1.Duration` appears in a KubeProxyConfiguration).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A signed duration in nanoseconds, as Go's `time.Duration`. Negative values are kept so
/// validation can reject them by field name instead of failing while parsing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub i64);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time: invalid duration {0:?}")]
pub struct DurationParseError(pub String);

const NANOS_PER_SEC: i64 = 1_000_000_000;

impl GoDuration {
    /// Zero.
    pub const ZERO: GoDuration = GoDuration(0);

    /// Whole seconds.
    pub const fn from_secs(s: i64) -> Self {
        GoDuration(s * NANOS_PER_SEC)
    }

    /// Milliseconds.
    pub const fn from_millis(ms: i64) -> Self {
        GoDuration(ms * 1_000_000)
    }

    /// True when negative.
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// The std duration, or `None` when negative.
    pub fn to_std(self) -> Option<Duration> {
        u64::try_from(self.0).ok().map(Duration::from_nanos)
    }
}

impl From<Duration> for GoDuration {
    fn from(d: Duration) -> Self {
        GoDuration(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }
}

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

impl FromStr for GoDuration {
    type Err = DurationParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = || DurationParseError(input.to_string());
        let (neg, mut rest) = match input.as_bytes().first() {
            Some(b'-') => (true, &input[1..]),
            Some(b'+') => (false, &input[1..]),
            _ => (false, input),
        };
        if rest == "0" {
            return Ok(GoDuration(0));
        }
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let int_part = &rest[..int_len];
            rest = &rest[int_len..];
            let mut frac_part = "";
            if let Some(after_dot) = rest.strip_prefix('.') {
                let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                frac_part = &after_dot[..frac_len];
                rest = &after_dot[frac_len..];
            }
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(bad());
            }
            let unit_len = rest
                .char_indices()
                .find(|(_, c)| c.is_ascii_digit() || *c == '.')
                .map_or(rest.len(), |(i, _)| i);
            let unit = unit_nanos(&rest[..unit_len]).ok_or_else(bad)?;
            rest = &rest[unit_len..];
            let whole: u128 = if int_part.is_empty() {
                0
            } else {
                int_part.parse().map_err(|_| bad())?
            };
            let mut value = whole.checked_mul(unit).ok_or_else(bad)?;
            // Fraction: digits beyond nanosecond precision are dropped, as Go does.
            let mut scale = unit;
            for digit in frac_part.bytes() {
                scale /= 10;
                if scale == 0 {
                    break;
                }
                value += u128::from(digit - b'0') * scale;
            }
            total = total.checked_add(value).ok_or_else(bad)?;
            if total > i64::MAX as u128 + u128::from(neg) {
                return Err(bad());
            }
        }
        let signed = if neg {
            (total as i128).wrapping_neg() as i64
        } else {
            total as i64
        };
        Ok(GoDuration(signed))
    }
}

/// Writes `v` (< 10^prec units) as a decimal fraction with trailing zeros removed.
fn write_frac(out: &mut String, v: u64, prec: u32) {
    let digits = format!("{:0width$}", v, width = prec as usize);
    let trimmed = digits.trim_end_matches('0');
    if !trimmed.is_empty() {
        out.push('.');
        out.push_str(trimmed);
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let neg = self.0 < 0;
        let u = self.0.unsigned_abs();
        let mut out = String::new();
        if neg {
            out.push('-');
        }
        if u == 0 {
            return f.write_str("0s");
        }
        if u < NANOS_PER_SEC as u64 {
            let (div, prec, unit) = if u < 1_000 {
                (1, 0, "ns")
            } else if u < 1_000_000 {
                (1_000, 3, "\u{b5}s")
            } else {
                (1_000_000, 6, "ms")
            };
            out.push_str(&(u / div).to_string());
            write_frac(&mut out, u % div, prec);
            out.push_str(unit);
            return f.write_str(&out);
        }
        let secs = u / NANOS_PER_SEC as u64;
        let nanos = u % NANOS_PER_SEC as u64;
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&s.to_string());
        write_frac(&mut out, nanos, 9);
        out.push('s');
        f.write_str(&out)
    }
}

impl serde::Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_syntax() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("0s", 0),
            ("30s", 30 * NANOS_PER_SEC),
            ("1m0s", 60 * NANOS_PER_SEC),
            ("1h", 3600 * NANOS_PER_SEC),
            ("24h0m0s", 86_400 * NANOS_PER_SEC),
            ("500ms", 500_000_000),
            ("1.5s", 1_500_000_000),
            (".5s", 500_000_000),
            ("1.s", NANOS_PER_SEC),
            ("2h22m", (2 * 3600 + 22 * 60) * NANOS_PER_SEC),
            ("-1s", -NANOS_PER_SEC),
            ("+2s", 2 * NANOS_PER_SEC),
            ("10us", 10_000),
            ("10\u{b5}s", 10_000),
            ("7ns", 7),
            ("1h1m1s1ms", 3_661_001_000_000),
        ];
        for (text, nanos) in cases {
            assert_eq!(text.parse::<GoDuration>(), Ok(GoDuration(*nanos)), "{text}");
        }
    }

    #[test]
    fn rejects_bad_syntax() {
        for text in [
            "",
            "-",
            "30",
            "1x",
            "s",
            "1.2.3s",
            ".s",
            "1h 2m",
            "9999999999h",
        ] {
            assert!(
                text.parse::<GoDuration>().is_err(),
                "{text:?} should not parse"
            );
        }
    }

    #[test]
    fn prints_like_go() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (30 * NANOS_PER_SEC, "30s"),
            (60 * NANOS_PER_SEC, "1m0s"),
            (3600 * NANOS_PER_SEC, "1h0m0s"),
            (900 * NANOS_PER_SEC, "15m0s"),
            (86_400 * NANOS_PER_SEC, "24h0m0s"),
            (1_500_000_000, "1.5s"),
            (500_000_000, "500ms"),
            (1_500_000, "1.5ms"),
            (2_000, "2\u{b5}s"),
            (7, "7ns"),
            (-NANOS_PER_SEC, "-1s"),
        ];
        for (nanos, text) in cases {
            assert_eq!(GoDuration(*nanos).to_string(), *text);
            assert_eq!(
                text.parse::<GoDuration>(),
                Ok(GoDuration(*nanos)),
                "round trip {text}"
            );
        }
    }
}
