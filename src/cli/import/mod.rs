//! `portcullis import kyverno|policy-controller FILE... [-o OUT] [--allow-partial]`: portcullis
//! configuration from the admission policies a team already has.
//!
//! Each input file may hold several YAML documents; each document is one Kyverno
//! `ClusterPolicy`/`Policy` ([`kyverno`]) or one policy-controller `ClusterImagePolicy`
//! ([`policy_controller`]). Image patterns are translated by [`glob`], attestation conditions
//! by [`condition`], and the result written by [`output`] as a whole configuration file that
//! is loaded back with [`Config::from_yaml`] before it is written: what this command prints
//! always loads.
//!
//! A field this command does not know is an error naming it. A field it knows but portcullis
//! cannot do is written as a `NOT CARRIED OVER` comment above the rule, and makes the command
//! exit 1 unless `--allow-partial` is given.

pub mod condition;
pub mod glob;
pub mod identity;
pub mod kyverno;
pub mod output;
pub mod policy_controller;
pub mod yaml;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::{Config, Source};

/// Which admission controller the inputs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tool {
    Kyverno,
    PolicyController,
}

impl Tool {
    fn command(self) -> &'static str {
        match self {
            Tool::Kyverno => "kyverno",
            Tool::PolicyController => "policy-controller",
        }
    }
    fn tool(self) -> &'static str {
        match self {
            Tool::Kyverno => "Kyverno",
            Tool::PolicyController => "policy-controller",
        }
    }
}

/// The command's arguments, for `main`'s command line.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The tool the policies were written for.
    #[arg(value_enum)]
    pub from: Tool,
    /// Policy files (YAML, several documents each allowed).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Write the configuration here instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Exit 0 even when something could not be carried over (it is still written as a comment).
    #[arg(long)]
    pub allow_partial: bool,
}

/// Something wrong with one document, before the file and document are known.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("{0}")]
    Shape(String),
    #[error("field `{field}`: {reason}")]
    Value { field: String, reason: String },
    #[error("field `{field}`: {error}")]
    Glob {
        field: String,
        error: Box<glob::GlobError>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: {error}")]
    Yaml {
        file: String,
        error: yaml::YamlError,
    },
    #[error("{file}: document {doc}: {error}")]
    Document {
        file: String,
        doc: usize,
        error: DocError,
    },
    #[error("{file}: no {tool} policy found")]
    Empty { file: String, tool: &'static str },
    /// The translation does not load: a fault of this command, never of the input.
    #[error("the imported configuration does not load ({0}); please report this with the input")]
    Output(#[source] Box<crate::config::ConfigError>),
}

/// The configuration imported from some files, and what it could not carry over.
#[derive(Debug)]
pub struct Imported {
    pub yaml: String,
    /// One line per item not carried over, prefixed with its rule.
    pub not_carried: Vec<String>,
    pub rules: usize,
}

/// Checks `apiVersion` (its group) and `kind` before the document is read as that kind, so a
/// document of another tool is named as such rather than by its first unknown field.
pub fn check_kind(value: &serde_json::Value, group: &str, kinds: &[&str]) -> Result<(), DocError> {
    let field = |k: &str| {
        value
            .get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    let api = field("apiVersion");
    if api.split_once('/').map(|(g, _)| g) != Some(group) {
        return Err(DocError::Value {
            field: "apiVersion".into(),
            reason: format!("{api:?} is not in the API group {group}"),
        });
    }
    let kind = field("kind");
    if !kinds.contains(&kind) {
        return Err(DocError::Value {
            field: "kind".into(),
            reason: format!("{kind:?}: expected {}", kinds.join(" or ")),
        });
    }
    Ok(())
}

/// Translates the `(file name, text)` inputs. `written_to` names the output file for loading
/// it back (relative paths in it resolve from there).
pub fn import(
    from: Tool,
    inputs: &[(String, String)],
    written_to: Option<&Path>,
) -> Result<Imported, ImportError> {
    let mut rules = Vec::new();
    for (file, text) in inputs {
        let docs = yaml::documents(text).map_err(|error| ImportError::Yaml {
            file: file.clone(),
            error,
        })?;
        if docs.is_empty() {
            return Err(ImportError::Empty {
                file: file.clone(),
                tool: from.tool(),
            });
        }
        for doc in docs {
            let origin = format!("{file} (document {})", doc.index);
            let translated = match from {
                Tool::Kyverno => kyverno::translate(&doc.value, &origin),
                Tool::PolicyController => policy_controller::translate(&doc.value, &origin),
            };
            rules.extend(translated.map_err(|error| ImportError::Document {
                file: file.clone(),
                doc: doc.index,
                error,
            })?);
        }
    }
    output::finish(&mut rules, from.tool());
    let names: Vec<String> = inputs.iter().map(|(f, _)| f.clone()).collect();
    let yaml = output::render(&rules, from.command(), &names);
    let source =
        Source::File(written_to.map_or_else(|| PathBuf::from("imported.yaml"), Path::to_path_buf));
    Config::from_yaml(&yaml, source).map_err(|e| ImportError::Output(Box::new(e)))?;
    let not_carried = rules
        .iter()
        .flat_map(|r| {
            r.not_carried
                .iter()
                .map(move |m| format!("rule {:?}: {m}", r.name))
        })
        .collect();
    Ok(Imported {
        yaml,
        not_carried,
        rules: rules.len(),
    })
}

/// Runs the command: `Ok(false)` (exit 1) when something was not carried over and
/// `--allow-partial` was not given.
pub fn run(args: ImportArgs) -> anyhow::Result<bool> {
    let mut inputs = Vec::new();
    for f in &args.files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        inputs.push((f.display().to_string(), text));
    }
    let imported = import(args.from, &inputs, args.output.as_deref())?;
    match &args.output {
        Some(path) => std::fs::write(path, &imported.yaml)
            .with_context(|| format!("writing {}", path.display()))?,
        None => print!("{}", imported.yaml),
    }
    for line in &imported.not_carried {
        eprintln!("portcullis: not carried over: {line}");
    }
    if imported.not_carried.is_empty() {
        eprintln!(
            "portcullis: imported {} rule(s) from {} file(s)",
            imported.rules,
            inputs.len()
        );
        return Ok(true);
    }
    eprintln!(
        "portcullis: imported {} rule(s); {} item(s) not carried over (see the NOT CARRIED OVER comments){}",
        imported.rules,
        imported.not_carried.len(),
        if args.allow_partial { "" } else { "; exit status 1 (--allow-partial accepts this)" }
    );
    Ok(args.allow_partial)
}

#[cfg(test)]
mod tests;
