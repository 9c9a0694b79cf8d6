//! ABI. (Skeleton.)
