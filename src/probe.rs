//! Machine probe. (Skeleton: being filled in.)
