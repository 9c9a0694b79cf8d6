//! Media: demux/mux and decode/encode through FFmpeg. (Skeleton: being filled in.)
