//! Alpine (apk) versions, as apk-tools orders them: `N(.N)*[letter](_suffix[N])*[~hash][-rN]`.
//! The first number compares as a number, later ones too unless either starts with `0` (then
//! as text, apk's "fractional" rule); more numbers rank higher; a letter ranks above none;
//! suffixes `_alpha < _beta < _pre < _rc < (none) < _cvs < _svn < _git < _hg < _p`; then the
//! `-r` revision. Wolfi and Chainguard use the same versions.

use std::cmp::Ordering;

const PRE: [&str; 4] = ["alpha", "beta", "pre", "rc"];
const POST: [&str; 5] = ["cvs", "svn", "git", "hg", "p"];

#[derive(Debug)]
struct Parsed<'a> {
    numbers: Vec<&'a str>,
    letter: Option<u8>,
    /// (rank: negative for pre-release suffixes, positive for post-release, number)
    suffixes: Vec<(i32, u64)>,
    revision: u64,
}

fn parse(v: &str) -> Result<Parsed<'_>, String> {
    let (body, revision) = match v.rsplit_once("-r") {
        Some((b, r)) if !r.is_empty() && r.bytes().all(|c| c.is_ascii_digit()) => {
            (b, r.parse::<u64>().map_err(|e| e.to_string())?)
        }
        _ => (v, 0),
    };
    let body = body.split_once('~').map_or(body, |(b, _hash)| b);
    let (main, suffix_part) = match body.split_once('_') {
        Some((m, s)) => (m, Some(s)),
        None => (body, None),
    };
    let (numeric, letter) = match main.as_bytes().last() {
        Some(c) if c.is_ascii_lowercase() => (&main[..main.len() - 1], Some(*c)),
        _ => (main, None),
    };
    let numbers: Vec<&str> = numeric.split('.').collect();
    if numbers
        .iter()
        .any(|n| n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()))
    {
        return Err("the version does not start with dot-separated numbers".to_owned());
    }
    let mut suffixes = Vec::new();
    if let Some(s) = suffix_part {
        for part in s.split('_') {
            let cut = part
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(part.len());
            let (name, num) = part.split_at(cut);
            let rank = if let Some(i) = PRE.iter().position(|p| *p == name) {
                i as i32 - PRE.len() as i32
            } else if let Some(i) = POST.iter().position(|p| *p == name) {
                i as i32 + 1
            } else {
                return Err(format!("unknown suffix _{name}"));
            };
            let num = if num.is_empty() {
                0
            } else {
                num.parse::<u64>()
                    .map_err(|_| format!("the suffix number {num:?} is not a number"))?
            };
            suffixes.push((rank, num));
        }
    }
    Ok(Parsed {
        numbers,
        letter,
        suffixes,
        revision,
    })
}

pub(super) fn compare<'a>(a: &'a str, b: &'a str) -> Result<Ordering, (&'a str, String)> {
    let pa = parse(a).map_err(|r| (a, r))?;
    let pb = parse(b).map_err(|r| (b, r))?;
    for (i, (x, y)) in pa.numbers.iter().zip(&pb.numbers).enumerate() {
        let o = if i > 0 && (x.starts_with('0') || y.starts_with('0')) {
            x.cmp(y)
        } else {
            let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        };
        if o != Ordering::Equal {
            return Ok(o);
        }
    }
    let o = pa
        .numbers
        .len()
        .cmp(&pb.numbers.len())
        .then_with(|| pa.letter.cmp(&pb.letter));
    if o != Ordering::Equal {
        return Ok(o);
    }
    for i in 0..pa.suffixes.len().max(pb.suffixes.len()) {
        let o = match (pa.suffixes.get(i), pb.suffixes.get(i)) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some((rank, _)), None) => rank.cmp(&0),
            (None, Some((rank, _))) => 0.cmp(rank),
            (None, None) => Ordering::Equal,
        };
        if o != Ordering::Equal {
            return Ok(o);
        }
    }
    Ok(pa.revision.cmp(&pb.revision))
}

#[cfg(test)]
mod tests {
    use super::super::{assert_equal, assert_increasing, compare, Scheme};

    #[test]
    fn apk_order() {
        assert_increasing(
            Scheme::Apk,
            &[
                "1.0_alpha",
                "1.0_alpha1",
                "1.0_beta2",
                "1.0_pre1",
                "1.0_rc1",
                "1.0",
                "1.0-r1",
                "1.0-r10",
                "1.0_cvs",
                "1.0_git20240101",
                "1.0_p1",
                "1.0a",
                "1.0b",
                "1.0.1",
                "1.01",
                "1.1",
                "1.2.3_p2-r0",
                "1.2.4",
                "1.10",
                "3.1.4-r5",
                "3.3.0-r0",
            ],
        );
        assert_equal(Scheme::Apk, &[("1.2.4-r0", "1.2.4"), ("2.0~abc123", "2.0")]);
        assert!(compare(Scheme::Apk, "1.0_bogus", "1.0").is_err());
        assert!(compare(Scheme::Apk, "x1", "1.0").is_err());
    }
}
