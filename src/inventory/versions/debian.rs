//! Debian versions (Debian Policy §5.6.12): `[epoch:]upstream[-revision]`, the epoch compared as
//! a number, upstream and revision by dpkg's `verrevcmp`: non-digit runs compared character by
//! character with letters before non-letters and `~` before everything (even the end), digit
//! runs compared as numbers. Ubuntu's versions are Debian's.

use std::cmp::Ordering;

struct Parsed<'a> {
    epoch: u64,
    upstream: &'a str,
    revision: &'a str,
}

fn parse(v: &str) -> Result<Parsed<'_>, String> {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) => (
            e.parse::<u64>()
                .map_err(|_| format!("the epoch {e:?} is not a number"))?,
            rest,
        ),
        None => (0, v),
    };
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((u, r)) => (u, r),
        None => (rest, ""),
    };
    if upstream.is_empty() {
        return Err("no upstream version".to_owned());
    }
    if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("the upstream version does not start with a digit".to_owned());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".+~-:".contains(c);
    if !rest.chars().all(allowed) {
        return Err("a character Debian versions do not allow".to_owned());
    }
    Ok(Parsed {
        epoch,
        upstream,
        revision,
    })
}

pub(super) fn compare<'a>(a: &'a str, b: &'a str) -> Result<Ordering, (&'a str, String)> {
    let pa = parse(a).map_err(|r| (a, r))?;
    let pb = parse(b).map_err(|r| (b, r))?;
    Ok(pa
        .epoch
        .cmp(&pb.epoch)
        .then_with(|| verrevcmp(pa.upstream, pb.upstream))
        .then_with(|| verrevcmp(pa.revision, pb.revision)))
}

/// dpkg's character order in non-digit runs; the end of the string is 0.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

pub(super) fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::super::{assert_equal, assert_increasing, compare, Scheme};

    #[test]
    fn debian_policy_order() {
        // Policy §5.6.12: `~` sorts before everything, even the end of a part.
        assert_increasing(
            Scheme::Debian,
            &[
                "1.0~~",
                "1.0~~a",
                "1.0~",
                "1.0",
                "1.0-1",
                "1.0-1ubuntu0.1",
                "1.0-2",
                "1.0a",
                "1.0+dfsg",
                "1.0.1",
                "1.2.10",
                "3.0.11-1~deb12u2",
                "3.0.11-1",
                "3.0.13-1~deb12u1",
                "1:0.9",
                "2:0.1",
            ],
        );
        assert_equal(
            Scheme::Debian,
            &[("0:1.0", "1.0"), ("1.0-0", "1.0-"), ("1.01", "1.1")],
        );
        assert!(compare(Scheme::Debian, "a1.0", "1").is_err());
        assert!(compare(Scheme::Debian, "x:1.0", "1").is_err());
    }
}
