//! Segment-parallel encoding: one CPU encoder instance does not keep a large machine busy at 4K (x265 kept 5.4 of
//! 16 cores busy on the lent GPU machine; see `plan::segments_for`), so consecutive segments of `length` frames go to
//! `workers` encoder instances in turn, each opened fresh with the same parameters (so each segment starts with
//! an IDR frame and carries the same stream headers), and the segments' packets are joined in order into the
//! one video stream.
//!
//! Joining is lossless: packets are written as the encoders made them. Only decoding timestamps are re-derived,
//! because each instance starts its own B-frame delay: packet `j` (in decode order) gets the `(j - d)`-th
//! smallest presentation timestamp, `d` being the encoder's declared reorder depth (or the first segment's, if
//! deeper). That is the rule the
//! encoders use inside a segment, it keeps DTS strictly increasing across the joins and never above PTS.
//!
//! Nothing here allocates on the Rust heap per frame or per segment once running: frames, packet lists and the
//! reorder heap are made up front and recycled.

use super::encoder::EncoderRecipe;
use super::error::VideoError;
use crate::queue;
use ffmpeg_next as ff;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Frames in flight per worker (its queue plus the one being filled), unless the plan says otherwise.
pub(crate) const FRAMES_PER_WORKER: usize = 8;

/// What a worker gets.
enum Job {
    Frame(ff::frame::Video),
    /// The segment ends: flush the encoder, hand its packets over.
    End,
}

/// A finished segment: its packets in decode order.
struct Done {
    index: u64,
    packets: Vec<ff::Packet>,
}

/// State shared by the dispatcher and the workers, under one lock so the dispatcher can wait for "a frame came
/// back" and "a segment finished" at once.
struct Shared {
    /// Frames back from each worker, ready to be filled again.
    free: Vec<VecDeque<ff::frame::Video>>,
    /// Finished segments not yet written.
    done: VecDeque<Done>,
    /// Empty packet lists for the workers.
    spare: Vec<Vec<ff::Packet>>,
    /// The first error of any worker.
    error: Option<VideoError>,
}

struct State {
    shared: Mutex<Shared>,
    changed: Condvar,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The encoders, their threads and the joiner.
pub(crate) struct Segments {
    state: Arc<State>,
    inputs: Vec<queue::Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    length: u64,
    /// Frames sent so far.
    sent: u64,
    /// Next segment to write.
    next: u64,
    join: Joiner,
}

/// Re-derives decoding timestamps across segments (see the module doc).
struct Joiner {
    /// Packets written so far.
    written: u64,
    /// Presentation timestamps seen and not yet used as a decoding timestamp.
    heap: BinaryHeap<Reverse<i64>>,
    /// The encoder's declared reorder depth.
    declared: u64,
    /// Reorder depth used: the declared one, or deeper if the first segment shows more.
    depth: Option<u64>,
    /// The last decoding timestamp written.
    last_dts: Option<i64>,
    /// Scratch for learning it.
    sorted: Vec<i64>,
}

impl Segments {
    /// Starts `workers` encoder threads for segments of `length` frames, with `per_worker` frames in flight each.
    /// `reorder_depth` is the encoder's declared B-frame reorder depth (`has_b_frames` of an opened instance).
    pub(crate) fn start(
        recipe: Arc<EncoderRecipe>,
        workers: usize,
        length: u64,
        reorder_depth: u64,
        per_worker: usize,
    ) -> Result<Segments, VideoError> {
        let workers = workers.max(2);
        let length = length.max(1);
        let per_worker = per_worker.max(2);
        let mut free = Vec::with_capacity(workers);
        for _ in 0..workers {
            let frames: VecDeque<_> =
                (0..per_worker).map(|_| ff::frame::Video::new(recipe.pix, recipe.width, recipe.height)).collect();
            free.push(frames);
        }
        let packets_per_segment = length as usize + 16;
        let state = Arc::new(State {
            shared: Mutex::new(Shared {
                free,
                done: VecDeque::with_capacity(4 * workers),
                spare: (0..3 * workers).map(|_| Vec::with_capacity(packets_per_segment)).collect(),
                error: None,
            }),
            changed: Condvar::new(),
        });
        let mut inputs = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = queue::bounded::<Job>(per_worker + 1);
            let (state, recipe) = (state.clone(), recipe.clone());
            let t = std::thread::Builder::new()
                .name(format!("vf-encode-{w}"))
                .spawn(move || {
                    // A panic must not leave the dispatcher waiting for this worker's frames: it becomes the error.
                    let run = std::panic::AssertUnwindSafe(|| worker(w, workers as u64, &recipe, &rx, &state));
                    if std::panic::catch_unwind(run).is_err() {
                        let panicked = VideoError::Stream(format!("encoder thread {w} panicked"));
                        state.lock().error.get_or_insert(panicked);
                        state.changed.notify_all();
                    }
                })
                .map_err(|e| VideoError::Stream(format!("cannot start an encoder thread: {e}")))?;
            inputs.push(tx);
            threads.push(t);
        }
        Ok(Segments {
            state,
            inputs,
            threads,
            length,
            sent: 0,
            next: 0,
            join: Joiner {
                written: 0,
                heap: BinaryHeap::with_capacity(64),
                declared: reorder_depth,
                depth: None,
                last_dts: None,
                sorted: Vec::with_capacity(packets_per_segment),
            },
        })
    }

    fn worker_of(&self, frame: u64) -> usize {
        ((frame / self.length) % self.inputs.len() as u64) as usize
    }

    /// A frame to fill for the next send (waits for the worker that will get it to hand one back), writing
    /// finished segments meanwhile through `write`.
    pub(crate) fn frame(
        &mut self,
        write: &mut dyn FnMut(ff::Packet) -> Result<(), VideoError>,
    ) -> Result<ff::frame::Video, VideoError> {
        let w = self.worker_of(self.sent);
        self.write_until(write, |s, _| s.free[w].pop_front())
    }

    /// Writes finished segments in order, as they finish, until `take` gives something (it sees the shared state
    /// and the next segment to write); an encoder's error ends the wait.
    fn write_until<T>(
        &mut self,
        write: &mut dyn FnMut(ff::Packet) -> Result<(), VideoError>,
        mut take: impl FnMut(&mut Shared, u64) -> Option<T>,
    ) -> Result<T, VideoError> {
        let state = self.state.clone();
        loop {
            let mut s = state.lock();
            if let Some(e) = s.error.take() {
                return Err(e);
            }
            // Finished segments first, so they never pile up while frames keep coming.
            if let Some(done) = take_next(&mut s, self.next) {
                drop(s);
                self.write_done(done, write)?;
                continue;
            }
            if let Some(t) = take(&mut s, self.next) {
                return Ok(t);
            }
            drop(state.changed.wait(s).unwrap_or_else(|e| e.into_inner()));
        }
    }

    /// Sends a filled frame (its pts set) to its segment's encoder.
    pub(crate) fn send(&mut self, frame: ff::frame::Video) -> Result<(), VideoError> {
        let w = self.worker_of(self.sent);
        self.inputs[w].send(Job::Frame(frame)).map_err(|_| self.stopped())?;
        self.sent += 1;
        if self.sent % self.length == 0 {
            self.inputs[w].send(Job::End).map_err(|_| self.stopped())?;
        }
        Ok(())
    }

    /// Why an encoder thread no longer takes input: its error, if it reported one.
    fn stopped(&self) -> VideoError {
        self.state.lock().error.take().unwrap_or_else(|| VideoError::Stream("an encoder thread stopped".into()))
    }

    /// Ends the last segment, waits for every segment and writes them all.
    pub(crate) fn finish(
        &mut self,
        write: &mut dyn FnMut(ff::Packet) -> Result<(), VideoError>,
    ) -> Result<(), VideoError> {
        if self.sent % self.length != 0 {
            let w = self.worker_of(self.sent);
            self.inputs[w].send(Job::End).map_err(|_| self.stopped())?;
        }
        let segments = self.sent.div_ceil(self.length);
        self.write_until(write, |_, next| (next >= segments).then_some(()))
    }

    /// Writes a finished segment (the next in order) and recycles its packet list.
    fn write_done(
        &mut self,
        mut done: Done,
        write: &mut dyn FnMut(ff::Packet) -> Result<(), VideoError>,
    ) -> Result<(), VideoError> {
        let result = self.join.write(&mut done.packets, write);
        done.packets.clear();
        self.state.lock().spare.push(done.packets);
        result?;
        self.next += 1;
        Ok(())
    }
}

/// The segment `next`, if it is finished.
fn take_next(s: &mut Shared, next: u64) -> Option<Done> {
    let i = s.done.iter().position(|d| d.index == next)?;
    s.done.remove(i)
}

impl Joiner {
    fn write(
        &mut self,
        packets: &mut [ff::Packet],
        write: &mut dyn FnMut(ff::Packet) -> Result<(), VideoError>,
    ) -> Result<(), VideoError> {
        let depth = match self.depth {
            Some(d) => d,
            None => {
                // The first segment is one encoder's own stream: its reorder depth is the largest distance by which
                // a packet's decode position runs ahead of its presentation rank.
                self.sorted.clear();
                self.sorted.extend(packets.iter().filter_map(|p| p.pts()));
                self.sorted.sort_unstable();
                let d = packets
                    .iter()
                    .enumerate()
                    .filter_map(|(j, p)| {
                        let rank = self.sorted.binary_search(&p.pts()?).ok()?;
                        Some(j.saturating_sub(rank) as u64)
                    })
                    .max()
                    .unwrap_or(0)
                    .max(self.declared);
                self.depth = Some(d);
                d
            }
        };
        for p in packets.iter_mut() {
            let pts = p.pts().ok_or_else(|| {
                VideoError::Stream("segment-parallel encoding: an encoder wrote a packet without a timestamp".into())
            })?;
            self.heap.push(Reverse(pts));
            if self.written >= depth {
                if let Some(Reverse(dts)) = self.heap.pop() {
                    if dts > pts {
                        return Err(VideoError::Stream(format!(
                            "segments do not join: a packet at pts {pts} would decode at {dts} (reorder deeper than the \
                             first segment's {depth})"
                        )));
                    }
                    p.set_dts(Some(dts));
                }
            }
            if let (Some(last), Some(dts)) = (self.last_dts, p.dts()) {
                if dts <= last {
                    return Err(VideoError::Stream(format!(
                        "segments do not join: decoding timestamp {dts} after {last} (reorder depth {depth})"
                    )));
                }
            }
            self.last_dts = p.dts();
            self.written += 1;
            write(std::mem::replace(p, ff::Packet::empty()))?;
        }
        Ok(())
    }
}

/// One encoder thread: segment `w`, `w + workers`, ... Opens a fresh encoder at each segment's first frame.
fn worker(w: usize, workers: u64, recipe: &EncoderRecipe, input: &queue::Receiver<Job>, state: &State) {
    let fail = |e: VideoError| {
        let mut s = state.lock();
        s.error.get_or_insert(e);
        drop(s);
        state.changed.notify_all();
    };
    let mut index = w as u64;
    let mut encoder: Option<ff::encoder::Video> = None;
    let mut packets = state.lock().spare.pop().unwrap_or_default();
    let drain = |enc: &mut ff::encoder::Video, packets: &mut Vec<ff::Packet>| -> Result<(), VideoError> {
        loop {
            let mut p = ff::Packet::empty();
            match enc.receive_packet(&mut p) {
                Ok(()) => packets.push(p),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => return Ok(()),
                Err(ff::Error::Eof) => return Ok(()),
                Err(e) => return Err(VideoError::encoder("encode", e)),
            }
        }
    };
    while let Some(job) = input.recv() {
        let step = (|| -> Result<(), VideoError> {
            match job {
                Job::Frame(frame) => {
                    if encoder.is_none() {
                        encoder = Some(recipe.open()?);
                    }
                    let Some(enc) = encoder.as_mut() else { return Err(VideoError::Stream("no encoder".into())) };
                    let sent = enc.send_frame(&frame).map_err(|e| VideoError::encoder("encode", e));
                    // The encoder has copied (or referenced) the frame: it goes back to be filled again.
                    state.lock().free[w].push_back(frame);
                    state.changed.notify_all();
                    sent?;
                    drain(enc, &mut packets)
                }
                Job::End => {
                    if let Some(mut enc) = encoder.take() {
                        enc.send_eof().map_err(|e| VideoError::encoder("flush the encoder", e))?;
                        drain(&mut enc, &mut packets)?;
                    }
                    let mut s = state.lock();
                    let next = s.spare.pop().unwrap_or_default();
                    s.done.push_back(Done { index, packets: std::mem::replace(&mut packets, next) });
                    drop(s);
                    state.changed.notify_all();
                    index += workers;
                    Ok(())
                }
            }
        })();
        if let Err(e) = step {
            fail(e);
            return;
        }
    }
}

impl Drop for Segments {
    fn drop(&mut self) {
        // Closing the inputs ends the workers' loops.
        self.inputs.clear();
        for t in self.threads.drain(..) {
            // A worker that panicked already reported its error through the shared state.
            t.join().ok();
        }
    }
}
