//! The threaded decode → infer → encode pipeline. (Skeleton: being filled in.)
