//! EngineFingerprint. (Skeleton: being filled in.)
