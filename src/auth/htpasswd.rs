//! htpasswd files as distribution and Harbor use them: one `user:hash` line per user, bcrypt
//! hashes only (`$2a$`, `$2b$`, `$2y$`; `htpasswd -B`). Other hash formats (MD5 `$apr1$`, SHA-1
//! `{SHA}`, crypt, plain text) are refused when the file is read, naming the line, rather than
//! accepted weakly. Blank lines and `#` comments are skipped.
//!
//! This module parses and checks passwords; it knows nothing of HTTP or of who may pull what.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HtpasswdError {
    #[error("line {line}: expected `user:hash`")]
    NoSeparator { line: usize },
    #[error("line {line}: empty user name")]
    EmptyUser { line: usize },
    #[error("line {line}: user {user:?} appears twice (first on line {first})")]
    Duplicate {
        line: usize,
        user: String,
        first: usize,
    },
    #[error("line {line}: the hash of user {user:?} is not bcrypt (create it with `htpasswd -B`)")]
    NotBcrypt { line: usize, user: String },
    #[error("line {line}: the bcrypt cost of user {user:?} is {cost}; portcullis accepts 4 to {MAX_COST} (`htpasswd -B -C`)")]
    Cost {
        line: usize,
        user: String,
        cost: u32,
    },
    #[error("holds no user")]
    Empty,
}

/// The highest bcrypt cost accepted (`htpasswd` itself allows 17): each step doubles the time
/// of every check, and 31 would take days.
const MAX_COST: u32 = 17;

/// The users of an htpasswd file and their bcrypt hashes.
#[derive(Clone)]
pub struct Htpasswd {
    users: BTreeMap<String, String>,
    /// A hash of the file's cost that no password is checked against successfully in practice:
    /// checked for unknown users, so that their answer takes as long as a wrong password's.
    dummy: String,
}

impl std::fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes are secrets too (offline guessing): only the user names are shown.
        f.debug_struct("Htpasswd")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Htpasswd {
    pub fn parse(text: &str) -> Result<Htpasswd, HtpasswdError> {
        let mut users = BTreeMap::new();
        let mut lines_of = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let entry = raw.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let (user, hash) = entry
                .split_once(':')
                .ok_or(HtpasswdError::NoSeparator { line })?;
            if user.is_empty() {
                return Err(HtpasswdError::EmptyUser { line });
            }
            if !is_bcrypt(hash) {
                return Err(HtpasswdError::NotBcrypt {
                    line,
                    user: user.chars().take(64).collect(),
                });
            }
            let cost = bcrypt_cost(hash).unwrap_or(0);
            if !(4..=MAX_COST).contains(&cost) {
                return Err(HtpasswdError::Cost {
                    line,
                    user: user.chars().take(64).collect(),
                    cost,
                });
            }
            if let Some(first) = lines_of.insert(user.to_owned(), line) {
                return Err(HtpasswdError::Duplicate {
                    line,
                    user: user.chars().take(64).collect(),
                    first,
                });
            }
            users.insert(user.to_owned(), hash.to_owned());
        }
        // An unknown user is checked against a real user's hash (the answer is ignored), so it
        // costs what a wrong password costs; no hash is computed here, so reading a file with a
        // high cost stays instant (start-up, reloads).
        let dummy = users.values().next().cloned().ok_or(HtpasswdError::Empty)?;
        Ok(Htpasswd { users, dummy })
    }

    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// Whether `password` is `user`'s. CPU work (bcrypt, tens of milliseconds): call it off the
    /// async workers. An unknown user costs the same as a wrong password.
    pub fn check(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, &self.dummy);
                false
            }
        }
    }
}

/// The cost field of a bcrypt hash (`$2y$NN$...`).
fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.get(4..6)?.parse().ok()
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) && hash.len() == 60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_lines_are_read_and_checked() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let file = Htpasswd::parse(&format!("# users\n\nci:{hash}\n")).unwrap();
        assert!(file.check("ci", "s3cret"));
        assert!(!file.check("ci", "S3cret"));
        assert!(!file.check("nobody", "s3cret"));
        assert_eq!(file.users().collect::<Vec<_>>(), ["ci"]);
        assert!(
            !format!("{file:?}").contains(&hash),
            "hashes are not printed"
        );
        // `htpasswd -B` writes $2y$.
        assert!(is_bcrypt(&hash.replacen("$2b$", "$2y$", 1)));
        assert!(is_bcrypt(&file.dummy));
    }

    #[test]
    fn bad_lines_are_named() {
        let hash = bcrypt::hash("x", 4).unwrap();
        assert_eq!(
            Htpasswd::parse("ci").err(),
            Some(HtpasswdError::NoSeparator { line: 1 })
        );
        assert_eq!(
            Htpasswd::parse(&format!("\n:{hash}")).err(),
            Some(HtpasswdError::EmptyUser { line: 2 })
        );
        assert_eq!(
            Htpasswd::parse("ci:$apr1$abc$def").err(),
            Some(HtpasswdError::NotBcrypt {
                line: 1,
                user: "ci".into()
            })
        );
        assert_eq!(
            Htpasswd::parse("ci:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=").err(),
            Some(HtpasswdError::NotBcrypt {
                line: 1,
                user: "ci".into()
            })
        );
        assert_eq!(
            Htpasswd::parse(&format!("ci:{hash}\nci:{hash}")).err(),
            Some(HtpasswdError::Duplicate {
                line: 2,
                user: "ci".into(),
                first: 1
            })
        );
        assert_eq!(
            Htpasswd::parse("# nobody\n").err(),
            Some(HtpasswdError::Empty)
        );
        // A cost that would make every check (and start-up) take days is refused.
        let slow = format!("$2y$31${}", &hash[7..]);
        assert_eq!(
            Htpasswd::parse(&format!("ci:{slow}")).err(),
            Some(HtpasswdError::Cost {
                line: 1,
                user: "ci".into(),
                cost: 31
            })
        );
    }
}
