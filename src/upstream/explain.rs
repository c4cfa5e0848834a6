//! Which upstream and repository an image name maps to, which rule applies to it, and why:
//! `portcullis check-config IMAGE`'s explanation and the console's policy page, from one place.
//! Routing and rules depend only on the name, never on a tag or digest.

use std::fmt;

use crate::config::{Config, ConfigError};
use crate::oci::{split_image_ref, ImageName};
use crate::policy::{Mode, Selection, Unmatched};

use super::mapping::{resolve_name, Form};

/// What applies to one image name, and why.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The name as given.
    pub asked: String,
    pub upstream: String,
    pub url: String,
    pub canonical: ImageName,
    /// Why that upstream serves it.
    pub routed_because: &'static str,
    pub applies: Applies,
}

#[derive(Debug, Clone)]
pub enum Applies {
    Rule {
        name: String,
        mode: Mode,
        /// The pattern that won.
        pattern: String,
        /// Other (rule, pattern) pairs that match too, less specific or later in the file.
        also: Vec<(String, String)>,
    },
    Unmatched(Unmatched),
}

/// Explains `image` (a name, with or without a tag or digest) under `config`.
pub fn explain(config: &Config, image: &str) -> Result<Explanation, ConfigError> {
    let name = split_image_ref(image).0;
    let (key, repo, form) = resolve_name(name, None, &config.default_upstream, |k| {
        config.upstreams.contains_key(k)
    })
    .map_err(|e| ConfigError::Invalid {
        source_name: config.source.clone(),
        key: "IMAGE".to_owned(),
        reason: format!("{image:?}: {e}"),
    })?;
    let routed_because = match form {
        Form::Prefix => "its first path segment names a configured upstream",
        Form::Plain | Form::Mirror => {
            "no configured upstream prefixes it, so the default upstream serves it"
        }
    };
    let url = config
        .upstreams
        .get(&key)
        .map(|u| u.url.to_string())
        .unwrap_or_else(|| "?".to_owned());
    let canonical = ImageName {
        registry: key.clone(),
        repo,
    };
    let applies = match config.policies.select(&canonical) {
        Selection::Rule { rule, pattern } => {
            let also = config
                .policies
                .matches(&canonical)
                .into_iter()
                .filter(|(other, p)| other.name != rule.name || p.as_str() != pattern)
                .map(|(other, p)| (other.name.clone(), p.as_str().to_owned()))
                .collect();
            Applies::Rule {
                name: rule.name.clone(),
                mode: rule.mode,
                pattern,
                also,
            }
        }
        Selection::Unmatched(u) => Applies::Unmatched(u),
    };
    Ok(Explanation {
        asked: image.to_owned(),
        upstream: key,
        url,
        canonical,
        routed_because,
        applies,
    })
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "image {}: {} via upstream {} ({}) because {}",
            self.asked, self.canonical, self.upstream, self.url, self.routed_because
        )?;
        match &self.applies {
            Applies::Rule {
                name,
                mode,
                pattern,
                also,
            } => {
                writeln!(
                    f,
                    "rule {name:?} ({}) applies to {}: pattern {pattern:?} is the most specific match",
                    mode.as_str(),
                    self.canonical
                )?;
                for (other, p) in also {
                    writeln!(
                        f,
                        "  also matched, less specific or later in the file: {other:?} pattern {p:?}"
                    )?;
                }
                Ok(())
            }
            Applies::Unmatched(u) => writeln!(
                f,
                "no rule matches {}: unmatched: {} → {}",
                self.canonical,
                unmatched_name(*u),
                match u {
                    Unmatched::Allow => "served without signature checks",
                    Unmatched::Deny => "refused (403 DENIED)",
                }
            ),
        }
    }
}

/// How the configuration spells `unmatched`.
pub fn unmatched_name(u: Unmatched) -> &'static str {
    match u {
        Unmatched::Allow => "allow",
        Unmatched::Deny => "deny",
    }
}
