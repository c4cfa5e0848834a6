//! The SBOMs that list some packages, as [`crate::db::Database::holders_of`] reads them: each
//! SBOM once, however many of the packages it lists, and which of them it lists.

use std::collections::HashMap;

use super::SbomRow;

/// The SBOMs that list some packages: each SBOM once, however many of the packages it lists,
/// so that its row is read and kept once.
#[derive(Debug, Default)]
pub struct Holders {
    pub sboms: Vec<SbomRow>,
    /// (package id, index in `sboms`) for each package an SBOM lists.
    pub listings: Vec<(i64, usize)>,
    /// Each SBOM's index in `sboms`, by digest.
    at: HashMap<String, usize>,
}

impl Holders {
    /// Notes that the SBOM of `digest` lists `package`; `read` gives its row, called when the
    /// SBOM is new here.
    pub fn add<E>(
        &mut self,
        package: i64,
        digest: &str,
        read: impl FnOnce() -> Result<SbomRow, E>,
    ) -> Result<(), E> {
        let at = match self.at.get(digest) {
            Some(at) => *at,
            None => {
                let at = self.sboms.len();
                self.sboms.push(read()?);
                self.at.insert(digest.to_owned(), at);
                at
            }
        };
        self.listings.push((package, at));
        Ok(())
    }

    /// Each (package id, SBOM that lists it).
    pub fn pairs(&self) -> impl Iterator<Item = (i64, &SbomRow)> {
        self.listings
            .iter()
            .filter_map(|(package, at)| Some((*package, self.sboms.get(*at)?)))
    }

    /// Adds what a read of other packages found (an SBOM both list is kept once).
    pub fn merge(&mut self, other: Holders) {
        let mut renumbered = Vec::with_capacity(other.sboms.len());
        for sbom in other.sboms {
            let at = match self.at.get(&sbom.digest) {
                Some(at) => *at,
                None => {
                    let at = self.sboms.len();
                    self.at.insert(sbom.digest.clone(), at);
                    self.sboms.push(sbom);
                    at
                }
            };
            renumbered.push(at);
        }
        for (package, at) in other.listings {
            if let Some(at) = renumbered.get(at) {
                self.listings.push((package, *at));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sbom(digest: &str) -> SbomRow {
        SbomRow {
            digest: digest.to_owned(),
            image: format!("image-of-{digest}"),
            status: "found".into(),
            provenance: "unsigned".into(),
            signer: String::new(),
            format: "spdx".into(),
            error: String::new(),
        }
    }

    #[test]
    fn holders_keep_each_sbom_once_across_listings_and_halves() {
        let mut reads = 0;
        let mut first = Holders::default();
        for (package, digest) in [(1, "sha256:a"), (2, "sha256:a"), (1, "sha256:b")] {
            first
                .add(package, digest, || {
                    reads += 1;
                    Ok::<_, ()>(sbom(digest))
                })
                .unwrap();
        }
        // A row is read only for an SBOM not seen before.
        assert_eq!(reads, 2);
        let mut second = Holders::default();
        for (package, digest) in [(3, "sha256:c"), (3, "sha256:a")] {
            second
                .add(package, digest, || Ok::<_, ()>(sbom(digest)))
                .unwrap();
        }
        first.merge(second);
        let digests: Vec<&str> = first.sboms.iter().map(|s| s.digest.as_str()).collect();
        assert_eq!(digests, ["sha256:a", "sha256:b", "sha256:c"]);
        let pairs: Vec<(i64, &str)> = first.pairs().map(|(p, s)| (p, s.digest.as_str())).collect();
        assert_eq!(
            pairs,
            [
                (1, "sha256:a"),
                (2, "sha256:a"),
                (1, "sha256:b"),
                (3, "sha256:c"),
                (3, "sha256:a")
            ]
        );
        // A read that fails adds nothing.
        assert_eq!(
            first.add(4, "sha256:d", || Err::<SbomRow, _>("no row")),
            Err("no row")
        );
        assert_eq!(first.pairs().count(), 5);
    }
}
