//! One pass over a text finds every detector's matches (a multi-pattern regex, run only where a
//! match can start: `starts`), validators and the allow-list weed out lookalikes, and each match
//! is masked, hashed, or marks the value for dropping.

use hmac::{Hmac, Mac};
use regex_automata::meta::Regex;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, PatternID};
use sha2::Sha256;

use rlibphonenumber::Region;

use super::config::{Action, RedactConfig};
use super::detectors::{self, BUILTINS, Starts, Validator};
use super::starts::StartRules;

/// One enabled detector.
pub struct Detector {
    pub name: String,
    pub action: Action,
    mask: String,
    validate: Option<Validator>,
    /// The pattern anchored at both ends, for validated detectors: checks a shorter piece of a
    /// match that failed validation.
    whole: Option<Regex>,
    /// For `secret` (`password=...`): redact the value, keep the key.
    value_only: bool,
}

/// Detector types found in a value, as a bit set over detector indices.
pub type Found = u64;

/// The most detectors one scanner holds (a bit each in [`Found`]).
pub const MAX_DETECTORS: usize = 64;

pub struct Scanner {
    /// Every detector's pattern, in priority order.
    regex: Regex,
    /// Where `regex` is run (anchored): the places a match can start.
    starts: StartRules,
    pub detectors: Vec<Detector>,
    allow: Option<regex::RegexSet>,
    hash_key: Vec<u8>,
    /// Where national phone numbers (without `+CC`) are recognised.
    phone_regions: Vec<Region>,
}

/// What deciding on one candidate looked at.
struct Looked {
    /// The end of the longest match tried.
    reach: usize,
    /// A context rule refused the candidate or a piece of it.
    by_context: bool,
}

/// The accepted matches of a text.
#[derive(Debug, PartialEq, Eq)]
pub struct Matches {
    pub hits: Vec<Hit>,
    /// A hit lies where masking it changes how a refused candidate reads: in or just after the
    /// candidate, within [`detectors::CONTEXT`] bytes before it (a phone number beside a
    /// number is refused, beside a mask it may not be), or a hit starts or ends inside a word
    /// (moving a word boundary). The output must then be scanned again, until a pass is
    /// settled: redacting what was stored must find nothing. Elsewhere a second pass would see
    /// the same candidates with the same neighbours, so one pass is enough.
    pub unsettled: bool,
}

/// One accepted match: the detector, and the bytes to replace (for `key=value` secrets, the
/// value only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub detector: usize,
    pub start: usize,
    pub end: usize,
}

/// What redacting one text did.
pub struct Outcome {
    /// The rewritten text, when anything was masked or hashed.
    pub text: Option<String>,
    pub found: Found,
    /// A detector with action `drop` matched: the whole value must go.
    pub drop: bool,
}

impl Scanner {
    /// The scanner of `config`'s enabled built-ins, patterns and deny-lists, in that order.
    pub fn new(config: &RedactConfig) -> Result<Self, String> {
        let mut patterns: Vec<String> = Vec::new();
        let mut starts: Vec<Starts> = Vec::new();
        let mut detectors = Vec::new();
        let mut add = |name: &str, pattern: String, validate, action, value_only, start| {
            let whole = match validate {
                Some(_) => Some(build(&[format!("^(?:{pattern})$")])?),
                None => None,
            };
            patterns.push(pattern);
            starts.push(start);
            detectors.push(Detector {
                name: name.to_owned(),
                action,
                mask: format!("[REDACTED:{}]", name.to_ascii_uppercase()),
                validate,
                whole,
                value_only,
            });
            Ok::<(), String>(())
        };
        for (name, action) in config.enabled_builtins() {
            let b = BUILTINS
                .iter()
                .find(|b| b.name == name)
                .ok_or_else(|| format!("unknown detector {name:?}"))?;
            add(
                b.name,
                b.pattern.to_owned(),
                b.validate,
                action,
                b.name == "secret",
                b.starts,
            )?;
        }
        for c in config.enabled_custom() {
            add(
                &c.name,
                c.regex,
                c.validator,
                c.action,
                false,
                Starts::Anywhere,
            )?;
        }
        if detectors.len() > MAX_DETECTORS {
            return Err(format!("at most {MAX_DETECTORS} detectors can be enabled"));
        }
        let regex = build(&patterns)?;
        let starts = StartRules::new(&patterns, &starts, syntax(), HYBRID_CACHE_BYTES, build)?;
        let allow = if config.allow.is_empty() {
            None
        } else {
            let anchored: Vec<String> = config.allow.iter().map(|p| format!("^(?:{p})$")).collect();
            Some(
                regex::RegexSet::new(anchored)
                    .map_err(|e| format!("invalid allow pattern: {e}"))?,
            )
        };
        Ok(Self {
            regex,
            starts,
            detectors,
            allow,
            hash_key: config.hash_key.expose().as_bytes().to_vec(),
            phone_regions: config.phone_region_ids(),
        })
        .inspect(Scanner::warm_up)
    }

    /// Builds the phone metadata's patterns of every region now (tens of milliseconds, once per
    /// process), so the first span with a phone number does not wait for them.
    fn warm_up(&self) {
        if self
            .detectors
            .iter()
            .any(|d| d.validate == Some(Validator::Phone))
        {
            for region in &self.phone_regions {
                detectors::phone("020 7946 0018", &[*region]);
            }
        }
    }

    /// The names of the detectors in `found`.
    pub fn names(&self, found: Found) -> impl Iterator<Item = &str> {
        self.detectors
            .iter()
            .enumerate()
            .filter(move |(i, _)| found & (1 << i) != 0)
            .map(|(_, d)| d.name.as_str())
    }

    fn allowed(&self, text: &str) -> bool {
        self.allow.as_ref().is_some_and(|a| a.is_match(text))
    }

    /// The length of the longest accepted piece of `text[start..end]` from its start: the whole
    /// match, or, when a validator refuses it (a greedy match that ran into the next number),
    /// the longest piece ending at a word end that still matches the pattern and validates.
    /// A phone number is never a piece of a longer number (`10.0.20716.1514`, `05/19/2011 01:16`).
    fn accepted_len(
        &self,
        detector: &Detector,
        text: &str,
        start: usize,
        end: usize,
        looked: &mut Looked,
    ) -> Option<usize> {
        let matched = &text[start..end];
        let Some(validate) = detector.validate else {
            return (!self.allowed(matched)).then_some(matched.len());
        };
        // The context first: it is cheap, and a phone number's validation parses it for every
        // default region.
        let mut valid = |piece: &str| {
            let (before, after) = (&text[..start], &text[start + piece.len()..]);
            let context = match validate {
                Validator::Phone => !detectors::not_a_phone(before, piece, after),
                Validator::Ipv6 => !detectors::not_an_address(before, after),
                _ => true,
            };
            looked.by_context |= !context;
            context && validate.check(piece, &self.phone_regions)
        };
        if valid(matched) {
            return (!self.allowed(matched)).then_some(matched.len());
        }
        let whole = detector.whole.as_ref()?;
        let bytes = matched.as_bytes();
        (1..bytes.len())
            .rev()
            .filter(|&i| bytes[i - 1].is_ascii_alphanumeric() && !bytes[i].is_ascii_alphanumeric())
            .map(|i| &matched[..i])
            .find(|piece| whole.is_match(piece.as_bytes()) && valid(piece))
            .filter(|piece| !self.allowed(piece))
            .map(str::len)
    }

    /// The detector and length accepted at `start`: the search's own match first; when its
    /// validator refuses it, every other detector anchored at the same place, in priority order
    /// (a failed card number may still start with a phone number or an SSN).
    fn accept_at(
        &self,
        text: &str,
        start: usize,
        first: usize,
        end: usize,
        looked: &mut Looked,
    ) -> Option<(usize, usize)> {
        looked.reach = looked.reach.max(end);
        if let Some(len) = self.accepted_len(&self.detectors[first], text, start, end, looked) {
            return Some((first, len));
        }
        (0..self.detectors.len())
            .filter(|&i| i != first)
            .find_map(|i| {
                let input = Input::new(text.as_bytes())
                    .range(start..)
                    .anchored(Anchored::Pattern(PatternID::new(i).ok()?));
                let m = self.regex.search(&input)?;
                if m.is_empty() || !text.is_char_boundary(m.end()) {
                    return None;
                }
                looked.reach = looked.reach.max(m.end());
                self.accepted_len(&self.detectors[i], text, start, m.end(), looked)
                    .map(|len| (i, len))
            })
    }

    /// Every accepted match in `text`, in order, without overlaps.
    pub fn find(&self, text: &str) -> Vec<Hit> {
        self.matches(text).hits
    }

    /// Every accepted match in `text`, and whether masking them could make a refused
    /// candidate acceptable (see [`Matches::unsettled`]).
    pub fn matches(&self, text: &str) -> Matches {
        let bytes = text.as_bytes();
        if bytes.len() < SHORT {
            return self.matches_by_full_search(text);
        }
        let mut cursor = self.starts.cursor(bytes, &self.regex);
        self.matches_from(text, |at| cursor.next_match(at))
    }

    /// [`Scanner::matches`] by an unanchored search over every byte: what the start rules
    /// must not change (the tests and the fuzz target compare the two).
    #[doc(hidden)]
    pub fn matches_by_full_search(&self, text: &str) -> Matches {
        self.matches_from(text, |at| {
            self.regex.find(Input::new(text.as_bytes()).range(at..))
        })
    }

    /// The accepted matches, given the leftmost-first match starting at or after a position.
    fn matches_from(
        &self,
        text: &str,
        mut next: impl FnMut(usize) -> Option<regex_automata::Match>,
    ) -> Matches {
        let bytes = text.as_bytes();
        let mut hits: Vec<Hit> = Vec::new();
        let mut unsettled = false;
        // How far the refused candidates so far reached.
        let mut refused_reach = None;
        let mut at = 0;
        while at < bytes.len() {
            let Some(m) = next(at) else {
                break;
            };
            if m.is_empty() {
                at = m.end() + 1;
                continue;
            }
            // Custom patterns may match inside a multi-byte character; widen to whole ones.
            let (mut start, mut end) = (m.start(), m.end());
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            while !text.is_char_boundary(end) {
                end += 1;
            }
            let mut looked = Looked {
                reach: end,
                by_context: false,
            };
            let accepted = self.accept_at(text, start, m.pattern().as_usize(), end, &mut looked);
            let Some((detector, len)) = accepted else {
                // A lookalike, for every detector: move on by one character.
                unsettled |= looked.by_context
                    && hits
                        .last()
                        .is_some_and(|h| start <= h.end + detectors::CONTEXT);
                refused_reach = refused_reach.max(Some(looked.reach));
                at = start + text[start..].chars().next().map_or(1, char::len_utf8);
                continue;
            };
            end = start + len;
            unsettled |= refused_reach.is_some_and(|r| r + AFTER >= start)
                || mid_word(bytes, start)
                || mid_word(bytes, end);
            let value_start = if self.detectors[detector].value_only {
                start + secret_value_offset(&text[start..end])
            } else {
                start
            };
            hits.push(Hit {
                detector,
                start: value_start,
                end,
            });
            at = end;
        }
        Matches { hits, unsettled }
    }

    /// What `hits` (from [`Scanner::find`] on `text`) amount to: the rewritten text, the types
    /// found, whether a `drop` detector matched.
    pub fn apply(&self, text: &str, hits: &[Hit]) -> Outcome {
        let mut out: Option<String> = None;
        let mut copied = 0;
        let mut found: Found = 0;
        let mut drop = false;
        for hit in hits {
            let detector = &self.detectors[hit.detector];
            found |= 1 << hit.detector;
            match detector.action {
                Action::Drop => drop = true,
                Action::Off => {}
                Action::Mask | Action::Hash => {
                    let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
                    buf.push_str(&text[copied..hit.start]);
                    if detector.action == Action::Mask {
                        buf.push_str(&detector.mask);
                    } else {
                        self.push_hash(buf, &detector.name, &text[hit.start..hit.end]);
                    }
                    copied = hit.end;
                }
            }
        }
        if let Some(buf) = &mut out {
            buf.push_str(&text[copied..]);
        }
        Outcome {
            text: out,
            found,
            drop,
        }
    }

    /// Finds, checks and redacts every match in `text`, so that redacting the result finds
    /// nothing.
    pub fn redact(&self, text: &str) -> Outcome {
        self.redact_matches(text, &self.matches(text))
    }

    /// Redacts `matches` (of `text`, or of text of the same length and word structure), then,
    /// while a pass is unsettled, its output again.
    pub fn redact_matches(&self, text: &str, matches: &Matches) -> Outcome {
        let mut outcome = self.apply(text, &matches.hits);
        let mut unsettled = matches.unsettled;
        for _ in 1..MAX_PASSES {
            let Some(text) = outcome
                .text
                .as_deref()
                .filter(|_| unsettled && !outcome.drop)
            else {
                break;
            };
            let again = self.matches(text);
            let next = self.apply(text, &again.hits);
            outcome.found |= next.found;
            outcome.drop |= next.drop;
            unsettled = again.unsettled;
            match next.text {
                Some(text) => outcome.text = Some(text),
                None => break,
            }
        }
        outcome
    }

    /// Whether any detector matches anywhere (validators and allow-list applied).
    pub fn detects(&self, text: &str) -> bool {
        self.redact(text).found != 0
    }

    /// `[TYPE:hash]`: keyed HMAC-SHA256 of the value, its first 48 bits as 12 letters `a`-`p`
    /// (hex with letters for digits, so a hash never reads as a number another detector sees).
    fn push_hash(&self, buf: &mut String, name: &str, value: &str) {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.hash_key) else {
            buf.push_str("[REDACTED]");
            return;
        };
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        buf.push('[');
        buf.push_str(&name.to_ascii_uppercase());
        buf.push(':');
        for byte in &digest[..6] {
            buf.push(char::from(b'a' + (byte >> 4)));
            buf.push(char::from(b'a' + (byte & 0x0f)));
        }
        buf.push(']');
    }
}

/// The most passes [`Scanner::redact_matches`] makes over one text; each masks text that was
/// not a mask before, so passes end on their own, and the bound only caps pathological input.
const MAX_PASSES: usize = 8;

/// Texts shorter than this are searched over every byte in one go: for a short value (most
/// attributes) that costs less than finding candidates and searching at each.
const SHORT: usize = 64;

/// How many bytes after a candidate its validity reads (a join and a digit: `0532 089-4`).
const AFTER: usize = 2;

/// Whether `at` falls between two word bytes (ASCII, as the detectors' `\b`).
fn mid_word(bytes: &[u8], at: usize) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    at > 0 && bytes.get(at - 1).is_some_and(word) && bytes.get(at).is_some_and(word)
}

/// Room for the lazy DFA's states. The detectors together need more than the default (2 MiB)
/// on number-heavy text; when the cache keeps filling, the search falls back to slower engines.
const HYBRID_CACHE_BYTES: usize = 16 << 20;

/// The detectors' syntax: ASCII classes and word boundaries, patterns over bytes.
fn syntax() -> syntax::Config {
    syntax::Config::new().unicode(false).utf8(false)
}

fn build(patterns: &[String]) -> Result<Regex, String> {
    Regex::builder()
        .syntax(syntax())
        .configure(Regex::config().hybrid_cache_capacity(HYBRID_CACHE_BYTES))
        .build_many(patterns)
        .map_err(|e| format!("invalid pattern: {e}"))
}

/// Where the value of `key = value` starts: after the separator, spaces and an opening quote.
fn secret_value_offset(matched: &str) -> usize {
    let bytes = matched.as_bytes();
    let Some(sep) = bytes.iter().position(|b| *b == b':' || *b == b'=') else {
        return 0;
    };
    let mut i = sep + 1;
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'"' | b'\'') {
        i += 1;
    }
    i
}
