//! A deterministic generator of Workday-style HR exports ("Worker Export"
//! CSV files), for tests, examples and benchmarks.
//!
//! The same `(rows, seed)` always gives the same bytes, on every platform
//! and with every version of every dependency: each row draws from its own
//! splitmix64 generator seeded with a hash of `(seed, row index)`, and
//! nothing else is random. With `change_percent` above zero the population
//! is the same as without, except that about that share of the people differ
//! in one or two attributes (moved department, new title, relocated, or
//! terminated), as the next night's export would. Whether and how a row
//! changes is drawn from a second per-row generator, so the base rows never
//! shift.
#![forbid(unsafe_code)]

use std::io::{self, Write};

/// The export's header row.
pub const HEADER: &str = "Employee ID,First Name,Last Name,Preferred Name,Work Email,Department,Job Title,Manager ID,Location,Worker Status,Hire Date,Termination Date,Roles";

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenOptions {
    /// Number of people (data rows).
    pub rows: u64,
    /// The same rows and seed give the same file.
    pub seed: u64,
    /// Share of people (0 to 100) that differ from the file generated with
    /// the same seed and `change_percent = 0`.
    pub change_percent: f64,
}

/// The splitmix64 output function: a bijection on `u64` that mixes well.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// splitmix64 (Steele, Lea and Flood, 2014): tiny, fast, and fixed here for
/// good, unlike library generators whose streams may change between
/// versions.
struct Rng(u64);

impl Rng {
    /// The generator for one row of one stream: `key` already mixes in the
    /// seed and the stream, and `mix` is a bijection, so no two rows of a
    /// stream start from the same state.
    fn for_row(key: u64, row: u64) -> Self {
        Rng(mix(key ^ row))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A number in `0..n` (`0` when `n` is 0). The modulo bias is far below
    /// anything a test file could show.
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// An index into a list of `len` other than `current`.
    fn other_index(&mut self, len: usize, current: usize) -> usize {
        if len < 2 {
            return current;
        }
        (current + 1 + self.index(len - 1)) % len
    }
}

/// Mixed into the seed to separate the base stream from the change stream.
const BASE_STREAM: u64 = 0x6261_7365_0000_0001;
const CHANGE_STREAM: u64 = 0x6368_616E_6765_0002;

const FIRST: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Katherine",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "José",
    "Zoë",
    "Søren",
    "Chloé",
    "Ngozi",
    "Hiroshi",
    "Priya",
    "Mateo",
    "Aisha",
    "Olek",
    "Fatima",
    "Liam",
    "Mei",
    "Noah",
    "Ingrid",
    "Tomás",
    "Yuki",
    "Amara",
    "Björn",
    "Leila",
    "Émile",
    "Siobhan",
    "Rafael",
    "Hannah",
    "Dmitri",
    "Lucía",
    "Kwame",
    "Anaïs",
    "Oliver",
    "Sara",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Johnson",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "García",
    "Müller",
    "O'Brien",
    "Nakamura",
    "Okafor",
    "Patel",
    "Smith, Jr.",
    "Kowalski",
    "Rossi",
    "Nguyen",
    "Andersen",
    "\"Doc\" Brown",
    "Dubois",
    "Kim",
    "Jørgensen",
    "Schröder",
    "King, III",
    "Fernández",
    "Wright",
    "Haddad",
    "Mensah",
    "Ivanova",
    "Costa",
    "Lindqvist",
    "Murphy",
    "Chen",
    "Novák",
    "Walker",
    "Yilmaz",
    "Baker",
];
/// Nicknames for the few people with a preferred name.
const PREFERRED: &[&str] = &[
    "Al", "Kate", "Meg", "Bea", "Sam", "Alex", "Jo", "Pat", "Max", "Liz", "Rafa", "Dima",
];
const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Finance",
    "Human Resources",
    "Legal",
    "Marketing",
    "Operations",
    "Sales",
    "Customer Support",
    "Research",
    "Facilities",
    "Procurement",
    "Security",
    "Design",
    "Data & Analytics",
    "Executive Office",
];
const TITLES: &[&str] = &[
    "Analyst",
    "Senior Analyst",
    "Engineer",
    "Senior Engineer",
    "Staff Engineer",
    "Manager",
    "Senior Manager",
    "Director",
    "Specialist",
    "Coordinator",
    "Consultant",
    "Associate",
    "Team Lead",
    "Administrator",
    "Architect",
    "Vice President",
];
const LOCATIONS: &[&str] = &[
    "London",
    "New York",
    "Berlin",
    "Tokyo",
    "São Paulo",
    "Bengaluru",
    "Toronto",
    "Sydney",
    "Paris",
    "Zürich",
    "Remote",
];
const ROLES: &[&str] = &[
    "employee",
    "employee;vpn",
    "employee;vpn",
    "employee;vpn;github",
    "employee;finance-app",
    "employee;crm",
    "employee;vpn;crm",
];

/// Days from 2000-01-01 to the first possible hire date, 2008-01-01.
const FIRST_HIRE: u64 = 2922;
/// Days from 2000-01-01 to 2025-01-01: hires happen before this.
const HIRE_END: u64 = 9132;
/// Days from 2000-01-01 to 2025-06-30, the export's "today".
const TODAY: u64 = 9312;

/// A list's entries, prepared once: as CSV fields (quoted where RFC 4180
/// needs it) and, for names, as they appear in an email address.
struct Table {
    csv: Vec<Vec<u8>>,
    mail: Vec<Vec<u8>>,
}

impl Table {
    fn new(list: &[&str]) -> Self {
        Table {
            csv: list.iter().map(|s| csv_field(s)).collect(),
            mail: list.iter().map(|s| mail_part(s)).collect(),
        }
    }
}

/// `s` as a CSV field: quoted, with quotes doubled, when it holds a comma,
/// a quote or a line break (RFC 4180, section 2).
fn csv_field(s: &str) -> Vec<u8> {
    if !s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        return s.as_bytes().to_vec();
    }
    let mut out = Vec::with_capacity(s.len() + 4);
    out.push(b'"');
    for b in s.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
    out
}

/// A name as an address's local part would spell it: lower case, letters
/// folded to ASCII, everything else dropped ("Smith, Jr." → "smithjr").
fn mail_part(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        let folded = match c {
            'á' | 'à' | 'â' | 'ã' | 'ä' | 'å' => "a",
            'æ' => "ae",
            'ç' => "c",
            'é' | 'è' | 'ê' | 'ë' => "e",
            'í' | 'ì' | 'î' | 'ï' => "i",
            'ñ' => "n",
            'ó' | 'ò' | 'ô' | 'õ' | 'ö' | 'ø' => "o",
            'ß' => "ss",
            'ú' | 'ù' | 'û' | 'ü' => "u",
            'ý' | 'ÿ' => "y",
            c if c.is_ascii_alphanumeric() => {
                out.push(c as u8);
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(folded.as_bytes());
    }
    out
}

/// Appends `n` in decimal, at least `width` digits (zero-padded).
fn push_num(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    while digits.len() - i < width {
        i -= 1;
        digits[i] = b'0';
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends the employee ID of 0-based person `index`: `E000001` onwards.
fn push_id(out: &mut Vec<u8>, index: u64) {
    out.push(b'E');
    push_num(out, index + 1, 6);
}

/// Appends a date given in days since 2000-01-01 as `MM/DD/YYYY`.
fn push_date(out: &mut Vec<u8>, days_since_2000: u64) {
    // Howard Hinnant's days-to-civil conversion, in eras of 400 years that
    // start on March 1st; 2000-03-01 starts era 5 and 2000-01-01 is 60 days
    // before it.
    let z = days_since_2000 + 5 * 146_097 - 60;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    push_num(out, month, 2);
    out.push(b'/');
    push_num(out, day, 2);
    out.push(b'/');
    push_num(out, year, 4);
}

/// The attributes of one person that a change may touch.
struct Person {
    department: usize,
    title: usize,
    location: usize,
    status: u8,
    hire: u64,
    termination: Option<u64>,
}

/// Applies one change, drawn from the change stream `c`.
fn change(p: &mut Person, c: &mut Rng) {
    match c.below(4) {
        0 => {
            p.department = c.other_index(DEPARTMENTS.len(), p.department);
            // Half of the moves come with a new title.
            if c.below(2) == 0 {
                p.title = c.other_index(TITLES.len(), p.title);
            }
        }
        1 => p.title = c.other_index(TITLES.len(), p.title),
        2 if p.status == b'T' => p.department = c.other_index(DEPARTMENTS.len(), p.department),
        2 => {
            p.status = b'T';
            p.termination = Some((TODAY - c.below(30)).max(p.hire + 1));
        }
        _ => p.location = c.other_index(LOCATIONS.len(), p.location),
    }
}

/// Writes the export: the header and `opts.rows` people. The output is
/// batched internally, so `out` need not be buffered.
pub fn write_export(mut out: impl Write, opts: &GenOptions) -> io::Result<()> {
    let p = opts.change_percent;
    if !(0.0..=100.0).contains(&p) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "change_percent must be between 0 and 100",
        ));
    }
    // A row changes when its draw falls below this share of 2^64 (the cast
    // saturates at 100%).
    let threshold = (p / 100.0 * 18_446_744_073_709_551_616.0) as u64;
    let base_key = mix(opts.seed ^ BASE_STREAM);
    let change_key = mix(opts.seed ^ CHANGE_STREAM);
    let first = Table::new(FIRST);
    let last = Table::new(LAST);
    let preferred = Table::new(PREFERRED);
    let departments = Table::new(DEPARTMENTS);
    let titles = Table::new(TITLES);
    let locations = Table::new(LOCATIONS);
    let roles = Table::new(ROLES);

    const BATCH: usize = 256 * 1024;
    let mut buf = Vec::with_capacity(BATCH + 1024);
    buf.extend_from_slice(HEADER.as_bytes());
    buf.push(b'\n');
    for i in 0..opts.rows {
        let mut r = Rng::for_row(base_key, i);
        let f = r.index(FIRST.len());
        let l = r.index(LAST.len());
        let nick = (r.below(12) == 0).then(|| r.index(PREFERRED.len()));
        // Managers have smaller indexes, more often small ones: a pyramid.
        let manager = (i >= 3).then(|| {
            let k = r.below(i);
            r.below(k + 1)
        });
        let status = match r.below(100) {
            0..=4 => b'T',
            5..=8 => b'L',
            _ => b'A',
        };
        let hire = FIRST_HIRE + r.below(HIRE_END - FIRST_HIRE);
        let mut person = Person {
            department: r.index(DEPARTMENTS.len()),
            title: r.index(TITLES.len()),
            location: r.index(LOCATIONS.len()),
            status,
            hire,
            termination: None,
        };
        let termination = hire + 30 + r.below(TODAY.saturating_sub(hire + 30) + 1);
        if status == b'T' {
            person.termination = Some(termination);
        }
        let role = r.index(ROLES.len());

        let mut c = Rng::for_row(change_key, i);
        if threshold > 0 && (p >= 100.0 || c.next() < threshold) {
            change(&mut person, &mut c);
        }

        push_id(&mut buf, i);
        buf.push(b',');
        buf.extend_from_slice(&first.csv[f]);
        buf.push(b',');
        buf.extend_from_slice(&last.csv[l]);
        buf.push(b',');
        if let Some(n) = nick {
            buf.extend_from_slice(&preferred.csv[n]);
        }
        buf.push(b',');
        buf.extend_from_slice(&first.mail[f]);
        buf.push(b'.');
        buf.extend_from_slice(&last.mail[l]);
        buf.push(b'+');
        push_num(&mut buf, i + 1, 1);
        buf.extend_from_slice(b"@example.com,");
        buf.extend_from_slice(&departments.csv[person.department]);
        buf.push(b',');
        buf.extend_from_slice(&titles.csv[person.title]);
        buf.push(b',');
        if let Some(m) = manager {
            push_id(&mut buf, m);
        }
        buf.push(b',');
        buf.extend_from_slice(&locations.csv[person.location]);
        buf.push(b',');
        buf.push(person.status);
        buf.push(b',');
        push_date(&mut buf, person.hire);
        buf.push(b',');
        if let Some(t) = person.termination {
            push_date(&mut buf, t);
        }
        buf.push(b',');
        buf.extend_from_slice(&roles.csv[role]);
        buf.push(b'\n');
        if buf.len() >= BATCH {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen(rows: u64, seed: u64, change_percent: f64) -> Vec<u8> {
        let mut v = Vec::new();
        write_export(
            &mut v,
            &GenOptions {
                rows,
                seed,
                change_percent,
            },
        )
        .unwrap();
        v
    }

    fn parse(data: &[u8]) -> Vec<csv::StringRecord> {
        let mut r = csv::Reader::from_reader(data);
        assert_eq!(
            r.headers().unwrap().iter().collect::<Vec<_>>().join(","),
            HEADER
        );
        r.records().map(Result::unwrap).collect()
    }

    /// FNV-1a, to pin the output without storing it.
    fn fnv(data: &[u8]) -> u64 {
        data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        assert_eq!(gen(500, 7, 0.0), gen(500, 7, 0.0));
        assert_eq!(gen(500, 7, 3.0), gen(500, 7, 3.0));
        assert_ne!(gen(500, 7, 0.0), gen(500, 8, 0.0));
        // A shorter file is a prefix of a longer one.
        assert!(gen(1000, 7, 0.0).starts_with(&gen(10, 7, 0.0)));
    }

    #[test]
    fn the_output_is_pinned_across_platforms_and_versions() {
        let data = gen(1000, 42, 0.0);
        let text = String::from_utf8(data.clone()).unwrap();
        let first = text.lines().nth(1).unwrap();
        assert_eq!(first, PINNED_FIRST_ROW, "the generator's output changed");
        assert_eq!(fnv(&data), PINNED_HASH, "the generator's output changed");
    }

    const PINNED_FIRST_ROW: &str = "E000001,Søren,Turing,,soren.turing+1@example.com,Customer Support,Specialist,,New York,A,10/16/2024,,employee;finance-app";
    const PINNED_HASH: u64 = 0x81a9_e201_9cbc_4167;

    #[test]
    fn output_is_valid_csv_with_13_columns_and_consistent_fields() {
        let data = gen(5000, 1, 0.0);
        let rows = parse(&data);
        assert_eq!(rows.len(), 5000);
        let (mut quoted, mut accented, mut terminated, mut leave) = (0, 0, 0, 0);
        for (i, rec) in rows.iter().enumerate() {
            assert_eq!(rec.len(), 13);
            assert_eq!(&rec[0], format!("E{:06}", i + 1));
            let email = &rec[4];
            assert!(
                email.ends_with(&format!("+{}@example.com", i + 1)),
                "{email}"
            );
            assert_eq!(email, email.to_ascii_lowercase());
            assert!(email.is_ascii() && !email.contains(' '), "{email}");
            if i < 3 {
                assert_eq!(&rec[7], "");
            } else {
                let m: usize = rec[7][1..].parse().unwrap();
                assert!(m >= 1 && m <= i, "{} manages {}", &rec[7], &rec[0]);
            }
            let date = |s: &str| -> (u32, u32, u32) {
                let p: Vec<u32> = s.split('/').map(|p| p.parse().unwrap()).collect();
                assert!((1..=12).contains(&p[0]) && (1..=31).contains(&p[1]), "{s}");
                (p[2], p[0], p[1])
            };
            let hire = date(&rec[10]);
            assert!((2008..=2024).contains(&hire.0));
            match &rec[9] {
                "T" => {
                    terminated += 1;
                    let t = date(&rec[11]);
                    assert!(t > hire && t <= (2025, 6, 30));
                }
                s => {
                    leave += usize::from(s == "L");
                    assert!(s == "A" || s == "L");
                    assert_eq!(&rec[11], "");
                }
            }
            assert!(rec[12].starts_with("employee"));
            quoted += usize::from(rec[2].contains([',', '"']));
            accented += usize::from(!rec[1].is_ascii() || !rec[2].is_ascii());
        }
        assert!(quoted > 0 && accented > 0 && terminated > 50 && leave > 50);
        let preferred = rows.iter().filter(|r| !r[3].is_empty()).count();
        assert!(preferred > 0 && preferred < 1000);
    }

    #[test]
    fn dates_are_right_across_leap_years() {
        let date = |d: u64| {
            let mut v = Vec::new();
            push_date(&mut v, d);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(date(0), "01/01/2000");
        assert_eq!(date(59), "02/29/2000");
        assert_eq!(date(60), "03/01/2000");
        assert_eq!(date(366), "01/01/2001");
        assert_eq!(date(FIRST_HIRE), "01/01/2008");
        assert_eq!(date(HIRE_END), "01/01/2025");
        assert_eq!(date(TODAY), "06/30/2025");
        // 2100 is not a leap year.
        assert_eq!(date(36_583), "02/28/2100");
        assert_eq!(date(36_584), "03/01/2100");
    }

    #[test]
    fn ids_are_padded_to_six_digits_and_grow_beyond() {
        let id = |i| {
            let mut v = Vec::new();
            push_id(&mut v, i);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(id(0), "E000001");
        assert_eq!(id(999_998), "E999999");
        assert_eq!(id(999_999), "E1000000");
    }

    #[test]
    fn change_percent_changes_about_that_share_and_keeps_the_ids() {
        let base = parse(&gen(10_000, 3, 0.0));
        let next = parse(&gen(10_000, 3, 1.0));
        assert_eq!(base.len(), next.len());
        let mut differ = 0;
        for (a, b) in base.iter().zip(&next) {
            assert_eq!(&a[0], &b[0]);
            let cols: Vec<usize> = (0..13).filter(|&c| a[c] != b[c]).collect();
            if cols.is_empty() {
                continue;
            }
            differ += 1;
            assert!(cols.len() <= 2, "{cols:?}");
            // Department 5, title 6, location 8; a termination is status 9
            // with its date 11.
            assert!(
                matches!(cols.as_slice(), [5] | [6] | [8] | [5, 6] | [9, 11]),
                "{cols:?}"
            );
            if cols == [9, 11] {
                assert_eq!((&b[9], &a[11]), ("T", ""));
            }
        }
        assert!((80..=120).contains(&differ), "{differ}");
        // Over several seeds the share is close to the one asked for.
        let total: usize = (10..15)
            .map(|seed| {
                let a = gen(10_000, seed, 0.0);
                let b = gen(10_000, seed, 1.0);
                a.split(|c| *c == b'\n')
                    .zip(b.split(|c| *c == b'\n'))
                    .filter(|(x, y)| x != y)
                    .count()
            })
            .sum();
        assert!((420..=580).contains(&total), "{total}");
        assert_eq!(gen(300, 3, 100.0).len(), gen(300, 3, 100.0).len());
        let all = parse(&gen(300, 3, 100.0));
        let none = parse(&gen(300, 3, 0.0));
        assert!(all.iter().zip(&none).all(|(a, b)| a != b));
    }

    #[test]
    fn a_bad_change_percent_is_refused() {
        for p in [-1.0, 100.5, f64::NAN] {
            let o = GenOptions {
                rows: 1,
                seed: 1,
                change_percent: p,
            };
            assert!(write_export(Vec::new(), &o).is_err());
        }
    }
}
