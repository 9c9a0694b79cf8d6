//! The threaded decode → infer → encode pipeline for one file. Read a frame's life in this order: [`file`] (plan
//! the file, open the output, publish), [`stages`] (`decode`, `infer`, `encode` threads and their queues), with
//! [`msg`] (what moves between stages), [`engine`] (what runs the model), [`publish`] (atomic outputs),
//! [`progress`], [`cancel`], [`report`] and [`describe`] (what `videoforge plan` shows per file) beside them.
//!
//! Buffers are recycled through return channels, so the steady state allocates nothing per frame. The end of the
//! stream is an explicit message: a stage that sees its queue close without it knows that upstream failed (or was
//! cancelled) and never finalises a partial output.

mod cancel;
mod describe;
pub mod engine;
mod file;
mod msg;
mod progress;
pub mod publish;
pub mod quality;
mod report;
mod stages;

pub use cancel::Cancel;
pub use describe::{describe_file, file_lines};
pub use engine::{Engine, EngineBuilder};
pub use file::{frame_size, input_facts, plan_input, upscale_file, FileJob};
pub use progress::{FileProgress, Progress, ProgressSink};
pub use publish::partial_path;
pub use report::{peak_rss_bytes, process_cpu_s, FileReport, QueueReport, StageReport};
