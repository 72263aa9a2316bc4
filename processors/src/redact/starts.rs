//! Where a match can start, so that the scanner runs its automaton at a few places of a text
//! instead of over every byte.
//!
//! Most built-in detectors hold a particular byte close to the start of every match
//! ([`Starts::Near`]): a digit within two bytes (card, SSN, IBAN, phone, IPv4), `@` within 64
//! (email), `:` or `=` within 17 (secret), `:` within 4 (IPv6). The others begin with literals
//! (`sk-`, `eyJ`, `-----BEGIN`) that a regex's own prefilter finds fast; they and every user
//! pattern make up the *lead* regex, searched as a whole regex was before. A position is a
//! *candidate* when the lead regex matches there or when a byte some enabled detector needs lies
//! within that detector's reach after it.
//!
//! Guarantee: every match of every detector starts at a candidate (the lead's by its search,
//! the others by their bytes). So the first candidate at which the full regex matches, searched
//! anchored there, is where an unanchored leftmost-first search would find its match, and the
//! anchored match is that match: same pattern, same end. The scanner's answers are those of a
//! search over every byte (the tests compare both on texts made of detector material).

use std::panic::{RefUnwindSafe, UnwindSafe};

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::meta::Regex;
use regex_automata::util::pool::{Pool, PoolGuard};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, Match};

use super::detectors::Starts;

type MakeCache = Box<dyn Fn() -> Cache + Send + Sync + UnwindSafe + RefUnwindSafe>;

/// The enabled detectors' start rules, as one table, and the automaton run at candidates.
pub struct StartRules {
    /// Per byte: how far before it a match holding it may start; [`NONE`] when no detector
    /// needs it.
    reach: [u16; 256],
    /// The largest reach.
    far: usize,
    /// The least and greatest near bytes: bytes outside are skipped a block at a time (the
    /// built-ins' `0-9 : = @` span `0x30..=0x40`).
    lo: u8,
    span: u8,
    /// The detectors found by search, when there are any.
    lead: Option<Regex>,
    /// Every detector, searched anchored at a candidate: the lazy DFA the full regex runs,
    /// without a regex's per-search set-up (most candidates end after a byte or two).
    anchored: DFA,
    caches: Pool<Cache, MakeCache>,
}

const NONE: u16 = u16::MAX;

impl StartRules {
    /// Rules for `patterns` (every enabled detector's, in priority order) from each one's
    /// [`Starts`]; `build` makes a regex as the scanner makes its own.
    pub fn new(
        patterns: &[String],
        starts: &[Starts],
        syntax: syntax::Config,
        cache_bytes: usize,
        build: impl Fn(&[String]) -> Result<Regex, String>,
    ) -> Result<Self, String> {
        let lead: Vec<String> = patterns
            .iter()
            .zip(starts)
            .filter(|(_, s)| **s == Starts::Anywhere)
            .map(|(p, _)| p.clone())
            .collect();
        let lead = (!lead.is_empty()).then(|| build(&lead)).transpose()?;
        let anchored = DFA::builder()
            .syntax(syntax)
            .configure(DFA::config().cache_capacity(cache_bytes))
            .build_many(patterns)
            .map_err(|e| format!("invalid pattern: {e}"))?;
        let dfa = anchored.clone();
        let caches = Pool::new(Box::new(move || dfa.create_cache()) as MakeCache);
        let mut reach = [NONE; 256];
        let mut far = 0;
        for start in starts {
            if let Starts::Near(bytes, within) = *start {
                let within = u16::from(within);
                for &b in bytes {
                    let r = &mut reach[usize::from(b)];
                    *r = if *r == NONE { within } else { (*r).max(within) };
                }
                far = far.max(usize::from(within));
            }
        }
        let near = || (0..=255u8).filter(|&b| reach[usize::from(b)] != NONE);
        let lo = near().min().unwrap_or(u8::MAX);
        let span = near().max().map_or(0, |hi| hi - lo);
        Ok(Self {
            reach,
            far,
            lo,
            span,
            lead,
            anchored,
            caches,
        })
    }

    /// A walk over `text`'s candidates; `full` is the regex of every pattern, for the rare
    /// search the lazy DFA gives up on.
    pub fn cursor<'a>(&'a self, text: &'a [u8], full: &'a Regex) -> Cursor<'a> {
        Cursor {
            rules: self,
            text,
            full,
            cache: self.caches.get(),
            near: None,
            lead: None,
        }
    }
}

/// Candidates of one text, asked for in increasing order of `at`. Each kind remembers its last
/// answer, which stays the answer until `at` passes it.
pub struct Cursor<'a> {
    rules: &'a StartRules,
    text: &'a [u8],
    full: &'a Regex,
    cache: PoolGuard<'a, Cache, MakeCache>,
    /// The first run of near-byte candidates at or after some earlier `at`:
    /// `(from, (start, end))`.
    near: Option<(usize, Option<(usize, usize)>)>,
    /// The lead regex's next match start at or after some earlier `at`.
    lead: Option<(usize, Option<usize>)>,
}

impl Cursor<'_> {
    /// The leftmost-first match of every pattern starting at or after `at`: the match at the
    /// first candidate where there is one.
    pub fn next_match(&mut self, mut at: usize) -> Option<Match> {
        loop {
            let c = self.next(at)?;
            let input = Input::new(self.text).range(c..).anchored(Anchored::Yes);
            match self.rules.anchored.try_search_fwd(&mut self.cache, &input) {
                Ok(Some(end)) => return Some(Match::new(end.pattern(), c..end.offset())),
                Ok(None) => at = c + 1,
                Err(_) => match self.full.search(&input) {
                    Some(m) => return Some(m),
                    None => at = c + 1,
                },
            }
        }
    }

    /// The first candidate at or after `at`.
    fn next(&mut self, at: usize) -> Option<usize> {
        if at > self.text.len() {
            return None;
        }
        let near = match self.near {
            // Nothing in `[from, start)`; `[start, end]` all candidates.
            Some((from, found)) if from <= at && found.is_none_or(|(_, end)| at <= end) => {
                found.map(|(start, _)| start.max(at))
            }
            _ => {
                let found = self.rules.near(self.text, at);
                self.near = Some((at, found));
                found.map(|(start, _)| start)
            }
        };
        let lead = match &self.rules.lead {
            Some(regex) => match self.lead {
                Some((from, found)) if from <= at && found.is_none_or(|f| f >= at) => found,
                _ => {
                    let found = regex
                        .find(Input::new(self.text).range(at..))
                        .map(|m| m.start());
                    self.lead = Some((at, found));
                    found
                }
            },
            None => None,
        };
        match (near, lead) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl StartRules {
    /// The first position at or after `at` that some near byte's reach covers, and the last
    /// position of the run of covered positions it starts (the byte's own). A byte at `i`
    /// covers `[i - reach, i]`; later bytes cover no earlier than `i - far`, so the walk stops
    /// `far` bytes past the best position found.
    fn near(&self, text: &[u8], at: usize) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize)> = None;
        let mut i = at;
        while let Some(found) = self.next_near_byte(text, i) {
            i = found;
            if best.is_some_and(|(start, _)| i >= start + self.far) {
                break;
            }
            // This byte's window `[start, i]` joins the run when they touch (a run may end
            // early: it only has to be all candidates).
            let start = i
                .saturating_sub(usize::from(self.reach[usize::from(text[i])]))
                .max(at);
            best = match best {
                None => Some((start, i)),
                Some((first, end)) if start < first && i + 1 >= first => Some((start, end.max(i))),
                Some((first, _)) if start < first => Some((start, i)),
                Some((first, end)) if start <= end + 1 => Some((first, end.max(i))),
                unchanged => unchanged,
            };
            i += 1;
        }
        best
    }

    /// The first byte at or after `from` that some detector needs.
    fn next_near_byte(&self, text: &[u8], from: usize) -> Option<usize> {
        const BLOCK: usize = 32;
        let in_span = |b: u8| b.wrapping_sub(self.lo) <= self.span;
        let mut i = from;
        // Whole blocks without a byte in the span are skipped with one vector compare.
        while i + BLOCK <= text.len() {
            let block = &text[i..i + BLOCK];
            if block.iter().fold(false, |any, &b| any | in_span(b)) {
                break;
            }
            i += BLOCK;
        }
        text.get(i..)?
            .iter()
            .position(|&b| in_span(b) && self.reach[usize::from(b)] != NONE)
            .map(|p| i + p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(patterns: &[&str], starts: &[Starts]) -> StartRules {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        StartRules::new(&patterns, starts, syntax::Config::new(), 1 << 20, |p| {
            Regex::new_many(p).map_err(|e| e.to_string())
        })
        .expect("rules")
    }

    fn all(rules: &StartRules, text: &str) -> Vec<usize> {
        let full = Regex::new("x").unwrap();
        let mut cursor = rules.cursor(text.as_bytes(), &full);
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(c) = cursor.next(at) {
            out.push(c);
            at = c + 1;
        }
        out
    }

    #[test]
    fn a_byte_covers_the_positions_within_its_reach_before_it() {
        let r = rules(
            &["[0-9]", "@"],
            &[Starts::Near(b"0123456789", 1), Starts::Near(b"@", 4)],
        );
        assert_eq!(all(&r, "ab7 cd"), vec![1, 2]);
        assert_eq!(all(&r, "abcdefg@x"), vec![3, 4, 5, 6, 7]);
        // A later byte with a longer reach comes before an earlier one's.
        assert_eq!(all(&r, "xxxxx9y@"), vec![3, 4, 5, 6, 7]);
        assert_eq!(all(&r, "no candidates here"), Vec::<usize>::new());
        assert_eq!(all(&r, "1"), vec![0]);
        // Runs that do not touch stay apart.
        assert_eq!(all(&r, "1   2  @"), vec![0, 3, 4, 5, 6, 7]);
        assert_eq!(all(&r, "1 2"), vec![0, 1, 2]);
    }

    #[test]
    fn lead_matches_are_candidates_too() {
        let r = rules(
            &["[0-9]", "sk-[a-z]+"],
            &[Starts::Near(b"0123456789", 0), Starts::Anywhere],
        );
        assert_eq!(all(&r, "a sk-x 5 sk-y"), vec![2, 7, 9]);
    }
}
