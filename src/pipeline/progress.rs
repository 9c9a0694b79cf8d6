//! Progress: per-frame reports of one file, drawn as bars on a terminal or written as JSON lines (at most one per
//! second per file) on stderr otherwise.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Progress of one file, reported after every encoded frame.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// The input file.
    pub input: PathBuf,
    /// Frames encoded so far.
    pub frames_done: u64,
    /// Frames expected (from the container's frame count, or duration × frame rate), if known.
    pub frames_total: Option<u64>,
    /// Video packets (frames) handed to the muxer so far: behind `frames_done` by what the encoder holds back.
    pub frames_muxed: u64,
    /// Bytes of the packets handed to the muxer so far (the output's size, give or take the container).
    pub bytes_muxed: u64,
    /// Frames per second so far.
    pub fps: f64,
}

type ProgressFn<'a> = Box<dyn Fn(&Progress) + Send + Sync + 'a>;

/// Where one file's progress goes.
pub struct FileProgress<'a> {
    callback: Option<ProgressFn<'a>>,
}

impl<'a> FileProgress<'a> {
    /// Report through `f`.
    pub fn new(f: impl Fn(&Progress) + Send + Sync + 'a) -> FileProgress<'a> {
        FileProgress { callback: Some(Box::new(f)) }
    }

    /// Report nothing.
    pub fn none() -> FileProgress<'static> {
        FileProgress { callback: None }
    }

    pub(crate) fn report(&self, p: &Progress) {
        if let Some(f) = &self.callback {
            f(p)
        }
    }
}

/// Progress display for a whole run: bars on a terminal, JSON lines (at most one per second per file) on stderr
/// otherwise, nothing when disabled.
pub struct ProgressSink {
    enabled: bool,
    terminal: bool,
    multi: indicatif::MultiProgress,
    files: indicatif::ProgressBar,
}

impl ProgressSink {
    /// A sink for a run of `files` files. `bars`: draw bars on a terminal (an audited run does not: drawing
    /// allocates, and the audit counts every thread's allocations; it gets the JSON lines instead).
    pub fn new(enabled: bool, files: usize, bars: bool) -> ProgressSink {
        use std::io::IsTerminal;
        let terminal = enabled && bars && std::io::stderr().is_terminal();
        let multi = indicatif::MultiProgress::new();
        let files = if terminal {
            let b = multi.add(indicatif::ProgressBar::new(files as u64));
            if let Ok(style) = indicatif::ProgressStyle::with_template("files {pos}/{len} {wide_bar} {elapsed}") {
                b.set_style(style);
            }
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        ProgressSink { enabled, terminal, multi, files }
    }

    /// The progress reporter for one file.
    pub fn file(&self, input: &Path) -> FileProgress<'_> {
        if !self.enabled {
            return FileProgress::none();
        }
        if self.terminal {
            let bar = self.multi.add(indicatif::ProgressBar::new(0));
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{msg} {pos}/{len} frames {wide_bar} {per_sec} eta {eta}")
            {
                bar.set_style(style);
            }
            bar.set_message(input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            return FileProgress::new(move |p: &Progress| {
                if let Some(t) = p.frames_total {
                    bar.set_length(t.max(p.frames_done));
                }
                bar.set_position(p.frames_done);
            });
        }
        /// One progress line: `{"progress": {...}}`.
        #[derive(Serialize)]
        struct Line<'a> {
            progress: &'a Progress,
        }
        // The line is written through one buffer made here: reporting progress allocates nothing per frame.
        let state = Mutex::new((None::<Instant>, Vec::<u8>::with_capacity(1024)));
        FileProgress::new(move |p: &Progress| {
            let Ok(mut state) = state.lock() else { return };
            let (last, buf) = &mut *state;
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return;
            }
            *last = Some(Instant::now());
            buf.clear();
            if serde_json::to_writer(&mut *buf, &Line { progress: p }).is_ok() {
                buf.push(b'\n');
                // Progress lines are best effort: a closed stderr must not fail the file.
                std::io::Write::write_all(&mut std::io::stderr().lock(), buf).ok();
            }
        })
    }

    /// A file was skipped (already complete).
    pub fn file_skipped(&self) {
        self.files.inc(1);
    }

    /// A file finished (any outcome).
    pub fn file_done(&self) {
        self.files.inc(1);
    }

    /// The run is over.
    pub fn finish(&self) {
        self.files.finish_and_clear();
        // Clearing the bars only redraws the terminal; failing to do so loses nothing.
        self.multi.clear().ok();
    }
}

/// Reports progress after each encoded frame (the `Progress` is reused: no allocation per frame).
pub(crate) fn report_encoded(frames: u64, t0: Instant, prog: &mut Progress, progress: &FileProgress<'_>) {
    let el = t0.elapsed().as_secs_f64();
    prog.frames_done = frames;
    prog.fps = if el > 0.0 { frames as f64 / el } else { 0.0 };
    progress.report(prog);
}
