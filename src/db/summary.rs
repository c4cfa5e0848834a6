//! The window's pull rows summed in one pass, in Rust: per (image, digest, rule, mode, verdict,
//! admission) a [`DigestSummary`], and per (image, rule, verdict, admission) its distinct clients
//! ([`ImageClients`]). Both backends stream the rows of [`COLUMNS`] into a [`Summaries`]; this
//! is what the audit report reads. Grouping in SQL needed two passes, each sorting the window's
//! rows for its `GROUP BY` and building a b-tree per group for `count(DISTINCT ...)`; here a row
//! costs two hash look-ups, and allocates only when it opens a group or brings a new client or
//! tag. Memory is bounded by the groups and their distinct clients, not by the rows.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::{DigestSummary, ImageClients};

/// The columns each backend selects, in [`Row`]'s order.
pub const COLUMNS: &str = "image, digest, upstream, rule, mode, verdict, admission, finding, tag, \
     reasons, identities, client_addr, user_name, pulls, first_seen, last_seen";

/// One row of [`COLUMNS`], borrowed from the driver's row.
pub struct Row<'a> {
    pub image: &'a str,
    pub digest: &'a str,
    pub upstream: &'a str,
    pub rule: &'a str,
    pub mode: &'a str,
    pub verdict: &'a str,
    pub admission: &'a str,
    pub finding: &'a str,
    pub tag: &'a str,
    pub reasons: &'a str,
    pub identities: &'a str,
    pub client_addr: &'a str,
    pub user_name: &'a str,
    pub pulls: i64,
    pub first_seen: i64,
    pub last_seen: i64,
}

struct Group {
    summary: DigestSummary,
    tags: BTreeSet<String>,
    clients: HashSet<String>,
}

struct ImageGroup {
    image: String,
    rule: String,
    verdict: String,
    admission: String,
    clients: HashSet<String>,
}

/// The sums so far; [`Summaries::finish`] gives them in key order.
#[derive(Default)]
pub struct Summaries {
    groups: HashMap<String, Group>,
    images: HashMap<String, ImageGroup>,
    key: String,
    client: String,
}

/// Sets `buf` to the parts joined by NUL (which no column holds).
fn join(buf: &mut String, parts: &[&str]) {
    buf.clear();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            buf.push('\0');
        }
        buf.push_str(p);
    }
}

/// The larger of the kept value and `candidate` (SQL's `max` over text).
fn keep_max(kept: &mut String, candidate: &str) {
    if candidate > kept.as_str() {
        candidate.clone_into(kept);
    }
}

impl Summaries {
    pub fn add(&mut self, r: Row<'_>) {
        join(&mut self.client, &[r.client_addr, r.user_name]);
        join(
            &mut self.key,
            &[r.image, r.digest, r.rule, r.mode, r.verdict, r.admission],
        );
        match self.groups.get_mut(self.key.as_str()) {
            Some(g) => {
                let s = &mut g.summary;
                keep_max(&mut s.upstream, r.upstream);
                keep_max(&mut s.finding, r.finding);
                keep_max(&mut s.reasons, r.reasons);
                keep_max(&mut s.identities, r.identities);
                s.pulls += r.pulls;
                s.first_seen = s.first_seen.min(r.first_seen);
                s.last_seen = s.last_seen.max(r.last_seen);
                if !r.tag.is_empty() && !g.tags.contains(r.tag) {
                    g.tags.insert(r.tag.to_owned());
                }
                if !g.clients.contains(self.client.as_str()) {
                    g.clients.insert(self.client.clone());
                }
            }
            None => {
                let group = Group {
                    summary: DigestSummary {
                        image: r.image.to_owned(),
                        digest: r.digest.to_owned(),
                        upstream: r.upstream.to_owned(),
                        rule: r.rule.to_owned(),
                        mode: r.mode.to_owned(),
                        verdict: r.verdict.to_owned(),
                        admission: r.admission.to_owned(),
                        finding: r.finding.to_owned(),
                        tags: Vec::new(),
                        reasons: r.reasons.to_owned(),
                        identities: r.identities.to_owned(),
                        pulls: r.pulls,
                        clients: 0,
                        first_seen: r.first_seen,
                        last_seen: r.last_seen,
                    },
                    tags: if r.tag.is_empty() {
                        BTreeSet::new()
                    } else {
                        BTreeSet::from([r.tag.to_owned()])
                    },
                    clients: HashSet::from([self.client.clone()]),
                };
                self.groups.insert(self.key.clone(), group);
            }
        }
        join(&mut self.key, &[r.image, r.rule, r.verdict, r.admission]);
        match self.images.get_mut(self.key.as_str()) {
            Some(g) => {
                if !g.clients.contains(self.client.as_str()) {
                    g.clients.insert(self.client.clone());
                }
            }
            None => {
                let group = ImageGroup {
                    image: r.image.to_owned(),
                    rule: r.rule.to_owned(),
                    verdict: r.verdict.to_owned(),
                    admission: r.admission.to_owned(),
                    clients: HashSet::from([self.client.clone()]),
                };
                self.images.insert(self.key.clone(), group);
            }
        }
    }

    /// The digest summaries and the images' distinct clients, each sorted by its key.
    pub fn finish(self) -> (Vec<DigestSummary>, Vec<ImageClients>) {
        let mut digests: Vec<(String, DigestSummary)> = self
            .groups
            .into_iter()
            .map(|(k, g)| {
                let mut s = g.summary;
                s.tags = g.tags.into_iter().collect();
                s.clients = g.clients.len() as i64;
                (k, s)
            })
            .collect();
        digests.sort_by(|a, b| a.0.cmp(&b.0));
        let mut images: Vec<(String, ImageClients)> = self
            .images
            .into_iter()
            .map(|(k, g)| {
                (
                    k,
                    ImageClients {
                        image: g.image,
                        rule: g.rule,
                        verdict: g.verdict,
                        admission: g.admission,
                        clients: g.clients.len() as i64,
                    },
                )
            })
            .collect();
        images.sort_by(|a, b| a.0.cmp(&b.0));
        (
            digests.into_iter().map(|(_, s)| s).collect(),
            images.into_iter().map(|(_, c)| c).collect(),
        )
    }
}
