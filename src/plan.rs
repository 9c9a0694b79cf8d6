//! Plan. (Skeleton: being filled in.)
/// Placeholder.
#[derive(Debug)]
pub struct Problem;
/// Placeholder.
pub fn format_problems(_p: &[Problem]) -> String { String::new() }
