//! When `muster push --every` and `--cron` run: a fixed interval, or a
//! five-field cron expression in local time, with the rules of the cron
//! most Unix systems ship (crontab(5)).
//!
//! `minute hour day-of-month month day-of-week`; each field `*`, a number,
//! a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, or a comma-separated list
//! of those; months and weekdays also by their English three-letter names;
//! Sunday is 0 or 7. When both day fields are restricted, a day matching
//! either runs (so `0 2 1 * mon` is the 1st of each month and every
//! Monday). `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly` and
//! `@yearly` (`@annually`) stand for their usual expressions.
//!
//! A local time that does not exist (the hour skipped when clocks move
//! forward) is passed over; one that happens twice runs at its first.
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike};

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Both day fields restricted: either may match.
    either_day: bool,
}

/// A field's name, range and the names it takes.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: Field = Field {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
// 7 is Sunday too; folded onto 0 after parsing.
const WEEKDAY: Field = Field {
    name: "day of week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

impl Field {
    fn value(&self, s: &str) -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        let n = match self.names.iter().position(|n| *n == lower) {
            Some(i) => i as u32 + self.min,
            None => s
                .parse::<u32>()
                .map_err(|_| format!("{}: '{s}' is not a number{}", self.name, self.name_hint()))?,
        };
        if n < self.min || n > self.max {
            return Err(format!(
                "{}: {n} is outside {}-{}",
                self.name, self.min, self.max
            ));
        }
        Ok(n)
    }

    fn name_hint(&self) -> &'static str {
        if self.names.is_empty() {
            ""
        } else {
            " or a three-letter name"
        }
    }

    /// The set of values `spec` names, as bits.
    fn parse(&self, spec: &str) -> Result<u64, String> {
        let mut bits = 0u64;
        for item in spec.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step = s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(|| {
                        format!("{}: step '{s}' is not a positive number", self.name)
                    })?;
                    (r, Some(step))
                }
                None => (item, None),
            };
            let (from, to) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(format!("{}: range {a}-{b} runs backwards", self.name));
                }
                (a, b)
            } else if range.is_empty() {
                return Err(format!("{}: an empty item", self.name));
            } else {
                let a = self.value(range)?;
                // `a/n` runs from a to the end, as cron reads it.
                (a, if step.is_some() { self.max } else { a })
            };
            let mut v = from;
            while v <= to {
                bits |= 1 << v;
                v += step.unwrap_or(1);
            }
        }
        Ok(bits)
    }
}

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let expr = expr.trim();
        let expanded = match expr.to_ascii_lowercase().as_str() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            s if s.starts_with('@') => return Err(format!("unknown cron macro '{expr}'")),
            _ => expr,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [m, h, dom, mon, dow] = fields[..] else {
            return Err(format!(
                "a cron expression has five fields (minute hour day-of-month month day-of-week), this one has {}",
                fields.len()
            ));
        };
        let mut weekdays = WEEKDAY.parse(dow)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        let cron = Cron {
            minutes: MINUTE.parse(m)?,
            hours: HOUR.parse(h)?,
            days: DAY.parse(dom)?,
            months: MONTH.parse(mon)?,
            weekdays,
            either_day: !dom.starts_with('*') && !dow.starts_with('*'),
        };
        // A day that never comes (`0 0 30 2 *`) would wait forever.
        let leap = NaiveDate::from_ymd_opt(2028, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
        if leap.is_some_and(|t| cron.next_naive(t).is_none()) {
            return Err(format!("'{expr}' names a day that never comes"));
        }
        Ok(cron)
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().num_days_from_sunday()) != 0;
        if self.either_day {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// The first matching wall-clock minute after `t`, within eight years.
    fn next_naive(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut c = t.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let end = t + Duration::days(8 * 366);
        while c <= end {
            if self.months & (1 << c.month()) == 0 {
                let (y, m) = if c.month() == 12 {
                    (c.year() + 1, 1)
                } else {
                    (c.year(), c.month() + 1)
                };
                c = NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
            } else if !self.day_matches(c.date()) {
                c = c.date().succ_opt()?.and_hms_opt(0, 0, 0)?;
            } else if self.hours & (1 << c.hour()) == 0 {
                c = c.with_minute(0)? + Duration::hours(1);
            } else if self.minutes & (1 << c.minute()) == 0 {
                c += Duration::minutes(1);
            } else {
                return Some(c);
            }
        }
        None
    }

    /// The next time after `now` this expression runs, in `now`'s zone.
    pub fn next_after<Tz: TimeZone>(&self, now: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let zone = now.timezone();
        let mut t = now.naive_local();
        loop {
            let c = self.next_naive(t)?;
            match zone.from_local_datetime(&c) {
                chrono::LocalResult::Single(d) => return Some(d),
                chrono::LocalResult::Ambiguous(first, _) => return Some(first),
                // Skipped by a clock change: the next match after it.
                chrono::LocalResult::None => t = c,
            }
        }
    }
}

/// `--every`: a duration of whole units, `90s`, `15m`, `1h`, `1h30m`, `2d`.
pub fn parse_every(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("'{s}' is not a duration like 30s, 15m, 1h, 1h30m or 1d");
    let mut total = 0u64;
    let mut digits = String::new();
    for ch in s.trim().chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, from: &str) -> String {
        Cron::parse(expr)
            .unwrap()
            .next_after(&at(from))
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn the_next_run_follows_each_field() {
        assert_eq!(
            next("0 2 * * *", "2026-12-04T03:00:00Z"),
            "2026-12-05T02:00:00+00:00"
        );
        assert_eq!(
            next("0 2 * * *", "2026-12-04T01:59:59Z"),
            "2026-12-04T02:00:00+00:00"
        );
        // Strictly after: a run at 02:00 does not run again at 02:00.
        assert_eq!(
            next("0 2 * * *", "2026-12-04T02:00:00Z"),
            "2026-12-05T02:00:00+00:00"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-12-04T03:07:10Z"),
            "2026-12-04T03:15:00+00:00"
        );
        // 9, 13 and 17 on weekdays: Friday 4 December, then Monday.
        assert_eq!(
            next("30 9-17/4 * * mon-fri", "2026-12-04T14:00:00Z"),
            "2026-12-04T17:30:00+00:00"
        );
        assert_eq!(
            next("30 9-17/4 * * mon-fri", "2026-12-04T18:00:00Z"),
            "2026-12-07T09:30:00+00:00"
        );
        assert_eq!(
            next("0 0 29 feb *", "2026-03-01T00:00:00Z"),
            "2028-02-29T00:00:00+00:00"
        );
        assert_eq!(
            next("@monthly", "2026-12-04T00:00:00Z"),
            "2027-01-01T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 * * 7", "2026-12-04T00:00:00Z"),
            "2026-12-06T00:00:00+00:00"
        );
        assert_eq!(
            next("5/20 * * * *", "2026-12-04T00:46:00Z"),
            "2026-12-04T01:05:00+00:00"
        );
    }

    #[test]
    fn two_restricted_day_fields_match_either_day() {
        // The 1st of the month, or any Monday: 2026-12-07 is a Monday.
        assert_eq!(
            next("0 2 1 * mon", "2026-12-02T00:00:00Z"),
            "2026-12-07T02:00:00+00:00"
        );
        assert_eq!(
            next("0 2 1 * mon", "2026-12-29T00:00:00Z"),
            "2027-01-01T02:00:00+00:00"
        );
        // A star in either field makes the other decide alone.
        assert_eq!(
            next("0 2 * * mon", "2026-12-02T00:00:00Z"),
            "2026-12-07T02:00:00+00:00"
        );
    }

    /// Central European time around 2027's spring change: UTC+1 until
    /// 2027-03-28 01:00 UTC, when 02:00 local jumps to 03:00, then UTC+2
    /// until 2027-10-31 01:00 UTC, when 03:00 falls back to 02:00.
    #[derive(Debug, Clone, Copy)]
    struct Cet;

    const SPRING: i64 = 1_806_195_600; // 2027-03-28T01:00:00Z
    const AUTUMN: i64 = 1_824_944_400; // 2027-10-31T01:00:00Z

    impl TimeZone for Cet {
        type Offset = chrono::FixedOffset;
        fn from_offset(_: &chrono::FixedOffset) -> Self {
            Cet
        }
        fn offset_from_local_date(
            &self,
            date: &NaiveDate,
        ) -> chrono::LocalResult<chrono::FixedOffset> {
            self.offset_from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
        }
        fn offset_from_local_datetime(
            &self,
            local: &NaiveDateTime,
        ) -> chrono::LocalResult<chrono::FixedOffset> {
            let fits = |h: i32| {
                let utc = local.and_utc().timestamp() - i64::from(h) * 3600;
                (self
                    .offset_from_utc_datetime(
                        &DateTime::from_timestamp(utc, 0).unwrap().naive_utc(),
                    )
                    .local_minus_utc()
                    == h * 3600)
                    .then(|| chrono::FixedOffset::east_opt(h * 3600).unwrap())
            };
            match (fits(1), fits(2)) {
                (Some(a), Some(b)) => chrono::LocalResult::Ambiguous(b, a),
                (Some(o), None) | (None, Some(o)) => chrono::LocalResult::Single(o),
                (None, None) => chrono::LocalResult::None,
            }
        }
        fn offset_from_utc_date(&self, date: &NaiveDate) -> chrono::FixedOffset {
            self.offset_from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN))
        }
        fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> chrono::FixedOffset {
            let t = utc.and_utc().timestamp();
            let h = if (SPRING..AUTUMN).contains(&t) { 2 } else { 1 };
            chrono::FixedOffset::east_opt(h * 3600).unwrap()
        }
    }

    #[test]
    fn a_skipped_local_time_is_passed_over_and_a_repeated_one_runs_once() {
        let c = Cron::parse("30 2 * * *").unwrap();
        let spring = Cet.with_ymd_and_hms(2027, 3, 27, 12, 0, 0).unwrap();
        // 02:30 does not exist on the 28th: the next run is the 29th's.
        assert_eq!(
            c.next_after(&spring).unwrap().to_rfc3339(),
            "2027-03-29T02:30:00+02:00"
        );
        // 02:30 happens twice on 31 October: it runs at the first.
        let autumn = Cet.with_ymd_and_hms(2027, 10, 30, 12, 0, 0).unwrap();
        let first = c.next_after(&autumn).unwrap();
        assert_eq!(first.to_rfc3339(), "2027-10-31T02:30:00+02:00");
        assert_eq!(
            c.next_after(&first).unwrap().to_rfc3339(),
            "2027-11-01T02:30:00+01:00"
        );
    }

    #[test]
    fn bad_expressions_name_their_field() {
        for (expr, what) in [
            ("0 2 * *", "five fields"),
            ("60 * * * *", "minute: 60 is outside 0-59"),
            ("0 24 * * *", "hour"),
            ("0 0 0 * *", "day of month"),
            ("0 0 * 13 *", "month"),
            ("0 0 * * 8", "day of week"),
            ("0 0 * * fun", "three-letter name"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "backwards"),
            ("0 0 30 2 *", "never comes"),
            ("@often", "unknown cron macro"),
            ("1,,2 * * * *", "empty item"),
        ] {
            let e = Cron::parse(expr).unwrap_err();
            assert!(e.contains(what), "{expr}: {e}");
        }
    }

    #[test]
    fn intervals_are_whole_units() {
        assert_eq!(parse_every("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_every("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_every("2d").unwrap().as_secs(), 172_800);
        for bad in [
            "",
            "0s",
            "1",
            "h",
            "1x",
            "1.5h",
            "-1h",
            "99999999999999999999d",
        ] {
            assert!(parse_every(bad).is_err(), "{bad}");
        }
    }
}
