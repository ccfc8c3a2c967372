//! The strftime subset index names use (`logstash_dateformat`, `index`), checked once at init and
//! rendered in UTC from a record's seconds without libc or a time zone database.

use crate::event::encode::civil_from_days;

/// A parsed strftime pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatePattern {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Conv(u8),
}

/// The conversions understood, for error messages.
pub const ACCEPTED: &str = "a strftime pattern using %Y %y %C %G %g %m %d %e %j %H %I %M %S %p %b %h %B %a %A %u %w %U %W %V %F %T %D %s %n %t %% (UTC)";

const CONVERSIONS: &[u8] = b"YyCGgmdejHIMSpbhBaAuwUWVFTDsnt%";

/// The conversion that is not understood, or `None` for a trailing lone `%`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadConversion(pub Option<char>);

impl DatePattern {
    pub fn parse(pattern: &str) -> Result<DatePattern, BadConversion> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            match chars.next() {
                None => return Err(BadConversion(None)),
                Some(k) if k.is_ascii() && CONVERSIONS.contains(&(k as u8)) => {
                    if !lit.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Conv(k as u8));
                }
                Some(k) => return Err(BadConversion(Some(k))),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Ok(DatePattern { parts })
    }

    /// True when the pattern has no conversion (its text never changes).
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// Appends the pattern rendered for `secs` since the epoch, UTC.
    pub fn render(&self, out: &mut String, secs: i64) {
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let (hh, mm, ss) = (sod / 3600, sod / 60 % 60, sod % 60);
        // 1970-01-01 was a Thursday; 0 = Sunday
        let wday = (days + 4).rem_euclid(7);
        let yday = days - days_from_civil(y, 1, 1); // 0-based
        for p in &self.parts {
            let c = match p {
                Part::Literal(s) => {
                    out.push_str(s);
                    continue;
                }
                Part::Conv(c) => *c,
            };
            match c {
                b'Y' => out.push_str(&y.to_string()),
                b'y' => pad(out, y.rem_euclid(100), 2),
                b'C' => pad(out, y.div_euclid(100), 2),
                b'G' => out.push_str(&iso_week(y, yday, wday).0.to_string()),
                b'g' => pad(out, iso_week(y, yday, wday).0.rem_euclid(100), 2),
                b'm' => pad(out, i64::from(m), 2),
                b'd' => pad(out, i64::from(d), 2),
                b'e' => {
                    if d < 10 {
                        out.push(' ');
                    }
                    out.push_str(&d.to_string());
                }
                b'j' => pad(out, yday + 1, 3),
                b'H' => pad(out, hh, 2),
                b'I' => pad(out, (hh + 11) % 12 + 1, 2),
                b'M' => pad(out, mm, 2),
                b'S' => pad(out, ss, 2),
                b'p' => out.push_str(if hh < 12 { "AM" } else { "PM" }),
                b'b' | b'h' => out.push_str(&MONTHS[m as usize - 1][..3]),
                b'B' => out.push_str(MONTHS[m as usize - 1]),
                b'a' => out.push_str(&DAYS[wday as usize][..3]),
                b'A' => out.push_str(DAYS[wday as usize]),
                b'u' => out.push_str(&(if wday == 0 { 7 } else { wday }).to_string()),
                b'w' => out.push_str(&wday.to_string()),
                b'U' => pad(out, (yday + 7 - wday) / 7, 2),
                b'W' => pad(out, (yday + 7 - (wday + 6) % 7) / 7, 2),
                b'V' => pad(out, iso_week(y, yday, wday).1, 2),
                b'F' => {
                    out.push_str(&y.to_string());
                    out.push('-');
                    pad(out, i64::from(m), 2);
                    out.push('-');
                    pad(out, i64::from(d), 2);
                }
                b'T' => {
                    pad(out, hh, 2);
                    out.push(':');
                    pad(out, mm, 2);
                    out.push(':');
                    pad(out, ss, 2);
                }
                b'D' => {
                    pad(out, i64::from(m), 2);
                    out.push('/');
                    pad(out, i64::from(d), 2);
                    out.push('/');
                    pad(out, y.rem_euclid(100), 2);
                }
                b's' => out.push_str(&secs.to_string()),
                b'n' => out.push('\n'),
                b't' => out.push('\t'),
                _ => out.push('%'),
            }
        }
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn pad(out: &mut String, v: i64, width: usize) {
    let s = v.unsigned_abs().to_string();
    if v < 0 {
        out.push('-');
    }
    for _ in s.len()..width {
        out.push('0');
    }
    out.push_str(&s);
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// ISO 8601 (week-based year, week number) of a day given its year, 0-based day of the year and
/// weekday (0 = Sunday).
fn iso_week(y: i64, yday: i64, wday: i64) -> (i64, i64) {
    let iso_wday = (wday + 6) % 7 + 1; // Monday = 1 … Sunday = 7
    let week = (yday + 1 - iso_wday + 10) / 7;
    if week < 1 {
        let prev = y - 1;
        let prev_days = if is_leap(prev) { 366 } else { 365 };
        return iso_week(prev, yday + prev_days, wday);
    }
    let days_in_year = if is_leap(y) { 366 } else { 365 };
    // the week belongs to next year when its Thursday does
    if yday - (iso_wday - 1) + 3 >= days_in_year {
        return (y + 1, 1);
    }
    (y, week)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: &str, secs: i64) -> String {
        let mut s = String::new();
        DatePattern::parse(p).expect("pattern").render(&mut s, secs);
        s
    }

    #[test]
    fn renders_logstash_default_and_common_conversions() {
        // 2023-11-14T22:13:20Z, a Tuesday, day 318
        let t = 1_700_000_000;
        assert_eq!(r("%Y.%m.%d", t), "2023.11.14");
        assert_eq!(r("%F %T", t), "2023-11-14 22:13:20");
        assert_eq!(r("%y%j %H%M%S %I%p", t), "23318 221320 10PM");
        assert_eq!(
            r("%a %A %b %B %e %u %w", t),
            "Tue Tuesday Nov November 14 2 2"
        );
        assert_eq!(r("%D %C %s 100%%", t), "11/14/23 20 1700000000 100%");
        // just before and at midnight
        assert_eq!(r("%Y.%m.%d", 1_700_006_399), "2023.11.14");
        assert_eq!(r("%Y.%m.%d", 1_700_006_400), "2023.11.15");
        assert_eq!(r("%Y.%m.%d", -1), "1969.12.31");
        assert_eq!(r("logs", t), "logs");
    }

    #[test]
    fn week_numbers_match_known_dates() {
        // (date, %U, %W, %G-%V) from GNU date
        let cases = [
            ("2021-01-01", 0, 0, "2020-53"), // Friday
            ("2021-01-04", 1, 1, "2021-01"), // Monday
            ("2024-12-30", 52, 53, "2025-01"),
            ("2023-01-01", 1, 0, "2022-52"), // Sunday
            ("2020-12-31", 52, 52, "2020-53"),
        ];
        for (date, u, w, gv) in cases {
            let parts: Vec<i64> = date.split('-').map(|p| p.parse().expect("n")).collect();
            let secs = days_from_civil(parts[0], parts[1], parts[2]) * 86_400;
            assert_eq!(r("%U", secs), format!("{u:02}"), "{date} %U");
            assert_eq!(r("%W", secs), format!("{w:02}"), "{date} %W");
            assert_eq!(r("%G-%V", secs), gv, "{date} %G-%V");
        }
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), days);
        }
    }

    #[test]
    fn unknown_conversions_are_refused() {
        assert_eq!(DatePattern::parse("%Y.%Q"), Err(BadConversion(Some('Q'))));
        assert_eq!(DatePattern::parse("%Y%"), Err(BadConversion(None)));
        assert!(DatePattern::parse("plain").expect("ok").is_constant());
        assert!(!DatePattern::parse("%Y").expect("ok").is_constant());
    }
}
