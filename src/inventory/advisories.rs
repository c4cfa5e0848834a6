//! `portcullis advisories import FILE|DIR|ZIP`: OSV documents read from a file, a directory
//! (recursively, `*.json`) or a zip archive (OSV's `all.zip` per ecosystem, read offline) and
//! stored in the database, each replacing what was stored under its id. A document that is not
//! an OSV advisory is skipped and named with its reason; withdrawn advisories are stored (so a
//! look-up by id says so) but never match.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::osv::Advisory;
use crate::db::inventory::AdvisoryRow;
use crate::db::{Database, DbError};

/// The largest advisory document read (OSV records are a few KiB; a few are large).
pub const MAX_DOCUMENT: u64 = 8 * 1024 * 1024;
/// Advisories written per transaction.
const BATCH: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("reading the zip archive {}: {error}", path.display())]
    Zip {
        path: PathBuf,
        error: zip::result::ZipError,
    },
    #[error("storing advisories: {0}")]
    Db(#[from] DbError),
}

/// What an import did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportReport {
    pub imported: usize,
    pub withdrawn: usize,
    /// (where, why) of each document skipped.
    pub skipped: Vec<(String, String)>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "imported {} advisories ({} of them withdrawn); skipped {}",
            self.imported,
            self.withdrawn,
            self.skipped.len()
        )?;
        for (at, why) in &self.skipped {
            writeln!(f, "  skipped {at}: {why}")?;
        }
        Ok(())
    }
}

/// The row an advisory is stored as.
pub fn row(a: &Advisory, document: String) -> AdvisoryRow {
    AdvisoryRow {
        id: a.id.clone(),
        modified: a.modified.clone(),
        withdrawn: a.withdrawn.clone().unwrap_or_default(),
        summary: a.summary.clone(),
        document,
        ids: a.ids().map(|i| i.trim().to_ascii_uppercase()).collect(),
        packages: a
            .packages()
            .into_iter()
            .map(|(eco, name)| (eco.to_owned(), name))
            .collect(),
    }
}

struct Importer<'a> {
    db: &'a Database,
    pending: Vec<AdvisoryRow>,
    report: ImportReport,
}

impl Importer<'_> {
    async fn document(&mut self, at: String, bytes: Vec<u8>) -> Result<(), ImportError> {
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                self.report.skipped.push((at, "not UTF-8".to_owned()));
                return Ok(());
            }
        };
        match Advisory::parse(text.as_bytes()) {
            Ok(a) => {
                self.report.imported += 1;
                self.report.withdrawn += usize::from(a.withdrawn.is_some());
                self.pending.push(row(&a, text));
                if self.pending.len() >= BATCH {
                    self.db
                        .put_advisories(std::mem::take(&mut self.pending))
                        .await?;
                }
            }
            Err(e) => self.report.skipped.push((at, e.to_string())),
        }
        Ok(())
    }
}

/// Imports every advisory under `path` into `db`.
pub async fn import(db: &Database, path: &Path) -> Result<ImportReport, ImportError> {
    let mut imp = Importer {
        db,
        pending: Vec::new(),
        report: ImportReport::default(),
    };
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |error| ImportError::Read { path, error }
    };
    let meta = std::fs::metadata(path).map_err(read_err(path))?;
    if meta.is_dir() {
        let mut dirs = vec![path.to_path_buf()];
        let mut files = Vec::new();
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).map_err(read_err(&d))? {
                let p = e.map_err(read_err(&d))?.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "json") {
                    files.push(p);
                }
            }
        }
        files.sort();
        for f in files {
            let bytes = read_bounded(&f)?;
            imp.document(f.display().to_string(), bytes).await?;
        }
    } else if is_zip(path)? {
        let file = std::fs::File::open(path).map_err(read_err(path))?;
        let zip_err = |error| ImportError::Zip {
            path: path.to_path_buf(),
            error,
        };
        let mut archive = zip::ZipArchive::new(file).map_err(zip_err)?;
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).map_err(zip_err)?;
            let name = entry.name().map_err(zip_err)?.into_owned();
            if !entry.is_file() || !name.ends_with(".json") {
                continue;
            }
            let at = format!("{}:{name}", path.display());
            let mut bytes = Vec::new();
            (&mut entry)
                .take(MAX_DOCUMENT + 1)
                .read_to_end(&mut bytes)
                .map_err(read_err(path))?;
            if bytes.len() as u64 > MAX_DOCUMENT {
                imp.report
                    .skipped
                    .push((at, format!("larger than {MAX_DOCUMENT} bytes")));
                continue;
            }
            imp.document(at, bytes).await?;
        }
    } else {
        let bytes = read_bounded(path)?;
        imp.document(path.display().to_string(), bytes).await?;
    }
    let rest = std::mem::take(&mut imp.pending);
    db.put_advisories(rest).await?;
    Ok(imp.report)
}

fn is_zip(path: &Path) -> Result<bool, ImportError> {
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(|error| ImportError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let n = f.read(&mut magic).unwrap_or(0);
    Ok(n == 4 && magic == *b"PK\x03\x04")
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, ImportError> {
    let err = |error| ImportError::Read {
        path: path.to_path_buf(),
        error,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(err)?
        .take(MAX_DOCUMENT + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() as u64 > MAX_DOCUMENT {
        return Err(ImportError::Read {
            path: path.to_path_buf(),
            error: std::io::Error::other(format!("larger than {MAX_DOCUMENT} bytes")),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
