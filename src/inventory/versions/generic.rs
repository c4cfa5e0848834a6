//! The fallback for ecosystems with no comparator: runs of digits compared as numbers, runs of
//! letters as text, a digit run above a letter run, a longer version above its prefix. Callers
//! flag every answer made with it.

use std::cmp::Ordering;

fn runs(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let digit = b[i].is_ascii_digit();
        let start = i;
        while i < b.len() && b[i].is_ascii_alphanumeric() && b[i].is_ascii_digit() == digit {
            i += 1;
        }
        out.push(&s[start..i]);
    }
    out
}

pub(super) fn compare(a: &str, b: &str) -> Ordering {
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(&rb) {
        let dx = x.as_bytes()[0].is_ascii_digit();
        let dy = y.as_bytes()[0].is_ascii_digit();
        let o = match (dx, dy) {
            (true, true) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ra.len().cmp(&rb.len())
}
