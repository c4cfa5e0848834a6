//! Reading the input files: multi-document YAML (`---`) parsed with `yaml-rust2` into JSON
//! values, then deserialized into the typed Kubernetes objects of [`super::kyverno`] and
//! [`super::policy_controller`] with the path of any offending field kept
//! (`spec.rules[0].verifyImages[0].imageReferencez`).
//!
//! This module knows nothing of either admission controller; it only turns text into values.

use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum YamlError {
    #[error("not YAML: {0}")]
    Syntax(String),
    #[error("document {doc}: {reason}")]
    Shape { doc: usize, reason: String },
}

/// One YAML document of an input file, as a JSON value; empty documents are skipped.
#[derive(Debug)]
pub struct Document {
    /// 1-based position in the file, for messages.
    pub index: usize,
    pub value: Value,
}

pub fn documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| YamlError::Syntax(e.to_string()))?;
    let mut out = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let index = i + 1;
        let value = to_json(doc).map_err(|reason| YamlError::Shape { doc: index, reason })?;
        if !value.is_null() {
            out.push(Document { index, value });
        }
    }
    Ok(out)
}

fn to_json(y: &Yaml) -> Result<Value, String> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::Number((*i).into()),
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("number {s} cannot be read"))?,
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => return Err(format!("mapping key {other:?} is not a string")),
                };
                m.insert(key, to_json(v)?);
            }
            Value::Object(m)
        }
        Yaml::Alias(_) => return Err("YAML aliases are not supported".to_owned()),
        Yaml::BadValue => return Err("a value cannot be read".to_owned()),
    })
}

/// Deserializes `value` into `T`; the error names the path of the field at fault.
pub fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("field `{path}`: {}", e.inner())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        spec: Inner,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        list: Vec<Leaf>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Leaf {
        #[allow(dead_code)]
        a: String,
    }

    #[test]
    fn multi_document_and_field_paths() {
        let docs =
            documents("---\nspec: {list: [{a: x}]}\n---\n---\nspec: {list: [{a: x}, {b: 1}]}\n")
                .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].index, 3);
        assert!(typed::<Outer>(&docs[0].value).is_ok());
        let e = typed::<Outer>(&docs[1].value).unwrap_err();
        assert!(e.contains("spec.list[1].b"), "{e}");
        assert!(e.contains("unknown field `b`"), "{e}");
    }

    #[test]
    fn bad_yaml_is_an_error_and_aliases_resolve() {
        assert!(matches!(documents("a: [1,"), Err(YamlError::Syntax(_))));
        // Anchors are resolved by the loader.
        let docs = documents("a: &x 1\nb: *x\n").unwrap();
        assert_eq!(docs[0].value["b"], 1);
    }
}
