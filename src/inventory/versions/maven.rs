//! Maven versions, as Maven 3's `ComparableVersion` orders them: items split at `.`, at `-`
//! (which opens a sub-list) and between digits and letters; trailing "null" items (`0`, `""`,
//! `ga`, `final`, `release`) dropped; the known qualifiers ordered `alpha < beta < milestone <
//! rc = cr < snapshot < (release) < sp`, other qualifiers after them alphabetically, and `a1`,
//! `b1`, `m1` short for `alpha-1`, `beta-1`, `milestone-1`. Never fails: every string is a Maven
//! version.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// Digits without leading zeros ("" is zero).
    Int(String),
    Str(String),
    List(Vec<Item>),
}

const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];

fn comparable_qualifier(q: &str) -> String {
    match QUALIFIERS.iter().position(|k| *k == q) {
        Some(i) => i.to_string(),
        None => format!("{}-{q}", QUALIFIERS.len()),
    }
}

fn string_item(s: &str, followed_by_digit: bool) -> Item {
    let s = if followed_by_digit && s.len() == 1 {
        match s {
            "a" => "alpha",
            "b" => "beta",
            "m" => "milestone",
            other => other,
        }
    } else {
        s
    };
    let s = match s {
        "ga" | "final" | "release" => "",
        "cr" => "rc",
        other => other,
    };
    Item::Str(s.to_owned())
}

fn parse_item(digit: bool, s: &str) -> Item {
    if digit {
        Item::Int(s.trim_start_matches('0').to_owned())
    } else {
        string_item(s, false)
    }
}

impl Item {
    fn is_null(&self) -> bool {
        match self {
            Item::Int(d) => d.is_empty(),
            Item::Str(s) => s.is_empty(),
            Item::List(l) => l.is_empty(),
        }
    }

    /// Compares with another item, or with "nothing" (`None`, a shorter list's missing item).
    fn cmp_to(&self, other: Option<&Item>) -> Ordering {
        match (self, other) {
            (Item::Int(d), None) => {
                if d.is_empty() {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            (Item::Int(a), Some(Item::Int(b))) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            (Item::Int(_), Some(_)) => Ordering::Greater,
            (Item::Str(s), None) => comparable_qualifier(s).cmp(&comparable_qualifier("")),
            (Item::Str(_), Some(Item::Int(_))) => Ordering::Less,
            (Item::Str(a), Some(Item::Str(b))) => {
                comparable_qualifier(a).cmp(&comparable_qualifier(b))
            }
            (Item::Str(_), Some(Item::List(_))) => Ordering::Less,
            (Item::List(l), None) => match l.first() {
                None => Ordering::Equal,
                Some(first) => first.cmp_to(None),
            },
            (Item::List(_), Some(Item::Int(_))) => Ordering::Less,
            (Item::List(_), Some(Item::Str(_))) => Ordering::Greater,
            (Item::List(a), Some(Item::List(b))) => {
                for i in 0..a.len().max(b.len()) {
                    let o = match (a.get(i), b.get(i)) {
                        (None, None) => Ordering::Equal,
                        (None, Some(r)) => r.cmp_to(None).reverse(),
                        (Some(l), r) => l.cmp_to(r),
                    };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            }
        }
    }
}

fn normalize(list: &mut Vec<Item>) {
    let mut i = list.len();
    while i > 0 {
        i -= 1;
        if list[i].is_null() {
            list.remove(i);
        } else if !matches!(list[i], Item::List(_)) {
            break;
        }
    }
}

/// Parses as `ComparableVersion.parseVersion` does; the nested lists are built as a stack of
/// open lists, each closed (normalized and attached to its parent) at the end.
fn parse(version: &str) -> Item {
    let v = version.to_lowercase();
    let b = v.as_bytes();
    // stack[0] is the top list; each later entry is a sub-list of the one before it.
    let mut stack: Vec<Vec<Item>> = vec![Vec::new()];
    let mut digit = false;
    let mut start = 0;
    let open = |stack: &mut Vec<Vec<Item>>| stack.push(Vec::new());
    for i in 0..b.len() {
        let c = b[i];
        let top = stack.len() - 1;
        if c == b'.' {
            if i == start {
                stack[top].push(Item::Int(String::new()));
            } else {
                stack[top].push(parse_item(digit, &v[start..i]));
            }
            start = i + 1;
        } else if c == b'-' {
            if i == start {
                stack[top].push(Item::Int(String::new()));
            } else {
                stack[top].push(parse_item(digit, &v[start..i]));
            }
            start = i + 1;
            open(&mut stack);
        } else if c.is_ascii_digit() {
            if !digit && i > start {
                // 1.0.0.X1 < 1.0.0-X2: a qualifier followed by digits opens a sub-list.
                if !stack[top].is_empty() {
                    open(&mut stack);
                }
                let top = stack.len() - 1;
                stack[top].push(string_item(&v[start..i], true));
                start = i;
                open(&mut stack);
            }
            digit = true;
        } else {
            if digit && i > start {
                stack[top].push(parse_item(true, &v[start..i]));
                start = i;
                open(&mut stack);
            }
            digit = false;
        }
    }
    if b.len() > start {
        // A trailing `.X` qualifier counts as `-X` (1.0.0.X1 < 1.0.0-X2).
        if !digit && !stack[stack.len() - 1].is_empty() {
            open(&mut stack);
        }
        let top = stack.len() - 1;
        stack[top].push(parse_item(digit, &v[start..]));
    }
    while stack.len() > 1 {
        let mut list = stack.pop().unwrap_or_default();
        normalize(&mut list);
        let top = stack.len() - 1;
        stack[top].push(Item::List(list));
    }
    let mut top = stack.pop().unwrap_or_default();
    normalize(&mut top);
    Item::List(top)
}

pub(super) fn compare(a: &str, b: &str) -> Ordering {
    parse(a).cmp_to(Some(&parse(b)))
}

#[cfg(test)]
mod tests {
    use super::super::{assert_equal, assert_increasing, Scheme};

    #[test]
    fn maven_qualifier_order() {
        // Maven's ComparableVersionTest, VERSIONS_QUALIFIER.
        assert_increasing(
            Scheme::Maven,
            &[
                "1-alpha2snapshot",
                "1-alpha2",
                "1-alpha-123",
                "1-beta-2",
                "1-beta123",
                "1-m2",
                "1-m11",
                "1-rc",
                "1-cr2",
                "1-rc123",
                "1-SNAPSHOT",
                "1",
                "1-sp",
                "1-sp2",
                "1-sp123",
                "1-abc",
                "1-def",
                "1-pom-1",
                "1-1-snapshot",
                "1-1",
                "1-2",
                "1-123",
            ],
        );
    }

    #[test]
    fn maven_number_order() {
        // Maven's ComparableVersionTest, VERSIONS_NUMBER.
        assert_increasing(
            Scheme::Maven,
            &[
                "2.0", "2.0.a", "2-1", "2.0.2", "2.0.123", "2.1.0", "2.1-a", "2.1b", "2.1-c",
                "2.1-1", "2.1.0.1", "2.2", "2.123", "11.a2", "11.a11", "11.b2", "11.b11", "11.m2",
                "11.m11", "11", "11.a", "11b", "11c", "11m",
            ],
        );
        assert_increasing(
            Scheme::Maven,
            &[
                "2.0-beta9",
                "2.0-rc1",
                "2.0",
                "2.14.1",
                "2.15.0",
                "2.16.0",
                "2.17.0",
                "2.17.1",
            ],
        );
    }

    #[test]
    fn maven_equal_spellings() {
        assert_equal(
            Scheme::Maven,
            &[
                ("1", "1.0"),
                ("1", "1.0.0"),
                ("1.0", "1.0.0"),
                ("1", "1-0"),
                ("1", "1.0-0"),
                ("1.0", "1.0-0"),
                ("1a", "1-a"),
                ("1a", "1.0-a"),
                ("1a", "1.0.0-a"),
                ("1.0a", "1-a"),
                ("1x", "1-x"),
                ("1x", "1.0-x"),
                ("1-ga", "1"),
                ("1-release", "1"),
                ("1-final", "1"),
                ("1cr", "1rc"),
                ("1a1", "1-alpha-1"),
                ("1b2", "1-beta-2"),
                ("1m3", "1-milestone-3"),
                ("1X", "1x"),
                ("1A", "1a"),
                ("1RC", "1rc"),
            ],
        );
    }
}
