//! Plugin. (Skeleton.)
