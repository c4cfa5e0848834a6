//! Conditions on attestation contents translated to portcullis CEL, only where the meaning is
//! certain: Kyverno's `conditions` (JMESPath keys, operators) and policy-controller's CUE
//! policies. Anything else is handed back as not carried over.
//!
//! - Kyverno evaluates a condition's `key` over the statement's predicate, so `{{ repo.uri }}`
//!   is `predicate.repo.uri`. `Equals` of a string without wildcards, or of a boolean, is
//!   `==`; a missing field is `null` there and an evaluation error in CEL, and both fail the
//!   condition. Kyverno's `Equals` treats `*` and `?` in a string as wildcards, and
//!   `NotEquals` holds for a missing field: those, and the other operators, are not translated.
//! - policy-controller unifies the CUE policy with the statement and accepts when nothing
//!   conflicts. A concrete field `predicate: a: b: "x"` therefore holds when `a.b` is `"x"`
//!   *or absent*, which is `!has(predicate.a) || !has(predicate.a.b) || predicate.a.b == "x"`.
//!   Only concrete string and boolean fields under `predicate` and `predicateType` are
//!   translated; types, bounds, disjunctions, references and comprehensions are not.

use serde_json::Value;

/// CEL's reserved words cannot be field selections.
const RESERVED: &[&str] = &[
    "as",
    "break",
    "const",
    "continue",
    "else",
    "false",
    "for",
    "function",
    "if",
    "import",
    "in",
    "let",
    "loop",
    "package",
    "namespace",
    "null",
    "return",
    "true",
    "var",
    "void",
    "while",
];

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED.contains(&s)
}

fn cel_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn cel_path(root: &str, segments: &[String]) -> String {
    let mut out = root.to_owned();
    for s in segments {
        out.push('.');
        out.push_str(s);
    }
    out
}

/// A Kyverno `key` such as `{{ repo.uri }}` as predicate path segments.
fn jmespath_key(key: &Value) -> Option<Vec<String>> {
    let inner = key
        .as_str()?
        .trim()
        .strip_prefix("{{")?
        .strip_suffix("}}")?
        .trim();
    let segments: Vec<String> = inner.split('.').map(str::to_owned).collect();
    segments.iter().all(|s| is_ident(s)).then_some(segments)
}

/// One Kyverno condition `{key, operator, value}` as CEL, or why not.
pub fn kyverno(key: &Value, operator: &str, value: &Value) -> Result<String, String> {
    let shown = format!("{} {operator} {}", key, value);
    let path = jmespath_key(key).ok_or_else(|| {
        format!("condition {shown}: the key is not a plain field path `{{{{ a.b }}}}`")
    })?;
    let path = cel_path("predicate", &path);
    match (operator, value) {
        ("Equals" | "Equal", Value::String(s)) if !s.contains(['*', '?']) => {
            Ok(format!("{path} == {}", cel_string(s)))
        }
        ("Equals" | "Equal", Value::Bool(b)) => Ok(format!("{path} == {b}")),
        ("Equals" | "Equal", _) => Err(format!(
            "condition {shown}: Kyverno's Equals on wildcards or non-string values has no certain CEL equivalent"
        )),
        _ => Err(format!(
            "condition {shown}: operator {operator} is not translated (only Equals of a string or boolean is certain)"
        )),
    }
}

/// A CUE policy as CEL conditions; `Err` names what is not translated.
pub fn cue(data: &str) -> Result<Vec<String>, String> {
    let fields = CueParser::new(data).fields_until(None).ok_or_else(|| {
        "the CUE policy uses more than concrete string and boolean fields".to_owned()
    })?;
    let mut out = Vec::new();
    for (path, literal) in fields {
        let lit = match &literal {
            Lit::Str(s) => cel_string(s),
            Lit::Bool(b) => b.to_string(),
        };
        match path.split_first() {
            Some((first, [])) if first == "predicateType" => {
                out.push(format!("predicateType == {lit}"));
            }
            Some((first, rest)) if first == "predicate" && !rest.is_empty() => {
                if !rest.iter().all(|s| is_ident(s)) {
                    return Err(format!(
                        "CUE field {} is not a plain field path",
                        path.join(".")
                    ));
                }
                let mut terms: Vec<String> = (1..=rest.len())
                    .map(|n| format!("!has({})", cel_path("predicate", &rest[..n])))
                    .collect();
                terms.push(format!("{} == {lit}", cel_path("predicate", rest)));
                out.push(terms.join(" || "));
            }
            _ => {
                return Err(format!(
                    "CUE field {} is outside `predicate` and `predicateType`",
                    path.join(".")
                ))
            }
        }
    }
    if out.is_empty() {
        return Err("the CUE policy sets no field".to_owned());
    }
    Ok(out)
}

/// A concrete CUE value this translation understands.
enum Lit {
    Str(String),
    Bool(bool),
}

/// A parser for the concrete subset of CUE: `label: value` fields, separated by newlines or
/// commas, where a value is a string, `true`, `false`, `{ fields }` or another `label: value`.
struct CueParser {
    chars: Vec<char>,
    at: usize,
}

type Fields = Vec<(Vec<String>, Lit)>;

impl CueParser {
    fn new(s: &str) -> CueParser {
        CueParser {
            chars: s.chars().collect(),
            at: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    /// Skips blanks and comments; with `newlines`, line ends and commas too.
    fn skip(&mut self, newlines: bool) {
        while let Some(c) = self.peek() {
            if c == ' ' || c == '\t' || c == '\r' || (newlines && (c == '\n' || c == ',')) {
                self.at += 1;
            } else if c == '/' && self.chars.get(self.at + 1) == Some(&'/') {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.at += 1;
                }
            } else {
                break;
            }
        }
    }

    fn fields_until(&mut self, end: Option<char>) -> Option<Fields> {
        let mut out = Vec::new();
        loop {
            self.skip(true);
            match self.peek() {
                None if end.is_none() => return Some(out),
                Some(c) if Some(c) == end => {
                    self.at += 1;
                    return Some(out);
                }
                None => return None,
                Some(_) => {
                    out.extend(self.field()?);
                    self.skip(false);
                    match self.peek() {
                        Some('\n' | ',') | None => {}
                        Some(c) if Some(c) == end => {}
                        Some(_) => return None,
                    }
                }
            }
        }
    }

    fn field(&mut self) -> Option<Fields> {
        let label = self.label()?;
        self.skip(false);
        if self.peek() != Some(':') {
            return None;
        }
        self.at += 1;
        self.skip(false);
        let nested: Fields = match self.peek()? {
            '{' => {
                self.at += 1;
                self.fields_until(Some('}'))?
            }
            '"' => vec![(Vec::new(), Lit::Str(self.string()?))],
            c if c.is_ascii_alphabetic() || c == '_' => {
                let save = self.at;
                let word = self.ident();
                self.skip(false);
                if self.peek() == Some(':') {
                    self.at = save;
                    self.field()?
                } else {
                    match word.as_str() {
                        "true" => vec![(Vec::new(), Lit::Bool(true))],
                        "false" => vec![(Vec::new(), Lit::Bool(false))],
                        _ => return None,
                    }
                }
            }
            _ => return None,
        };
        Some(
            nested
                .into_iter()
                .map(|(rest, v)| {
                    let mut path = vec![label.clone()];
                    path.extend(rest);
                    (path, v)
                })
                .collect(),
        )
    }

    fn ident(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '$' || *c == '#')
        {
            s.push(c);
            self.at += 1;
        }
        s
    }

    fn label(&mut self) -> Option<String> {
        match self.peek()? {
            '"' => self.string(),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let s = self.ident();
                // `#Def`, `$x`, `_hidden` and optional `a?` labels are not plain fields.
                (!s.starts_with('_') && !s.contains(['$', '#'])).then_some(s)
            }
            _ => None,
        }
    }

    fn string(&mut self) -> Option<String> {
        if self.chars.get(self.at..self.at + 3) == Some(&['"', '"', '"'][..]) {
            return None;
        }
        self.at += 1;
        let mut s = String::new();
        loop {
            let c = self.peek()?;
            self.at += 1;
            match c {
                '"' => return Some(s),
                '\n' => return None,
                '\\' => {
                    let e = self.peek()?;
                    self.at += 1;
                    s.push(match e {
                        '"' => '"',
                        '\\' => '\\',
                        '/' => '/',
                        'n' => '\n',
                        't' => '\t',
                        _ => return None,
                    });
                }
                c => s.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(cond: &str, predicate: Value) -> bool {
        let mut ctx = cel::Context::default();
        ctx.add_variable_from_value("predicate", cel::to_value(&predicate).unwrap());
        ctx.add_variable_from_value("predicateType", "https://example.com/t".to_owned());
        matches!(
            cel::Program::compile(cond).unwrap().execute(&ctx),
            Ok(cel::Value::Bool(true))
        )
    }

    #[test]
    fn kyverno_equals_is_translated() {
        let c = kyverno(
            &json!("{{ repo.uri }}"),
            "Equals",
            &json!("https://git.example/app"),
        )
        .unwrap();
        assert_eq!(c, "predicate.repo.uri == \"https://git.example/app\"");
        assert!(eval(
            &c,
            json!({"repo": {"uri": "https://git.example/app"}})
        ));
        assert!(!eval(
            &c,
            json!({"repo": {"uri": "https://git.example/other"}})
        ));
        assert!(
            !eval(&c, json!({"other": 1})),
            "a missing field fails, as in Kyverno"
        );
        let b = kyverno(&json!("{{ reviewed }}"), "Equals", &json!(true)).unwrap();
        assert!(eval(&b, json!({"reviewed": true})));
    }

    #[test]
    fn kyverno_uncertain_conditions_are_refused() {
        for (key, op, value) in [
            (
                json!("{{ repo.uri }}"),
                "Equals",
                json!("https://git.example/*"),
            ),
            (json!("{{ repo.uri }}"), "NotEquals", json!("x")),
            (json!("{{ reviewers }}"), "AnyIn", json!(["a", "b"])),
            (
                json!("{{ time_since('', metadata.t, '') }}"),
                "DurationLessThan",
                json!("1h"),
            ),
            (json!("{{ a.in }}"), "Equals", json!("x")),
            (json!("{{ n }}"), "Equals", json!(3)),
        ] {
            assert!(kyverno(&key, op, &value).is_err(), "{key} {op} {value}");
        }
    }

    #[test]
    fn cue_concrete_fields_are_translated_with_cues_absent_field_rule() {
        let conds = cue("predicateType: \"https://example.com/t\"\npredicate: {\n  Data: \"foobar e2e test\" // the payload\n  build: ok: true\n}\n").unwrap();
        assert_eq!(conds.len(), 3);
        assert_eq!(conds[0], "predicateType == \"https://example.com/t\"");
        assert_eq!(
            conds[1],
            "!has(predicate.Data) || predicate.Data == \"foobar e2e test\""
        );
        assert!(eval(&conds[0], json!({})));
        assert!(eval(&conds[1], json!({"Data": "foobar e2e test"})));
        assert!(!eval(&conds[1], json!({"Data": "other"})));
        assert!(eval(&conds[1], json!({})), "CUE accepts an absent field");
        assert!(eval(&conds[2], json!({"build": {"ok": true}})));
        assert!(eval(&conds[2], json!({"build": {}})));
        assert!(!eval(&conds[2], json!({"build": {"ok": false}})));
        assert!(!eval(&conds[2], json!({"build": "x"})), "a conflict fails");
    }

    #[test]
    fn cue_beyond_concrete_fields_is_refused() {
        for policy in [
            "predicate: Data: string",
            "predicate: n: >3",
            "predicate: x: \"a\" | \"b\"",
            "import \"strings\"\npredicate: a: \"x\"",
            "subject: [...]",
            "_type: \"https://in-toto.io/Statement/v0.1\"",
            "predicate: a: \"\\(x)\"",
            "",
        ] {
            assert!(cue(policy).is_err(), "{policy:?}");
        }
    }
}
