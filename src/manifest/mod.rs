//! The job manifest: TOML → raw, typed sections, and errors that name the file, the line and the dotted key.
//!
//! This layer only reads the file and parses it. It does not check that paths exist or that values fit together:
//! that is validation's job in `crate::plan`, which reports every problem at once.

mod load;
mod locate;
mod quality;
mod types;
mod values;

pub use load::{
    json_schema, json_schema_text, load, load_all, parse, parse_all, JobSpec, ManifestError, ParseProblem, Parsed,
};
pub use quality::{QualitySection, Reference};
pub use types::*;
pub use values::{ByteSize, Gpus, SizeError};

/// The manifest format version this build reads.
pub const MANIFEST_VERSION: u32 = 1;
