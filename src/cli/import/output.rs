//! The imported configuration: the rules translated from the inputs ([`Rule`]), what each could
//! not carry over, and the portcullis YAML written from them, with the upstreams the rules'
//! registries need so that the file loads as it is.
//!
//! Rules that share images are found here too: both admission controllers apply *every*
//! matching policy, portcullis only the most specific rule.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::policy::Pattern;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Audit,
    Off,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
            Mode::Off => "off",
        }
    }
}

/// An identity constraint: exact, or an (anchored) regular expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Exact(String),
    Regexp(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attestor {
    Keyless { subject: Match, issuer: Match },
    Key { pem: String, ignore_tlog: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    pub name: String,
    pub predicate_type: String,
    pub conditions: Vec<String>,
}

/// One portcullis rule and its provenance.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    /// Where it came from, for the comment above it.
    pub origin: String,
    pub patterns: Vec<String>,
    pub mode: Mode,
    pub count: Option<usize>,
    pub attestors: Vec<Attestor>,
    pub attestations: Vec<Attestation>,
    pub signature_repository: Option<String>,
    /// Remarks that do not change the meaning.
    pub notes: Vec<String>,
    /// What the input said that this rule does not do.
    pub not_carried: Vec<String>,
}

impl Rule {
    pub fn new(name: String, origin: String) -> Rule {
        Rule {
            name,
            origin,
            patterns: Vec::new(),
            mode: Mode::Enforce,
            count: None,
            attestors: Vec::new(),
            attestations: Vec::new(),
            signature_repository: None,
            notes: Vec::new(),
            not_carried: Vec::new(),
        }
    }

    /// A rule that verifies needs an attestor; without one it is written commented out.
    fn usable(&self) -> bool {
        self.mode == Mode::Off || !self.attestors.is_empty()
    }
}

/// Gives every rule a unique name and reports images that several rules match.
pub fn finish(rules: &mut [Rule], tool: &str) {
    let mut seen = BTreeSet::new();
    for rule in rules.iter_mut() {
        let base = rule.name.clone();
        let mut n = 2;
        while !seen.insert(rule.name.clone()) {
            rule.name = format!("{base}-{n}");
            n += 1;
        }
    }
    for i in 0..rules.len() {
        for j in 0..rules.len() {
            if i == j {
                continue;
            }
            if let Some(example) = overlap(&rules[i].patterns, &rules[j].patterns) {
                let other = rules[j].name.clone();
                rules[i].not_carried.push(format!(
                    "images such as {example} are matched by rule {other:?} too: {tool} required both, portcullis applies only the most specific rule (see `portcullis check-config --config FILE IMAGE`); merge them by hand"
                ));
            }
        }
    }
}

/// A name both lists match, found by instantiating each pattern of one list.
fn overlap(a: &[String], b: &[String]) -> Option<String> {
    let compiled: Vec<Pattern> = b.iter().filter_map(|p| Pattern::new(p).ok()).collect();
    let by_a: Vec<Pattern> = a.iter().filter_map(|p| Pattern::new(p).ok()).collect();
    for p in a.iter().chain(b) {
        let example = p.replace("**", "x").replace(['*', '?'], "x");
        if compiled.iter().any(|c| c.is_match(&example))
            && by_a.iter().any(|c| c.is_match(&example))
        {
            return Some(example);
        }
    }
    None
}

/// The registries the rules name, for `upstreams`.
fn registries(rules: &[Rule]) -> BTreeSet<String> {
    let mut out = BTreeSet::from(["docker.io".to_owned()]);
    let names = rules
        .iter()
        .flat_map(|r| r.patterns.iter().chain(r.signature_repository.iter()));
    for name in names {
        if let Some((first, _)) = name.split_once('/') {
            if !first.contains(['*', '?', '[', '{']) {
                out.insert(first.to_owned());
            }
        }
    }
    out
}

fn q(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::Value::String(s.to_owned()).to_string()
}

/// A YAML comment, wrapped at about 100 columns.
fn comment(out: &mut String, indent: &str, text: &str) {
    const WIDTH: usize = 100;
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split(' ') {
            if !line.is_empty() && indent.len() + 2 + line.len() + 1 + word.len() > WIDTH {
                let _ = writeln!(out, "{indent}# {line}");
                line = "  ".to_owned();
            } else if !line.is_empty() && line != "  " {
                line.push(' ');
            }
            line.push_str(word);
        }
        let _ = writeln!(out, "{indent}# {line}");
    }
}

/// The configuration file. `inputs` names the files read, for the header.
pub fn render(rules: &[Rule], command: &str, inputs: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by `portcullis import {command}` from {}.",
        inputs.join(", ")
    );
    out.push_str(
        "# Review it before use: check the upstream URLs, add their credentials, and read every\n\
         # NOT CARRIED OVER comment. `portcullis check-config --config FILE IMAGE` shows which\n\
         # rule applies to an image.\n",
    );
    out.push_str("listen: 0.0.0.0:5000\nadmin_listen: 127.0.0.1:9095\ndefault_upstream: docker.io\nupstreams:\n");
    for registry in registries(rules) {
        let url = match registry.as_str() {
            "docker.io" => "https://registry-1.docker.io".to_owned(),
            r => format!("https://{r}"),
        };
        let _ = writeln!(out, "  {}: {{ url: {} }}", q(&registry), q(&url));
    }
    if rules.iter().any(Rule::usable) {
        out.push_str("policies:\n");
    } else {
        out.push_str("policies: []\n");
    }
    for rule in rules {
        out.push('\n');
        comment(&mut out, "  ", &format!("From {}.", rule.origin));
        for note in &rule.notes {
            comment(&mut out, "  ", &format!("Note: {note}"));
        }
        for item in &rule.not_carried {
            comment(&mut out, "  ", &format!("NOT CARRIED OVER: {item}"));
        }
        let body = rule_yaml(rule);
        if rule.usable() {
            out.push_str(&body);
        } else {
            comment(
                &mut out,
                "  ",
                "This rule has no attestor portcullis can check, so it is written commented out:",
            );
            for line in body.lines() {
                let _ = writeln!(out, "  # {}", line.trim_start_matches("  "));
            }
        }
    }
    out
}

fn rule_yaml(rule: &Rule) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  - name: {}", q(&rule.name));
    let patterns: Vec<String> = rule.patterns.iter().map(|p| q(p)).collect();
    let _ = writeln!(out, "    match: [{}]", patterns.join(", "));
    let _ = writeln!(out, "    mode: {}", rule.mode.as_str());
    if rule.mode == Mode::Off {
        return out;
    }
    if let Some(count) = rule.count {
        let _ = writeln!(out, "    count: {count}");
    }
    out.push_str("    attestors:\n");
    for attestor in &rule.attestors {
        match attestor {
            Attestor::Keyless { subject, issuer } => {
                out.push_str("      - keyless:\n");
                for (key, m) in [("subject", subject), ("issuer", issuer)] {
                    match m {
                        Match::Exact(s) => {
                            let _ = writeln!(out, "          {key}: {}", q(s));
                        }
                        Match::Regexp(s) => {
                            let _ = writeln!(out, "          {key}_regexp: {}", q(s));
                        }
                    }
                }
            }
            Attestor::Key { pem, ignore_tlog } => {
                out.push_str("      - key:\n          public_key: |\n");
                for line in pem.trim().lines() {
                    let _ = writeln!(out, "            {}", line.trim());
                }
                if *ignore_tlog {
                    out.push_str("          ignore_tlog: true\n");
                }
            }
        }
    }
    if let Some(repo) = &rule.signature_repository {
        let _ = writeln!(out, "    signature_repository: {}", q(repo));
    }
    if !rule.attestations.is_empty() {
        out.push_str("    attestations:\n");
        for a in &rule.attestations {
            let _ = writeln!(out, "      - name: {}", q(&a.name));
            let _ = writeln!(out, "        predicate_type: {}", q(&a.predicate_type));
            if !a.conditions.is_empty() {
                out.push_str("        conditions:\n");
                for c in &a.conditions {
                    let _ = writeln!(out, "          - {}", q(c));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_rules_are_reported_and_names_made_unique() {
        let mut a = Rule::new("p".into(), "a".into());
        a.patterns = vec!["ghcr.io/company/**".into()];
        let mut b = Rule::new("p".into(), "b".into());
        b.patterns = vec!["ghcr.io/company/app".into()];
        let mut c = Rule::new("q".into(), "c".into());
        c.patterns = vec!["quay.io/x/*".into()];
        let mut rules = vec![a, b, c];
        finish(&mut rules, "Kyverno");
        assert_eq!(rules[1].name, "p-2");
        assert_eq!(rules[0].not_carried.len(), 1);
        assert!(rules[1].not_carried[0].contains("ghcr.io/company/app"));
        assert!(rules[2].not_carried.is_empty());
    }

    #[test]
    fn rule_without_attestors_is_commented_out() {
        let mut r = Rule::new("r".into(), "x".into());
        r.patterns = vec!["ghcr.io/a/*".into()];
        let text = render(&[r], "kyverno", &["x.yaml".into()]);
        assert!(text.contains("  # - name: \"r\""), "{text}");
        assert!(
            text.contains("\"ghcr.io\": { url: \"https://ghcr.io\" }"),
            "{text}"
        );
    }
}
