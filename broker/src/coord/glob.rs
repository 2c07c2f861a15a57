//! Whether two lock patterns can name the same path. Patterns are globs over `/`-separated
//! paths (`*` within a segment, `?` one character, `**` any number of segments; see
//! `plexus_proto::coord::check_lock_pattern`). Each pattern becomes a small automaton and
//! the two are run in product; they overlap when both can accept the same string. Where the
//! automaton is looser than the glob (a `**/` that also accepts a lone `/`), it errs towards
//! "overlaps", which for locks is the safe side.

use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?`: one character, not `/`.
    One,
    /// `*`: any run without `/`.
    Star,
    /// A whole-pattern `**`: anything, including `/` and nothing.
    All,
    /// A trailing `/**`: nothing, or `/` and then anything (so `src/**` covers `src` too).
    Tail,
    /// A leading or inner `**/`: nothing, or any run ending in `/`.
    Dirs,
}

#[derive(Debug, Clone, Copy)]
enum Chars {
    Just(char),
    NotSlash,
    Any,
}

fn meet(a: Chars, b: Chars) -> bool {
    match (a, b) {
        (Chars::Just(x), Chars::Just(y)) => x == y,
        (Chars::Just(x), Chars::NotSlash) | (Chars::NotSlash, Chars::Just(x)) => x != '/',
        _ => true,
    }
}

fn tokens(pattern: &str) -> Vec<Tok> {
    let trimmed = pattern.strip_suffix('/').unwrap_or(pattern);
    // `**/**` means the same as `**`.
    let mut segments: Vec<&str> = trimmed.split('/').collect();
    segments.dedup_by(|b, a| *a == "**" && *b == "**");
    let mut out = Vec::new();
    for (k, seg) in segments.iter().enumerate() {
        let last = k + 1 == segments.len();
        if *seg == "**" {
            if last && k > 0 {
                out.pop(); // the separator before it; Tail brings its own
                out.push(Tok::Tail);
            } else {
                out.push(if last { Tok::All } else { Tok::Dirs });
            }
            continue;
        }
        let mut chars = seg.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    // Validation forbids `**` inside a segment; collapse defensively anyway.
                    while chars.peek() == Some(&'*') {
                        chars.next();
                    }
                    out.push(Tok::Star);
                }
                '?' => out.push(Tok::One),
                c => out.push(Tok::Lit(c)),
            }
        }
        if !last {
            out.push(Tok::Lit('/'));
        }
    }
    out
}

/// A state: token index, and whether we are inside a `Dirs` loop.
type State = (usize, bool);

fn epsilon(toks: &[Tok], s: State) -> Option<State> {
    match (toks.get(s.0), s.1) {
        (Some(Tok::Star | Tok::All | Tok::Dirs | Tok::Tail), false) | (Some(Tok::Tail), true) => Some((s.0 + 1, false)),
        _ => None,
    }
}

fn steps(toks: &[Tok], s: State) -> Vec<(Chars, State)> {
    let (i, in_loop) = s;
    match (toks.get(i), in_loop) {
        (Some(Tok::Dirs), true) => vec![(Chars::Any, (i, true)), (Chars::Just('/'), (i + 1, false))],
        (Some(Tok::Dirs), false) => vec![(Chars::Any, (i, true)), (Chars::Just('/'), (i + 1, false))],
        (Some(Tok::Tail), false) => vec![(Chars::Just('/'), (i, true))],
        (Some(Tok::Tail), true) => vec![(Chars::Any, (i, true))],
        (Some(Tok::Lit(c)), _) => vec![(Chars::Just(*c), (i + 1, false))],
        (Some(Tok::One), _) => vec![(Chars::NotSlash, (i + 1, false))],
        (Some(Tok::Star), _) => vec![(Chars::NotSlash, (i, false))],
        (Some(Tok::All), _) => vec![(Chars::Any, (i, false))],
        (None, _) => vec![],
    }
}

/// Whether some path matches both patterns.
pub fn overlap(a: &str, b: &str) -> bool {
    let (ta, tb) = (tokens(a), tokens(b));
    let mut seen: HashSet<(State, State)> = HashSet::new();
    let mut todo = vec![((0, false), (0, false))];
    while let Some((sa, sb)) = todo.pop() {
        if !seen.insert((sa, sb)) {
            continue;
        }
        if sa == (ta.len(), false) && sb == (tb.len(), false) {
            return true;
        }
        if let Some(next) = epsilon(&ta, sa) {
            todo.push((next, sb));
        }
        if let Some(next) = epsilon(&tb, sb) {
            todo.push((sa, next));
        }
        for (ca, na) in steps(&ta, sa) {
            for (cb, nb) in steps(&tb, sb) {
                if meet(ca, cb) {
                    todo.push((na, nb));
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::overlap;

    /// Ground truth: does `path` match the glob `pattern`?
    fn matches(pattern: &str, path: &str) -> bool {
        fn seg(p: &[char], s: &[char]) -> bool {
            match p.first() {
                None => s.is_empty(),
                Some('*') => (0..=s.len()).any(|k| seg(&p[1..], &s[k..])),
                Some('?') => !s.is_empty() && seg(&p[1..], &s[1..]),
                Some(c) => s.first() == Some(c) && seg(&p[1..], &s[1..]),
            }
        }
        fn segs(p: &[&str], s: &[&str]) -> bool {
            match p.first() {
                None => s.is_empty(),
                Some(&"**") => (0..=s.len()).any(|k| segs(&p[1..], &s[k..])),
                Some(ps) => {
                    !s.is_empty() && {
                        let (pc, sc): (Vec<char>, Vec<char>) = (ps.chars().collect(), s[0].chars().collect());
                        seg(&pc, &sc) && segs(&p[1..], &s[1..])
                    }
                }
            }
        }
        let p: Vec<&str> = pattern.split('/').collect();
        let s: Vec<&str> = path.split('/').collect();
        segs(&p, &s)
    }

    #[test]
    fn known_cases() {
        let yes = [
            ("src/main.rs", "src/main.rs"),
            ("src/main.rs", "src/*.rs"),
            ("src/**", "src/a/b.rs"),
            ("**/*.md", "docs/x.md"),
            ("a/**/b", "a/b"),
            ("a/**/b", "a/x/y/b"),
            ("a*", "*b"),
            ("src/a?.rs", "src/ab.rs"),
            ("**", "anything/at/all"),
            ("src/**", "src"),
        ];
        let no = [
            ("src/*.rs", "src/a/b.rs"),
            ("a/**/b", "a/c"),
            ("*.rs", "*.md"),
            ("docs/*", "src/*"),
            ("src/main.rs", "src/lib.rs"),
            ("a?", "abc"),
            ("src/**", "srcfoo"),
        ];
        for (a, b) in yes {
            assert!(overlap(a, b) && overlap(b, a), "{a} vs {b} should overlap");
        }
        for (a, b) in no {
            assert!(!overlap(a, b) && !overlap(b, a), "{a} vs {b} should not overlap");
        }
    }

    /// Soundness, exhaustively on a small alphabet: whenever one path matches both patterns,
    /// `overlap` says so (it may also say so when none does — the safe direction).
    #[test]
    fn never_misses_a_common_path() {
        let pieces = ["a", "b", "*", "?", "**"];
        let mut patterns = Vec::new();
        for x in pieces {
            patterns.push(x.to_owned());
            for y in pieces {
                patterns.push(format!("{x}/{y}"));
                if x != "**" && y != "**" {
                    patterns.push(format!("{x}{y}"));
                }
                for z in ["a", "*", "**"] {
                    patterns.push(format!("{x}/{y}/{z}"));
                }
            }
        }
        let mut paths = vec![String::new()];
        for len in 1..=5 {
            let mut next = Vec::new();
            for p in paths.iter().filter(|p| p.len() == len - 1) {
                for c in ['a', 'b', '/'] {
                    next.push(format!("{p}{c}"));
                }
            }
            paths.extend(next);
        }
        let valid = |p: &str| !p.is_empty() && p.split('/').all(|s| !s.is_empty());
        let paths: Vec<String> = paths.into_iter().filter(|p| valid(p)).collect();
        for a in &patterns {
            for b in &patterns {
                let common = paths.iter().find(|p| matches(a, p) && matches(b, p));
                if let Some(path) = common {
                    assert!(overlap(a, b), "{a} and {b} both match {path} but overlap() says no");
                }
            }
        }
    }
}
