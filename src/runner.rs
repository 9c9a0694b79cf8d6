//! Runs a plan over many files. (Skeleton: being filled in.)
