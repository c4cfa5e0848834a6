//! The ground floor: the OCI vocabulary every other module speaks. Parsed names and digests
//! ([`reference`]), media and artifact types ([`media`]), and one parsed view of a manifest or
//! an index ([`document`]).
//!
//! This module imports nothing from the rest of the crate: it knows no configuration, no HTTP,
//! no policy. Everything in it is built by parsing, so a value of one of its types is valid.

pub mod document;
pub mod media;
pub mod reference;

pub use document::{Descriptor, Document, DocumentError, Platform, Reading};
pub use reference::{
    split_image_ref, Algorithm, Digest, Hasher, ImageName, ParseError, Reference, RepoName, Tag,
};
