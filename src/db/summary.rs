//! The window's pull rows summed in one pass, in Rust: per (image, digest, rule, mode, verdict,
//! admission) a [`DigestSummary`], and per (image, rule, verdict, admission) its distinct clients
//! ([`ImageClients`]). Both backends stream the rows of [`COLUMNS`] into a [`Summaries`]; this
//! is what the audit report reads. Grouping in SQL needed two passes, each sorting the window's
//! rows for its `GROUP BY` and building a b-tree per group for `count(DISTINCT ...)`; here a row
//! costs a look-up of its image and of its client (numbered once), a short scan of the image's
//! groups, and allocates only when it opens a group or brings a new client or tag. Memory holds
//! the groups, the distinct clients, and one client number per row.

use std::collections::BTreeMap;

// Keyed by text the ledger holds (image names, client addresses): foldhash, seeded at random
// per process, instead of SipHash, since each of the window's rows costs two look-ups.
use foldhash::HashMap;

use super::{DigestSummary, ImageClients};

/// The columns each backend selects, in [`Row`]'s order.
pub const COLUMNS: &str = "image, digest, upstream, rule, mode, verdict, admission, finding, tag, \
     reasons, identities, client_addr, user_name, pulls, first_seen, last_seen";

/// One row of [`COLUMNS`], borrowed from the driver's row: text as its UTF-8 bytes, compared as
/// bytes (the order of UTF-8 bytes is that of the text) and turned into a `String` only when it
/// is kept, so that the rows of a group already open cost no decoding.
pub struct Row<'a> {
    pub image: &'a [u8],
    pub digest: &'a [u8],
    pub upstream: &'a [u8],
    pub rule: &'a [u8],
    pub mode: &'a [u8],
    pub verdict: &'a [u8],
    pub admission: &'a [u8],
    pub finding: &'a [u8],
    pub tag: &'a [u8],
    pub reasons: &'a [u8],
    pub identities: &'a [u8],
    pub client_addr: &'a [u8],
    pub user_name: &'a [u8],
    pub pulls: i64,
    pub first_seen: i64,
    pub last_seen: i64,
}

impl<'a> Row<'a> {
    /// The row from its columns in [`COLUMNS`] order, read by the backend's accessors.
    pub fn read<E>(
        text: impl Fn(usize) -> Result<&'a [u8], E>,
        int: impl Fn(usize) -> Result<i64, E>,
    ) -> Result<Row<'a>, E> {
        Ok(Row {
            image: text(0)?,
            digest: text(1)?,
            upstream: text(2)?,
            rule: text(3)?,
            mode: text(4)?,
            verdict: text(5)?,
            admission: text(6)?,
            finding: text(7)?,
            tag: text(8)?,
            reasons: text(9)?,
            identities: text(10)?,
            client_addr: text(11)?,
            user_name: text(12)?,
            pulls: int(13)?,
            first_seen: int(14)?,
            last_seen: int(15)?,
        })
    }
}

/// One (digest, rule, mode, verdict, admission) of an image.
struct Group {
    summary: DigestSummary,
    /// Few per group: kept in a vector, sorted at the end.
    tags: Vec<String>,
    /// Client ids ([`Summaries::client_ids`]), with repeats: sorted and deduplicated at the end.
    clients: Vec<u32>,
}

impl Group {
    fn is(&self, r: &Row<'_>) -> bool {
        let s = &self.summary;
        s.digest.as_bytes() == r.digest
            && s.rule.as_bytes() == r.rule
            && s.mode.as_bytes() == r.mode
            && s.verdict.as_bytes() == r.verdict
            && s.admission.as_bytes() == r.admission
    }
}

/// The sums so far; [`Summaries::finish`] gives them in key order.
#[derive(Default)]
pub struct Summaries {
    /// Per image, its groups: an image has a handful, found by a short scan.
    images: HashMap<Vec<u8>, Vec<Group>>,
    /// Each distinct (address, user) pair, numbered.
    client_ids: Numbers,
    client: Vec<u8>,
}

/// Distinct byte strings (clients), each numbered once in the order first seen, so that a
/// group keeps a number per row (repeats and all) and counts them with [`distinct`] at the end.
#[derive(Default)]
pub(super) struct Numbers(HashMap<Vec<u8>, u32>);

impl Numbers {
    /// The number of `key`, given it on first sight.
    pub(super) fn of(&mut self, key: &[u8]) -> u32 {
        if let Some(n) = self.0.get(key) {
            return *n;
        }
        let next = self.0.len() as u32;
        self.0.insert(key.to_vec(), next);
        next
    }
}

/// Text the database holds, which it was given as a `String`: valid UTF-8 (anything else is
/// replaced, never a panic).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The larger of the kept value and `candidate` (SQL's `max` over text).
fn keep_max(kept: &mut String, candidate: &[u8]) {
    if candidate > kept.as_bytes() {
        *kept = text(candidate);
    }
}

/// How many distinct numbers `ids` holds (sorted and deduplicated in place).
pub(super) fn distinct(ids: &mut Vec<u32>) -> i64 {
    ids.sort_unstable();
    ids.dedup();
    ids.len() as i64
}

impl Summaries {
    pub fn add(&mut self, r: Row<'_>) {
        // The client key as SQL's `client_addr || ' ' || user_name` would tell pairs apart.
        self.client.clear();
        self.client.extend_from_slice(r.client_addr);
        self.client.push(0);
        self.client.extend_from_slice(r.user_name);
        let client = self.client_ids.of(&self.client);
        let groups = match self.images.get_mut(r.image) {
            Some(g) => g,
            None => self.images.entry(r.image.to_vec()).or_default(),
        };
        match groups.iter_mut().find(|g| g.is(&r)) {
            Some(g) => {
                let s = &mut g.summary;
                keep_max(&mut s.upstream, r.upstream);
                keep_max(&mut s.finding, r.finding);
                keep_max(&mut s.reasons, r.reasons);
                keep_max(&mut s.identities, r.identities);
                s.pulls += r.pulls;
                s.first_seen = s.first_seen.min(r.first_seen);
                s.last_seen = s.last_seen.max(r.last_seen);
                if !r.tag.is_empty() && !g.tags.iter().any(|t| t.as_bytes() == r.tag) {
                    g.tags.push(text(r.tag));
                }
                g.clients.push(client);
            }
            None => groups.push(Group {
                summary: DigestSummary {
                    image: text(r.image),
                    digest: text(r.digest),
                    upstream: text(r.upstream),
                    rule: text(r.rule),
                    mode: text(r.mode),
                    verdict: text(r.verdict),
                    admission: text(r.admission),
                    finding: text(r.finding),
                    tags: Vec::new(),
                    reasons: text(r.reasons),
                    identities: text(r.identities),
                    pulls: r.pulls,
                    clients: 0,
                    first_seen: r.first_seen,
                    last_seen: r.last_seen,
                },
                tags: if r.tag.is_empty() {
                    Vec::new()
                } else {
                    vec![text(r.tag)]
                },
                clients: vec![client],
            }),
        }
    }

    /// Adds the sums of other rows (another part of the window, read at the same time): groups
    /// of the same key are combined as [`Summaries::add`] would have, clients by their text.
    pub fn merge(&mut self, other: Summaries) {
        // The other part's client numbers, as this one numbers them.
        let mut renumber = vec![0u32; other.client_ids.0.len()];
        for (client, id) in &other.client_ids.0 {
            if let Some(slot) = renumber.get_mut(*id as usize) {
                *slot = self.client_ids.of(client);
            }
        }
        for (image, theirs) in other.images {
            let groups = self.images.entry(image).or_default();
            for mut g in theirs {
                for id in &mut g.clients {
                    *id = renumber.get(*id as usize).copied().unwrap_or(*id);
                }
                match groups
                    .iter_mut()
                    .find(|mine| mine.summary.group() == g.summary.group())
                {
                    None => groups.push(g),
                    Some(mine) => {
                        let (s, t) = (&mut mine.summary, g.summary);
                        keep_max(&mut s.upstream, t.upstream.as_bytes());
                        keep_max(&mut s.finding, t.finding.as_bytes());
                        keep_max(&mut s.reasons, t.reasons.as_bytes());
                        keep_max(&mut s.identities, t.identities.as_bytes());
                        s.pulls += t.pulls;
                        s.first_seen = s.first_seen.min(t.first_seen);
                        s.last_seen = s.last_seen.max(t.last_seen);
                        for tag in g.tags {
                            if !mine.tags.contains(&tag) {
                                mine.tags.push(tag);
                            }
                        }
                        mine.clients.extend_from_slice(&g.clients);
                    }
                }
            }
        }
    }

    /// The digest summaries and the images' distinct clients, each sorted by its key.
    pub fn finish(self) -> (Vec<DigestSummary>, Vec<ImageClients>) {
        let mut digests = Vec::new();
        let mut images = Vec::new();
        for (image, groups) in self.images {
            let image = text(&image);
            // Per (rule, verdict, admission) of the image: the clients of all its digests.
            let mut by_rule: BTreeMap<(String, String, String), Vec<u32>> = BTreeMap::new();
            for mut g in groups {
                let s = &mut g.summary;
                by_rule
                    .entry((s.rule.clone(), s.verdict.clone(), s.admission.clone()))
                    .or_default()
                    .extend_from_slice(&g.clients);
                s.clients = distinct(&mut g.clients);
                g.tags.sort();
                s.tags = g.tags;
                digests.push(g.summary);
            }
            for ((rule, verdict, admission), mut ids) in by_rule {
                images.push(ImageClients {
                    image: image.clone(),
                    rule,
                    verdict,
                    admission,
                    clients: distinct(&mut ids),
                });
            }
        }
        digests.sort_by(|a, b| a.group().cmp(&b.group()));
        images.sort_by(|a, b| a.group().cmp(&b.group()));
        (digests, images)
    }
}
