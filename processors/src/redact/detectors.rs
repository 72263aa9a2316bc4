//! The built-in detectors: a pattern each (ASCII-only, so word boundaries are the fast
//! `(?-u:\b)`), and a validator where a checksum or a rule separates real values from lookalikes.

use std::net::Ipv6Addr;

/// A built-in detector: its type name (as in `llmscope.pii.types` and config), its pattern, and
/// an optional check on the matched text.
pub struct Builtin {
    pub name: &'static str,
    pub pattern: &'static str,
    pub validate: Option<fn(&str) -> bool>,
}

/// In priority order: where two could match at one place, the earlier one wins.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "private_key",
        pattern: r"-----BEGIN[A-Z ]{0,30}PRIVATE KEY-----(?:[\x00-\xFF]*?-----END[A-Z ]{0,30}PRIVATE KEY-----|[A-Za-z0-9+/=\s\\]*)",
        validate: None,
    },
    Builtin {
        name: "jwt",
        pattern: r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        validate: None,
    },
    Builtin {
        name: "anthropic_api_key",
        pattern: r"\bsk-ant-[a-z]{2,10}[0-9]{2}-[A-Za-z0-9_-]{20,}",
        validate: None,
    },
    Builtin {
        name: "llmscope_api_key",
        pattern: r"\blls_[A-Za-z0-9]{43}\b",
        validate: None,
    },
    Builtin {
        name: "openai_api_key",
        pattern: r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
        validate: None,
    },
    Builtin {
        name: "aws_access_key",
        pattern: r"\b(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[A-Z0-9]{16}\b",
        validate: None,
    },
    Builtin {
        name: "github_token",
        pattern: r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
        validate: None,
    },
    Builtin {
        name: "secret",
        pattern: r#"(?i)\b(?:password|passwd|pwd|secret|secret[_-]?key|token|api[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|client[_-]?secret|private[_-]?key)["']?[ \t]{0,3}[:=][ \t]{0,3}["']?[^\s"'\[\],;&<>{}\\\x80-\xFF][^\s"',;&<>{}\\\x80-\xFF]{2,}"#,
        validate: None,
    },
    Builtin {
        name: "email",
        pattern: r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b",
        validate: None,
    },
    Builtin {
        name: "iban",
        pattern: r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
        validate: Some(iban_checksum),
    },
    Builtin {
        name: "credit_card",
        pattern: r"\b[0-9](?:[ -]?[0-9]){12,18}\b",
        validate: Some(luhn),
    },
    Builtin {
        name: "ssn",
        pattern: r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
        validate: Some(ssn),
    },
    Builtin {
        name: "phone",
        pattern: r"(?:\+[0-9]{1,3}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-]?[0-9]{2,4}){1,4}\b|(?:\b1[ .-]?)?(?:\([0-9]{3}\)[ .-]?|\b[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}\b)",
        validate: Some(phone),
    },
    Builtin {
        name: "ipv4",
        pattern: r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b",
        validate: None,
    },
    Builtin {
        name: "ipv6",
        pattern: r"(?i)(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}",
        validate: Some(ipv6),
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

/// 7 to 15 digits (E.164 allows at most 15).
pub fn phone(s: &str) -> bool {
    (7..=15).contains(&digits(s).count())
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
        assert!(phone("+1 415 555 0100") && !phone("+1 23"));
        assert!(ipv6("2001:db8::8a2e:370:7334") && ipv6("fe80::1ff:fe23:4567:890a"));
        assert!(!ipv6("12:30:45") && !ipv6("::") && !ipv6("a::"));
    }
}
