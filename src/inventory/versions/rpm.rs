//! RPM versions: `[epoch:]version[-release]`, epoch as a number, version and release by
//! `rpmvercmp` (rpm 4.15+): alphanumeric segments split at every other character, numeric
//! segments as numbers and above alphabetic ones, `~` below everything (pre-releases), `^` above
//! the end but below any further segment (snapshots after a release). A release missing on
//! either side is not compared (as rpm does for a dependency without one).

use std::cmp::Ordering;

pub(super) fn compare_evr(a: &str, b: &str) -> Ordering {
    let split = |v: &str| -> (u64, String, Option<String>) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.bytes().all(|c| c.is_ascii_digit()) => {
                (e.parse().unwrap_or(0), r.to_owned())
            }
            _ => (0, v.to_owned()),
        };
        match rest.rsplit_once('-') {
            Some((ver, rel)) => (epoch, ver.to_owned(), Some(rel.to_owned())),
            None => (epoch, rest, None),
        }
    };
    let (ea, va, ra) = split(a);
    let (eb, vb, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| rpmvercmp(&va, &vb))
        .then_with(|| match (ra, rb) {
            (Some(x), Some(y)) => rpmvercmp(&x, &y),
            _ => Ordering::Equal,
        })
}

pub(super) fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(ca), Some(_)) = (ca, cb) else {
            break;
        };
        let numeric = ca.is_ascii_digit();
        let class = |c: &u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let (si, sj) = (i, j);
        while i < a.len() && class(&a[i]) {
            i += 1;
        }
        while j < b.len() && class(&b[j]) {
            j += 1;
        }
        let (x, y) = (&a[si..i], &b[sj..j]);
        if y.is_empty() {
            // Segments of different kinds: the numeric one is newer.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let o = if numeric {
            let trim = |s: &[u8]| {
                let k = s.iter().position(|&c| c != b'0').unwrap_or(s.len());
                s[k..].to_vec()
            };
            let (x, y) = (trim(x), trim(y));
            x.len().cmp(&y.len()).then_with(|| x.cmp(&y))
        } else {
            x.cmp(y)
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (false, _) => Ordering::Greater,
        (true, false) => Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{assert_equal, assert_increasing, Scheme};
    use super::rpmvercmp;
    use std::cmp::Ordering;

    #[test]
    fn rpmvercmp_test_vectors() {
        // From rpm's tests/rpmvercmp.at.
        let cases: &[(&str, &str, Ordering)] = &[
            ("1.0", "1.0", Ordering::Equal),
            ("1.0", "2.0", Ordering::Less),
            ("2.0.1", "2.0.1", Ordering::Equal),
            ("2.0", "2.0.1", Ordering::Less),
            ("2.0.1a", "2.0.1", Ordering::Greater),
            ("5.5p1", "5.5p2", Ordering::Less),
            ("5.5p10", "5.5p1", Ordering::Greater),
            ("10xyz", "10.1xyz", Ordering::Less),
            ("xyz10", "xyz10.1", Ordering::Less),
            ("xyz.4", "8", Ordering::Less),
            ("5.5p1", "5.5.p1", Ordering::Equal),
            ("5.5p1", "5.5.p10", Ordering::Less),
            ("10b2", "10a1", Ordering::Greater),
            ("1b.fc17", "1.fc17", Ordering::Less),
            ("1.0aa", "1.0a", Ordering::Greater),
            ("6.0.rc1", "6.0", Ordering::Greater),
            ("10.0001", "10.1", Ordering::Equal),
            ("10.0001", "10.0039", Ordering::Less),
            ("4.999.9", "5.0", Ordering::Less),
            ("20101121", "20101122", Ordering::Less),
            ("2_0", "2_0", Ordering::Equal),
            ("2.0", "2_0", Ordering::Equal),
            ("a", "a", Ordering::Equal),
            ("a+", "a_", Ordering::Equal),
            ("+", "_", Ordering::Equal),
            ("1.0~rc1", "1.0", Ordering::Less),
            ("1.0~rc1", "1.0~rc2", Ordering::Less),
            ("1.0~rc1~git123", "1.0~rc1", Ordering::Less),
            ("1.0^", "1.0", Ordering::Greater),
            ("1.0^git1", "1.0", Ordering::Greater),
            ("1.0^git1", "1.01", Ordering::Less),
            ("1.0^20160101", "1.0.1", Ordering::Less),
            ("1.0^20160101^git1", "1.0^20160101", Ordering::Greater),
            ("1.0~rc1^git1", "1.0~rc1", Ordering::Greater),
            ("1.0^git1~pre", "1.0^git1", Ordering::Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(rpmvercmp(a, b), *want, "{a} vs {b}");
            assert_eq!(rpmvercmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn epoch_version_release() {
        assert_increasing(
            Scheme::Rpm,
            &[
                "3.0.7-24.el9",
                "3.0.7-25.el9",
                "3.0.7-27.el9_4",
                "3.2.2-6.el9",
                "1:1.0-1",
                "2:0.1-1",
            ],
        );
        assert_equal(Scheme::Rpm, &[("0:1.0-1", "1.0-1"), ("1.0", "1.0-5.el9")]);
    }
}
