//! Attestation requirements of a rule (`attestations:`): a predicate type (short name or URI)
//! and CEL conditions over the attested statement, compiled at load so a syntax error is a
//! start-up error.
//!
//! Conditions see `predicate` (the statement's predicate), `subject` (its subject list) and
//! `predicateType`. A condition holds only when it evaluates to `true`; `false`, a non-boolean,
//! or an evaluation error (a missing field, say) fails it, with the error in the reason — never a
//! panic. This module evaluates one statement against one requirement; finding, verifying and
//! counting attestations is `signature::verify` and `Rule::evaluate`.

use std::fmt;

use std::sync::LazyLock;

use cel::{Context, Program, Value};
use regex::Regex;

/// cosign's short names for predicate types (`cosign attest --type`). `slsaprovenance` is
/// cosign's name for v0.2; here it also accepts v1, which is what current builders (GitHub
/// Actions, SLSA generators) produce. `slsaprovenance02` and `slsaprovenance1` pick one.
pub const SHORT_NAMES: &[(&str, &str)] = &[
    ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance", "https://slsa.dev/provenance/v1"),
    ("slsaprovenance02", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
    ("spdx", "https://spdx.dev/Document"),
    ("spdxjson", "https://spdx.dev/Document"),
    ("cyclonedx", "https://cyclonedx.org/bom"),
    ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
    ("custom", "https://cosign.sigstore.dev/attestation/v1"),
    ("link", "https://in-toto.io/Link/v1"),
    ("openvex", "https://openvex.dev/ns"),
];

/// The variables a condition may use.
const VARIABLES: &[&str] = &["predicate", "subject", "predicateType"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttestationError {
    #[error("predicate_type {0:?} is neither a known short name ({names}) nor a URI", names = { let mut n: Vec<&str> = SHORT_NAMES.iter().map(|(n, _)| *n).collect(); n.dedup(); n.join(", ") })]
    PredicateType(String),
    #[error("{source_text:?} does not compile: {reason}")]
    Compile {
        index: usize,
        source_text: String,
        reason: String,
    },
    #[error("{source_text:?} uses unknown variable {variable:?}; conditions see predicate, subject and predicateType")]
    Variable {
        index: usize,
        source_text: String,
        variable: String,
    },
}

/// Maps a short name to its URIs; a URI is kept as written.
pub fn predicate_type_uris(s: &str) -> Result<Vec<String>, AttestationError> {
    let uris: Vec<String> = SHORT_NAMES
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(s))
        .map(|(_, uri)| (*uri).to_owned())
        .collect();
    if !uris.is_empty() {
        return Ok(uris);
    }
    match url::Url::parse(s) {
        Ok(u) if u.has_host() => Ok(vec![s.to_owned()]),
        _ => Err(AttestationError::PredicateType(s.to_owned())),
    }
}

/// One compiled condition.
pub struct Condition {
    pub source: String,
    program: Program,
    /// The first `predicate…`/`subject…` path in the expression and its program: its value is
    /// shown when the condition fails.
    operand: Option<(String, Program)>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Clone for Condition {
    fn clone(&self) -> Self {
        // Invariant: `source` compiled when this condition was built, so it compiles again.
        Condition::compile(1, &self.source).expect("a compiled condition recompiles")
    }
}

impl Condition {
    pub fn compile(index: usize, source: &str) -> Result<Condition, AttestationError> {
        let program = Program::compile(source).map_err(|e| AttestationError::Compile {
            index,
            source_text: source.to_owned(),
            reason: e.to_string().trim().to_owned(),
        })?;
        // Macros (`subject.exists(s, …)`) bind their own variables.
        static BOUND: LazyLock<Regex> = LazyLock::new(|| {
            // Invariant: a constant, valid pattern.
            Regex::new(r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")
                .expect("valid regex")
        });
        let bound: Vec<&str> = BOUND
            .captures_iter(source)
            .filter_map(|c| c.get(1).map(|m| m.as_str()))
            .collect();
        for v in program.references().variables() {
            if !VARIABLES.contains(&v) && !bound.contains(&v) {
                return Err(AttestationError::Variable {
                    index,
                    source_text: source.to_owned(),
                    variable: v.to_owned(),
                });
            }
        }
        let operand = first_path(source).and_then(|p| Program::compile(&p).ok().map(|c| (p, c)));
        Ok(Condition {
            source: source.to_owned(),
            program,
            operand,
        })
    }
}

/// The first `predicate.a.b[0].c` or `subject…` path in an expression.
fn first_path(source: &str) -> Option<String> {
    static PATH: LazyLock<Regex> = LazyLock::new(|| {
        // Invariant: a constant, valid pattern.
        Regex::new(
            r#"\b(?:predicate|subject)\b(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\]|\["[^"\]]*"\])*"#,
        )
        .expect("valid regex")
    });
    let m = PATH.find(source)?;
    let path = m.as_str();
    // `predicate.id.startsWith(…)`: the last segment is a method, not a field.
    if source[m.end()..].starts_with('(') {
        return path.rsplit_once('.').map(|(p, _)| p.to_owned());
    }
    Some(path.to_owned())
}

/// A rule's requirement for one kind of attestation.
#[derive(Debug, Clone)]
pub struct Requirement {
    /// For messages: the `name` given, else the predicate type as written.
    pub name: String,
    /// The predicate types it accepts (one, or two for `slsaprovenance`).
    pub predicate_types: Vec<String>,
    pub conditions: Vec<Condition>,
    /// Count BuildKit's unsigned in-toto attestations (inside an image index).
    pub allow_unsigned: bool,
}

/// What a statement made of one condition.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConditionResult {
    pub condition: String,
    /// `true`, `false`, or `error`.
    pub result: &'static str,
    /// The value of the condition's first `predicate…`/`subject…` path, or the error.
    pub detail: Option<String>,
}

impl Requirement {
    /// Evaluates every condition over one statement. `Ok` when all hold; else the reason names
    /// the first that failed, with its operand's value.
    pub fn evaluate(
        &self,
        predicate_type: &str,
        predicate: &serde_json::Value,
        subject: &serde_json::Value,
    ) -> (Vec<ConditionResult>, Result<(), String>) {
        let mut ctx = Context::default();
        let bind = |ctx: &mut Context, name: &str, v: &serde_json::Value| match cel::to_value(v) {
            Ok(v) => {
                ctx.add_variable_from_value(name, v);
                Ok(())
            }
            Err(e) => Err(format!("{name} cannot be read: {e}")),
        };
        let bound = bind(&mut ctx, "predicate", predicate)
            .and_then(|_| bind(&mut ctx, "subject", subject))
            .map(|_| ctx.add_variable_from_value("predicateType", predicate_type.to_owned()));
        if let Err(e) = bound {
            return (Vec::new(), Err(format!("{}: {e}", self.name)));
        }
        let mut results = Vec::new();
        let mut verdict = Ok(());
        for (i, c) in self.conditions.iter().enumerate() {
            let operand = c.operand.as_ref().map(|(path, p)| match p.execute(&ctx) {
                Ok(v) => format!("{path} = {}", show(&v)),
                Err(e) => format!("{path}: {e}"),
            });
            let (result, detail) = match c.program.execute(&ctx) {
                Ok(Value::Bool(true)) => ("true", operand),
                Ok(Value::Bool(false)) => ("false", operand),
                Ok(other) => (
                    "error",
                    Some(format!("evaluates to {}, not a boolean", show(&other))),
                ),
                Err(e) => ("error", Some(e.to_string())),
            };
            if result != "true" && verdict.is_ok() {
                verdict = Err(format!(
                    "{}: condition {} {}: {}{}",
                    self.name,
                    i + 1,
                    if result == "false" { "false" } else { "failed" },
                    c.source,
                    detail
                        .as_ref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ));
            }
            results.push(ConditionResult {
                condition: c.source.clone(),
                result,
                detail,
            });
        }
        (results, verdict)
    }
}

/// A short rendering of a CEL value for messages.
fn show(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        Value::List(l) => format!("list of {}", l.len()),
        Value::Map(_) => "a map".to_owned(),
        other => format!("{other:?}"),
    };
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(conditions: &[&str]) -> Requirement {
        Requirement {
            name: "provenance".into(),
            predicate_types: predicate_type_uris("slsaprovenance1").unwrap(),
            conditions: conditions
                .iter()
                .enumerate()
                .map(|(i, c)| Condition::compile(i + 1, c).unwrap())
                .collect(),
            allow_unsigned: false,
        }
    }

    fn provenance() -> serde_json::Value {
        json!({
            "buildDefinition": {"externalParameters": {"workflow": {"repository": "https://github.com/company/api", "ref": "refs/heads/main"}}},
            "runDetails": {"builder": {"id": "https://github.com/company/api/.github/workflows/release.yml@refs/heads/main"}}
        })
    }

    #[test]
    fn short_names_map_to_uris() {
        let one = |s: &str| predicate_type_uris(s).unwrap();
        assert_eq!(
            one("slsaprovenance"),
            [
                "https://slsa.dev/provenance/v0.2",
                "https://slsa.dev/provenance/v1"
            ]
        );
        assert_eq!(
            one("slsaprovenance02"),
            ["https://slsa.dev/provenance/v0.2"]
        );
        assert_eq!(one("SLSAProvenance1"), ["https://slsa.dev/provenance/v1"]);
        assert_eq!(one("spdxjson"), ["https://spdx.dev/Document"]);
        assert_eq!(one("cyclonedx"), ["https://cyclonedx.org/bom"]);
        assert_eq!(
            one("vuln"),
            ["https://cosign.sigstore.dev/attestation/vuln/v1"]
        );
        assert_eq!(
            one("https://example.com/custom/v1"),
            ["https://example.com/custom/v1"]
        );
        let e = predicate_type_uris("slsa").unwrap_err();
        assert!(
            e.to_string().contains("slsaprovenance, slsaprovenance02"),
            "{e}"
        );
    }

    #[test]
    fn compile_errors_and_unknown_variables_are_named() {
        let e = Condition::compile(2, "predicate.a ==").unwrap_err();
        assert!(
            matches!(e, AttestationError::Compile { index: 2, .. }),
            "{e}"
        );
        let e = Condition::compile(1, "predicte.a == 1").unwrap_err();
        assert_eq!(
            e,
            AttestationError::Variable {
                index: 1,
                source_text: "predicte.a == 1".into(),
                variable: "predicte".into()
            }
        );
    }

    #[test]
    fn conditions_true_false_and_erroring() {
        let subject = json!([{"name": "x", "digest": {"sha256": "ab"}}]);
        let r = req(&[
            r#"predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/company/api""#,
            r#"predicate.runDetails.builder.id.startsWith("https://github.com/company/")"#,
            r#"subject.exists(s, s.digest.sha256 == "ab")"#,
            r#"predicateType == "https://slsa.dev/provenance/v1""#,
        ]);
        let (results, ok) = r.evaluate("https://slsa.dev/provenance/v1", &provenance(), &subject);
        assert_eq!(ok, Ok(()), "{results:?}");
        // `predicateType` is its own variable, not a path under `predicate`.
        assert_eq!(results[3].detail, None);
        assert_eq!(first_path("predicateType == \"x\""), None);
        assert!(results.iter().all(|c| c.result == "true"));

        let evil =
            req(&[r#"predicate.runDetails.builder.id.startsWith("https://github.com/evil/")"#]);
        let (results, ok) = evil.evaluate("t", &provenance(), &subject);
        let reason = ok.unwrap_err();
        assert!(
            reason.starts_with(
                "provenance: condition 1 false: predicate.runDetails.builder.id.startsWith"
            ),
            "{reason}"
        );
        assert!(
            reason.contains(r#"predicate.runDetails.builder.id = "https://github.com/company/api/.github/workflows/release.yml@refs/heads/main""#),
            "{reason}"
        );
        assert_eq!(results[0].result, "false");

        // A missing field is an error, reported, not a panic and not a pass.
        let missing = req(&["predicate.nothing.here == 1", "predicate.runDetails"]);
        let (results, ok) = missing.evaluate("t", &provenance(), &subject);
        assert_eq!(results[0].result, "error");
        assert_eq!(results[1].result, "error", "a map is not a boolean");
        assert!(ok.unwrap_err().contains("condition 1 failed"));
    }
}
