//! The built-in detectors: a pattern each (ASCII-only, so word boundaries are the fast
//! `(?-u:\b)`), and a validator where a checksum or a rule separates real values from lookalikes.
//! Validators are named, so a user pattern can take one too (`validator:` in config).

use std::net::Ipv6Addr;

use rlibphonenumber::{PhoneNumber, Region};

/// A built-in detector: its type name (as in `llmscope.pii.types` and config), its pattern, and
/// an optional check on the matched text.
pub struct Builtin {
    pub name: &'static str,
    pub pattern: &'static str,
    pub validate: Option<Validator>,
    /// Where its matches can start (`super::starts`).
    pub starts: Starts,
}

/// What a pattern's every match holds near its start, so a search can skip the text where no
/// match can begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Starts {
    /// Nothing to say: the pattern is searched for everywhere (built-ins that begin with
    /// literals, which the regex's own prefilter finds fast, and every user pattern).
    Anywhere,
    /// One of these bytes, at most this many bytes after the start.
    Near(&'static [u8], u8),
}

const DIGITS: &[u8] = b"0123456789";

/// A check that separates real values from lookalikes among a pattern's matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    /// The Luhn checksum of a 13 to 19 digit card number.
    Luhn,
    /// The ISO 13616 checksum of an IBAN.
    Iban,
    /// The US SSN numbering rules.
    Ssn,
    /// A number valid in its country (`+CC`) or in one of the default regions (libphonenumber's
    /// metadata), not shaped like a date.
    Phone,
    /// A real IPv6 address.
    Ipv6,
}

impl Validator {
    pub const ALL: [Validator; 5] = [
        Validator::Luhn,
        Validator::Iban,
        Validator::Ssn,
        Validator::Phone,
        Validator::Ipv6,
    ];

    /// Its name in config.
    pub fn name(self) -> &'static str {
        match self {
            Validator::Luhn => "luhn",
            Validator::Iban => "iban",
            Validator::Ssn => "ssn",
            Validator::Phone => "phone",
            Validator::Ipv6 => "ipv6",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    /// Whether `text` passes; `regions` are the phone numbers' default regions.
    pub fn check(self, text: &str, regions: &[Region]) -> bool {
        match self {
            Validator::Luhn => luhn(text),
            Validator::Iban => iban_checksum(text),
            Validator::Ssn => ssn(text),
            Validator::Phone => phone(text, regions),
            Validator::Ipv6 => ipv6(text),
        }
    }
}

/// In priority order: where two could match at one place, the earlier one wins.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "private_key",
        pattern: r"-----BEGIN[A-Z ]{0,30}PRIVATE KEY-----(?:[\x00-\xFF]*?-----END[A-Z ]{0,30}PRIVATE KEY-----|[A-Za-z0-9+/=\s\\]*)",
        validate: None,
        starts: Starts::Anywhere,
    },
    Builtin {
        name: "jwt",
        pattern: r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        validate: None,
        starts: Starts::Anywhere,
    },
    Builtin {
        name: "anthropic_api_key",
        pattern: r"\bsk-ant-[a-z]{2,10}[0-9]{2}-[A-Za-z0-9_-]{20,}",
        validate: None,
        starts: Starts::Anywhere,
    },
    Builtin {
        name: "llmscope_api_key",
        pattern: r"\blls_[A-Za-z0-9]{43}\b",
        validate: None,
        starts: Starts::Anywhere,
    },
    Builtin {
        name: "openai_api_key",
        pattern: r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
        validate: None,
        starts: Starts::Anywhere,
    },
    Builtin {
        name: "aws_access_key",
        pattern: r"\b(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[A-Z0-9]{16}\b",
        validate: None,
        starts: Starts::Anywhere,
    },
    Builtin {
        name: "github_token",
        pattern: r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
        validate: None,
        starts: Starts::Anywhere,
    },
    Builtin {
        name: "secret",
        pattern: r#"(?i)\b(?:password|passwd|pwd|secret|secret[_-]?key|token|api[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|client[_-]?secret|private[_-]?key)["']?[ \t]{0,3}[:=][ \t]{0,3}["']?[^\s"'\[\],;&<>{}\\\x80-\xFF][^\s"',;&<>{}\\\x80-\xFF]{2,}"#,
        validate: None,
        // The longest key (`refresh_token`, `client-secret`: 13), a quote, three blanks.
        starts: Starts::Near(b":=", 17),
    },
    Builtin {
        name: "email",
        pattern: r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b",
        validate: None,
        starts: Starts::Near(b"@", 64),
    },
    Builtin {
        name: "iban",
        pattern: r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
        validate: Some(Validator::Iban),
        starts: Starts::Near(DIGITS, 2),
    },
    Builtin {
        name: "credit_card",
        pattern: r"\b[0-9](?:[ -]?[0-9]){12,18}\b",
        validate: Some(Validator::Luhn),
        starts: Starts::Near(DIGITS, 0),
    },
    Builtin {
        name: "ssn",
        pattern: r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
        validate: Some(Validator::Ssn),
        starts: Starts::Near(DIGITS, 0),
    },
    // International (`+CC`, with `(0)` or an area code in parentheses), NANP, national numbers
    // with the area code in parentheses, with a trunk prefix `0` (groups separated by spaces,
    // dots, dashes, slashes or nothing), or in three or more separated groups (Italian and
    // Spanish numbers have no trunk prefix); then an optional extension. Validated.
    Builtin {
        name: "phone",
        pattern: concat!(
            r"(?:\+[0-9]{1,3}[ .-]?(?:\(0\)[ .-]?)?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-]?[0-9]{2,4}){1,4}",
            r"|(?:\b1[ .-]?)?(?:\([0-9]{3}\)[ .-]?|\b[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}",
            r"|\(0?[0-9]{1,5}\)(?:[ .-]?[0-9]){4,14}",
            r"|\b0(?:[ ./-]?[0-9]){6,15}",
            r"|\b[1-9][0-9]{1,3}(?:[ .-][0-9]{2,4}){2,4})",
            r"\b(?:,?[ ]?(?:x|ext\.?|extension)[ ]?[0-9]{1,6}\b)?",
        ),
        validate: Some(Validator::Phone),
        // `+` or `(` before the first digit.
        starts: Starts::Near(DIGITS, 1),
    },
    Builtin {
        name: "ipv4",
        pattern: r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b",
        validate: None,
        starts: Starts::Near(DIGITS, 0),
    },
    Builtin {
        name: "ipv6",
        pattern: r"(?i)(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}",
        validate: Some(Validator::Ipv6),
        starts: Starts::Near(b":", 4),
    },
];

fn digits(s: &str) -> impl Iterator<Item = u32> + '_ {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
}

/// The Luhn checksum of a 13 to 19 digit card number (not all one digit).
pub fn luhn(s: &str) -> bool {
    let ds: Vec<u32> = digits(s).collect();
    if !(13..=19).contains(&ds.len()) || ds.iter().all(|d| *d == ds[0]) {
        return false;
    }
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// ISO 13616: letters to numbers, country and check digits moved to the end, mod 97 == 1.
pub fn iban_checksum(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder: u32 = 0;
    for &b in tail.iter().chain(head) {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// US SSN rules: area not 000, 666 or 9xx; group not 00; serial not 0000.
pub fn ssn(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let [area, group, serial] = parts[..] else {
        return false;
    };
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// The regions whose national numbers (without `+CC`) are recognised when config names none:
/// North America, most of Europe, the largest markets of Asia, Oceania, Latin America and Africa.
pub const DEFAULT_PHONE_REGIONS: &[&str] = &[
    "US", "CA", "GB", "IE", "FR", "DE", "AT", "CH", "BE", "NL", "IT", "ES", "PT", "SE", "NO", "DK",
    "FI", "PL", "JP", "KR", "IN", "AU", "NZ", "BR", "MX", "AR", "ZA",
];

/// A phone number: 7 to 15 digits before any extension (E.164 allows at most 15), not shaped
/// like a date (`2024-01-15`, `01.02.2023`), and valid by libphonenumber's metadata: in its
/// country when written with `+CC`, else in one of `regions`.
pub fn phone(s: &str, regions: &[Region]) -> bool {
    let number = s
        .find(['x', 'e'])
        .map_or(s, |i| s[..i].trim_end_matches([' ', ',']));
    if !(7..=15).contains(&digits(number).count())
        || date_like(number)
        || decimal(number)
        || count_like(number)
    {
        return false;
    }
    let valid = |region: Option<Region>| PhoneNumber::parse(s, region).is_ok_and(|n| n.is_valid());
    if number.starts_with('+') {
        return valid(None);
    }
    regions.iter().any(|r| valid(Some(*r)))
}

/// One dot after `0` or a group without a leading zero (`0.30345960`, `1234.5678`), or dots or
/// slashes beside other separators (`14.04.2021 05`) in a national number: a decimal, a date and
/// time, a list.
fn decimal(s: &str) -> bool {
    if s.starts_with('+') {
        return false;
    }
    let count = |c: char| s.matches(c).count();
    let (dots, slashes, others) = (count('.'), count('/'), count(' ') + count('-'));
    let leading_zero = s.starts_with('0') && !s.starts_with("0.");
    (dots == 1 && others == 0 && !leading_zero)
        || (dots > 0 && (slashes + others) > 0)
        || (slashes > 0 && others > 0)
}

/// A national number written as a count, a version or an address: groups of three after a
/// first of one or two digits, split by spaces or dots (`1 299 000`, `92.296.811`), or dotted
/// groups of at most three digits after a first of one or two, or an IPv4 address (`10.10.150`,
/// `192.168.10.42`). Three groups of three stay
/// candidates: `335 843 264` is a count or an Italian mobile number, which only the words
/// around it tell ([`not_a_phone`]).
fn count_like(s: &str) -> bool {
    if s.starts_with(['+', '(', '0']) {
        return false;
    }
    let Some(sep) = s.bytes().find(|b| matches!(b, b' ' | b'.' | b'-')) else {
        return false;
    };
    let groups: Vec<&str> = s.split(char::from(sep)).collect();
    if groups
        .iter()
        .any(|g| g.is_empty() || !g.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let thousands =
        sep != b'-' && groups.len() >= 3 && lengths[0] <= 2 && lengths[1..].iter().all(|l| *l == 3);
    let ipv4 = groups.len() == 4
        && groups
            .iter()
            .all(|g| g.parse::<u16>().is_ok_and(|v| v <= 255));
    let short_dotted = sep == b'.' && lengths.iter().all(|l| *l <= 3) && (lengths[0] <= 2 || ipv4);
    // `666-12-3456`: shaped as a US SSN, which the SSN detector judges.
    let ssn_shaped = sep == b'-' && lengths == [3, 2, 4];
    // `1234 5698 7654`: a card number, IBAN or account number written in fours.
    let fours = groups.len() >= 3 && lengths.iter().all(|l| *l == 4);
    thousands || short_dotted || ssn_shaped || fours
}

/// Whether a phone candidate between `before` and `after` is not one: it continues a number on
/// either side (a digit and one of `.`, `:`, `/`, `-`, `,` before it, three digits and a space
/// before it, or one of those and a digit after it: `10.0.20716.1514`, `05/19/2011 01:16`),
/// it is three groups of three without a word saying it is a phone number, or it is bare
/// digits labelled as an id (`order #09576781`, `request id 0794051495`).
pub fn not_a_phone(before: &str, candidate: &str, after: &str) -> bool {
    let before = last_bytes(before, CONTEXT);
    if within_a_number(before, after) {
        return true;
    }
    if three_by_three(candidate) {
        // `335 843 264`: a count or an Italian or Spanish mobile number; a number only where
        // the text says so, in the same string (not in another one of a JSON document).
        let near = &before.as_bytes()[before.len().saturating_sub(40)..];
        let near = &near[json_string_start(near)..];
        let near = without_masks(&String::from_utf8_lossy(near)).to_ascii_lowercase();
        return !PHONE_CUES.iter().any(|cue| near.contains(cue));
    }
    if !candidate.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let label = before
        .trim_end_matches([' ', ':', '='])
        .rsplit(|c: char| !c.is_ascii_alphanumeric() && c != '#')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    const LABELS: &[&str] = &[
        "#", "id", "no", "nr", "ref", "order", "invoice", "ticket", "account", "acct", "sku",
        "build", "version", "serial", "batch", "case", "customer", "request", "trace", "span",
    ];
    LABELS.contains(&label.as_str()) || label.ends_with('#')
}

/// Where the last JSON string in `text` starts: after its last quote that touches JSON
/// structure (`":"`, `","`, `{"`), or 0.
fn json_string_start(text: &[u8]) -> usize {
    let structure = |b: Option<&u8>| b.is_some_and(|b| b",:{}[]".contains(b));
    (0..text.len())
        .rev()
        .find(|&i| {
            text[i] == b'"'
                && (structure(i.checked_sub(1).and_then(|j| text.get(j)))
                    || structure(text.get(i + 1)))
        })
        .map_or(0, |i| i + 1)
}

/// How far before a phone candidate [`not_a_phone`] reads (cue words, labels).
pub const CONTEXT: usize = 64;

/// The end of `text`: its last `n` bytes, or a few more to start on a character.
fn last_bytes(text: &str, n: usize) -> &str {
    let mut from = text.len().saturating_sub(n);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    &text[from..]
}

/// `text` without its bracketed pieces: a mask (`[REDACTED:PHONE]`) is no word of the text, so
/// redacting again finds nothing new. A `]` without its `[` closes a mask cut at the start of
/// `text` (a window of context): what came before it goes too.
fn without_masks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' if depth == 0 => out.clear(),
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether an IPv6 candidate between `before` and `after` is a piece of a longer run of
/// colons and hex digits (`::532` of `370::::532`) or of a word (`bbbF::1` of `089bbbF::1`),
/// or runs into a mask: not an address.
pub fn not_an_address(before: &str, after: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    before.ends_with([':', '.'])
        || before.ends_with(word)
        || after.starts_with([':', '['])
        || after.starts_with(word)
}

/// Words that say a number is a phone number, in the languages of the default regions.
const PHONE_CUES: &[&str] = &[
    "phone",
    "call",
    "tel",
    "mobile",
    "cell",
    "fax",
    "whatsapp",
    "ring",
    "dial",
    "contact",
    "reach",
    "sms",
    "text me",
    "number",
    "móvil",
    "movil",
    "llam",
    "cellulare",
    "chiam",
    "numero",
    "número",
    "telefon",
    "handy",
    "portable",
    "appel",
    "ligar",
    "celular",
];

/// Three groups of exactly three digits split by one space or dot each.
fn three_by_three(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 11
        && b[3] == b[7]
        && matches!(b[3], b' ' | b'.')
        && [0, 1, 2, 4, 5, 6, 8, 9, 10]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
}

/// Whether a phone candidate continues a number on either side. A mask (`[REDACTED:...]`)
/// counts as the number it replaced, so redacting again finds nothing new.
fn within_a_number(before: &str, after: &str) -> bool {
    let joins = |b: u8| matches!(b, b'.' | b':' | b'/' | b'-' | b',');
    let number_end = |b: u8| b.is_ascii_digit() || b == b']';
    let before = before.as_bytes();
    let after = after.as_bytes();
    let n = before.len();
    let left = n >= 2 && joins(before[n - 1]) && number_end(before[n - 2]);
    // The tail of a longer run of groups (`4111 1111 1111 1112`, a card number that failed
    // its checksum): a group of three or more digits, or a mask, and a space before it.
    let tail = n >= 2
        && before[n - 1] == b' '
        && (before[n - 2] == b']'
            || (n >= 4 && before[n - 4..n - 1].iter().all(u8::is_ascii_digit)));
    let right =
        after.len() >= 2 && joins(after[0]) && (after[1].is_ascii_digit() || after[1] == b'[');
    left || tail || right
}

/// Three groups of digits split by one kind of `-`, `.` or `/`, one of 4 digits at an end and the
/// others of 1 or 2: a date.
fn date_like(s: &str) -> bool {
    let Some(sep) = s.bytes().find(|b| matches!(b, b'-' | b'.' | b'/')) else {
        return false;
    };
    let groups: Vec<&str> = s.split(char::from(sep)).collect();
    let [a, b, c] = groups[..] else {
        return false;
    };
    let short = |g: &str| (1..=2).contains(&g.len());
    groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()))
        && short(b)
        && ((a.len() == 4 && short(c)) || (short(a) && (c.len() == 4 || c.len() == 2)))
}

/// A real IPv6 address with at least three groups' worth of content (not `::` or `a::`).
pub fn ipv6(s: &str) -> bool {
    let hex_digits = s.bytes().filter(u8::is_ascii_hexdigit).count();
    hex_digits >= 3 && s.parse::<Ipv6Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_accept_real_values_and_reject_lookalikes() {
        assert!(luhn("4111 1111 1111 1111"));
        assert!(luhn("5500-0000-0000-0004"));
        assert!(!luhn("4111 1111 1111 1112"));
        assert!(!luhn("0000000000000000"));
        assert!(iban_checksum("DE89 3704 0044 0532 0130 00"));
        assert!(iban_checksum("GB82WEST12345698765432"));
        assert!(!iban_checksum("GB82WEST12345698765433"));
        assert!(ssn("123-45-6789"));
        assert!(!ssn("666-45-6789") && !ssn("123-00-6789") && !ssn("912-45-6789"));
        let regions: Vec<Region> = DEFAULT_PHONE_REGIONS
            .iter()
            .map(|r| r.parse().expect("region"))
            .collect();
        assert!(phone("+1 415 555 0100", &regions) && !phone("+1 23", &regions));
        assert!(phone("(020) 7496 0083", &regions) && phone("090-3915-0008", &regions));
        assert!(phone("+44 (0)20 7946 0018 ext. 12", &regions));
        assert!(!phone("01.02.2023", &regions) && !phone("2024-01-15", &regions));
        assert!(
            !phone("(020) 7496 0083", &[Region::US]),
            "not national in the US"
        );
        assert!(ipv6("2001:db8::8a2e:370:7334") && ipv6("fe80::1ff:fe23:4567:890a"));
        assert!(!ipv6("12:30:45") && !ipv6("::") && !ipv6("a::"));
    }
}
