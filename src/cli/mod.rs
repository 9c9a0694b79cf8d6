//! The command line's parts: [`args`] (what was typed), [`env`] (the only place that reads environment
//! variables), [`output`] (text or JSON lines), and one module per command that is not a plain library call.

pub(crate) mod args;
pub(crate) mod bench;
pub(crate) mod doctor;
pub(crate) mod env;
pub(crate) mod output;
pub(crate) mod single_file;

pub(crate) use output::Output;
