//! RubyGems versions (`Gem::Version#<=>`): segments are runs of digits (numbers) and of
//! letters (strings, which make a pre-release); trailing zeros of the release part and of the
//! pre-release part are dropped; a missing segment is 0; a string ranks below a number.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment<'a> {
    Num(u64),
    Str(&'a str),
}

fn parse(v: &str) -> Result<Vec<Segment<'_>>, String> {
    if !v
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
    {
        return Err("a character gem versions do not allow".to_owned());
    }
    if !v.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("does not start with a number".to_owned());
    }
    // `-` stands for `.pre.` in a gem version.
    let b = v.as_bytes();
    let mut segs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphanumeric() {
            if b[i] == b'-' {
                segs.push(Segment::Str("pre"));
            }
            i += 1;
            continue;
        }
        let digit = b[i].is_ascii_digit();
        let start = i;
        while i < b.len() && b[i].is_ascii_alphanumeric() && b[i].is_ascii_digit() == digit {
            i += 1;
        }
        let s = &v[start..i];
        segs.push(if digit {
            Segment::Num(s.parse().map_err(|_| format!("{s} is too large"))?)
        } else {
            Segment::Str(s)
        });
    }
    // canonical_segments: drop trailing zeros of the numeric part and of the string part.
    let split = segs
        .iter()
        .position(|s| matches!(s, Segment::Str(_)))
        .unwrap_or(segs.len());
    let mut rest = segs.split_off(split);
    let trim = |v: &mut Vec<Segment>| {
        while v.last() == Some(&Segment::Num(0)) {
            v.pop();
        }
    };
    trim(&mut segs);
    trim(&mut rest);
    segs.extend(rest);
    Ok(segs)
}

pub(super) fn compare<'a>(a: &'a str, b: &'a str) -> Result<Ordering, (&'a str, String)> {
    let sa = parse(a).map_err(|r| (a, r))?;
    let sb = parse(b).map_err(|r| (b, r))?;
    for i in 0..sa.len().max(sb.len()) {
        let x = sa.get(i).cloned().unwrap_or(Segment::Num(0));
        let y = sb.get(i).cloned().unwrap_or(Segment::Num(0));
        let o = match (&x, &y) {
            (Segment::Num(x), Segment::Num(y)) => x.cmp(y),
            (Segment::Str(_), Segment::Num(_)) => Ordering::Less,
            (Segment::Num(_), Segment::Str(_)) => Ordering::Greater,
            (Segment::Str(x), Segment::Str(y)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return Ok(o);
        }
    }
    Ok(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::super::{assert_equal, assert_increasing, compare, Scheme};

    #[test]
    fn gem_version_order() {
        // After rubygems' test_gem_version.rb (test_spaceship, test_prerelease).
        assert_increasing(
            Scheme::RubyGems,
            &[
                "0.9",
                "1.0.a",
                "1.0.a2",
                "1.0.b1",
                "1.0.rc1",
                "1.0",
                "1.0.1",
                "1.8.2",
                "1.9.a",
                "1.9",
                "1.10",
                "5.2.4",
                "7.0.8",
                "7.1.0.beta1",
                "7.1.0.rc2",
                "7.1.0",
                "7.1.3.4",
            ],
        );
        assert_equal(
            Scheme::RubyGems,
            &[
                ("1.0", "1"),
                ("1.0.0", "1"),
                ("1.0.a", "1.a"),
                ("1.0.0.a.0", "1.a"),
                ("1.0-1", "1.0.pre.1"),
            ],
        );
        assert!(compare(Scheme::RubyGems, "junk!", "1").is_err());
    }
}
