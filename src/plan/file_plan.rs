//! One file's plan: what the pipeline does with this input on this worker, decided before a frame moves — the
//! frame path (host RGB, planar Y'CbCr uploaded to the GPU, or NVDEC), the filter (deinterlacing, inverse
//! telecine), the output size, chroma, bit depth and pixel format, the muxer, the encoder and its segments, and the
//! warnings about what is lost or adapted. The pipeline executes it and decides nothing again.

use super::facts::InputFacts;
use super::filter_plan::{plan_filter, wanted, FilterPlan, Wanted};
use super::output_format::{encodable_size, output_format};
use super::{DecodeRoute, Decoder, EncodePlan, EnginePlan, PipelinePlan};
use crate::codec::{Chroma, Codec, Container, Deinterlace, Device};
use crate::manifest::QualitySection;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How frames travel from the decoder to the model and on to the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FramePath {
    /// Decoded and converted to planar RGB on the CPU; the model runs on host frames (on the CPU, or on the GPU
    /// through the runtime's own copies).
    HostRgb,
    /// Planar Y'CbCr frames (4:2:0, 4:2:2 or 4:4:4, 8 to 12 bits) decoded on the CPU, uploaded to the GPU stage,
    /// converted there; only the encoder's frame comes back.
    Upload,
    /// Decoded by NVDEC: frames stay on the GPU until the encoder's frame is downloaded.
    Nvdec,
}

/// What the pipeline does with one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilePlan {
    /// The input.
    pub input: PathBuf,
    /// The final output (written under a temporary name, then published).
    pub output: PathBuf,
    /// Where the model runs.
    pub device: Device,
    /// libavformat muxer of the output (`mp4`, `matroska`, `mov`).
    pub muxer: String,
    /// Encoder settings, segments resolved (`segments` ≥ 1; `segment_frames` set when > 1).
    pub encode: EncodePlan,
    /// Model scale.
    pub scale: u32,
    /// The model's output size (input × scale).
    pub upscaled: (u32, u32),
    /// The encoded size: the upscaled size, cropped to even where the output's chroma is subsampled.
    pub output_size: (u32, u32),
    /// Encoded bit depth: 8, 10 or 12.
    pub bit_depth: u8,
    /// Encoded chroma subsampling.
    pub chroma: Chroma,
    /// The encoder's pixel format (`yuv422p10le`...).
    pub pixel_format: String,
    /// What decoded frames go through before the model, and the output's time base and frame rate.
    pub filter: FilterPlan,
    /// How frames travel.
    pub frames: FramePath,
    /// Why that path.
    pub frames_reason: String,
    /// Queue sizes, tiles and threads.
    pub pipeline: PipelinePlan,
    /// Bytes the GPU stage's frame pool may hold (GPU workers).
    pub frame_pool_budget: Option<u64>,
    /// The quality gates.
    pub quality: QualitySection,
    /// What is lost or adapted, decided here; they go into the file's report.
    pub warnings: Vec<String>,
}

/// The parts of the engine plan one file is planned from: its work item's settings on one worker.
#[derive(Debug, Clone, Copy)]
pub struct FileSettings<'a> {
    /// The input.
    pub input: &'a Path,
    /// The final output.
    pub output: &'a Path,
    /// The worker's device.
    pub device: Device,
    /// Output container.
    pub container: Container,
    /// Encoder settings for this file (before segments are resolved).
    pub encode: &'a EncodePlan,
    /// Stage sizes.
    pub pipeline: &'a PipelinePlan,
    /// Decode routes by codec and bit depth.
    pub decode: &'a [DecodeRoute],
    /// Model scale.
    pub scale: u32,
    /// The worker's frame pool budget (GPU workers).
    pub frame_pool_budget: Option<u64>,
    /// The quality gates.
    pub quality: &'a QualitySection,
    /// Deinterlacing asked for.
    pub deinterlace: Deinterlace,
}

impl EnginePlan {
    /// The settings work item `index` is planned from on `device`.
    pub fn file_settings(&self, index: usize, device: Device) -> Option<FileSettings<'_>> {
        let work = self.work.get(index)?;
        Some(FileSettings {
            input: &work.input,
            output: &work.output,
            device,
            container: self.container,
            encode: self.encode_for(index),
            pipeline: &self.pipeline,
            decode: &self.decode,
            scale: self.model.scale,
            frame_pool_budget: self.worker_on(device).and_then(|w| w.frame_pool_budget),
            quality: &self.quality,
            deinterlace: self.deinterlace,
        })
    }
}

/// Plans one file from its settings and the input's facts.
pub fn plan_file(settings: &FileSettings<'_>, input: &InputFacts) -> FilePlan {
    let mut warnings = Vec::new();
    let scale = settings.scale.max(1);
    let upscaled = (input.width * scale, input.height * scale);
    let mut encode = settings.encode.clone();
    let format = output_format(&encode, input, &mut warnings);
    encode.profile = format.profile.clone();
    let output_size = encodable_size(upscaled, format.chroma);
    if output_size != upscaled {
        let ((sw, sh), (ow, oh)) = (upscaled, output_size);
        warnings.push(format!(
            "output {sw}x{sh} has an odd dimension, which {} cannot encode: cropped to {ow}x{oh} (last column/row \
             dropped)",
            format.chroma.label()
        ));
    }
    if input.needs_swscale {
        warnings.push(format!("pixel format {} converted with swscale before the RGB conversion", input.pixel_format));
    }
    if input.alpha {
        warnings.push(format!(
            "the alpha plane of {} is dropped (the model and the encoder take none)",
            input.pixel_format
        ));
    }
    let want = wanted(settings.deinterlace, input);
    let (frames, frames_reason) = frame_path(settings, input, want.0, &mut warnings);
    let filter = plan_filter(settings.deinterlace, want, input, frames == FramePath::Nvdec, &mut warnings);
    // Segment-parallel encoding where one encoder instance cannot use the machine.
    (encode.segments, encode.segment_frames) =
        segments_for(&encode, output_size.0, output_size.1, filter.frame_rate, settings.pipeline.cpu_threads);
    FilePlan {
        input: settings.input.to_path_buf(),
        output: settings.output.to_path_buf(),
        device: settings.device,
        muxer: muxer(settings.container, &input.container, settings.input).into(),
        encode,
        scale,
        upscaled,
        output_size,
        bit_depth: format.bit_depth,
        chroma: format.chroma,
        pixel_format: format.pixel_format,
        filter,
        frames,
        frames_reason,
        pipeline: settings.pipeline.clone(),
        frame_pool_budget: settings.frame_pool_budget,
        quality: settings.quality.clone(),
        warnings,
    }
}

/// The frame path for this input on this device, and why.
fn frame_path(
    s: &FileSettings<'_>,
    input: &InputFacts,
    want: Wanted,
    warnings: &mut Vec<String>,
) -> (FramePath, String) {
    if s.device == Device::Cpu {
        return (FramePath::HostRgb, "CPU worker".into());
    }
    if !input.planar_yuv {
        warnings.push(format!(
            "pixel format {} is not planar 4:2:0, 4:2:2 or 4:4:4 at 8 to 12 bits: colour conversion on the CPU, \
             inference on the GPU",
            input.pixel_format
        ));
        return (FramePath::HostRgb, format!("{} is not planar Y'CbCr at 8 to 12 bits", input.pixel_format));
    }
    if s.pipeline.tile > 0 {
        warnings.push("tiled plan: colour conversion on the CPU, tiles inferred on the GPU".into());
        return (FramePath::HostRgb, format!("tiles of {} px are cut on the host", s.pipeline.tile));
    }
    let upload = |why: String| (FramePath::Upload, format!("decoded on the CPU and uploaded: {why}"));
    if input.chroma != Chroma::C420 {
        return upload(format!(
            "NVDEC decodes 4:2:0 only here, and {} is {}",
            input.pixel_format,
            input.chroma.label()
        ));
    }
    if want == Wanted::Ivtc {
        return upload("inverse telecine runs on the CPU (libavfilter)".into());
    }
    let route = s.decode.iter().find(|r| r.codec == input.codec && r.bit_depth == input.bit_depth);
    let Some(route) = route.filter(|r| r.decoder == Decoder::Nvdec) else {
        let why = route.map_or_else(|| format!("{} is not decoded by NVDEC here", input.codec), |r| r.reason.clone());
        return upload(why);
    };
    let (w, h) = (input.width, input.height);
    if w % 2 != 0 || h % 2 != 0 {
        return upload(format!("{w}x{h} has an odd dimension"));
    }
    if let Some([min_w, min_h, max_w, max_h]) = route.limits {
        if w < min_w || h < min_h || w > max_w || h > max_h {
            return upload(format!(
                "{w}x{h} is outside what NVDEC decodes for {} ({min_w}x{min_h} to {max_w}x{max_h})",
                input.codec
            ));
        }
    }
    (FramePath::Nvdec, format!("NVDEC decodes {} {}-bit {w}x{h}", input.codec, input.bit_depth))
}

/// The libavformat muxer for the output. `Same` follows the input's container where our codecs fit it, else
/// Matroska, which takes every codec we write and copy.
pub fn muxer(container: Container, input_format: &str, input_path: &Path) -> &'static str {
    match container {
        Container::Mp4 => "mp4",
        Container::Mkv => "matroska",
        Container::Mov => "mov",
        Container::Same if input_format.contains("matroska") => "matroska",
        Container::Same if input_format.contains("mov") => {
            let ext = input_path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            if ext == "mov" {
                "mov"
            } else {
                "mp4"
            }
        }
        Container::Same => "matroska",
    }
}

/// Segment-parallel encoding for one file: (encoder instances, frames per segment). Only x264/x265. Automatic for
/// HEVC outputs of 1440p and up (3.5 million pixels) on 8 or more cores: one x265 instance at 4K kept 5.4 of 16
/// cores busy on the lent GPU machine and three instances encoded 38 % more frames per second. Not automatic for
/// H.264: one x264 `medium` instance already kept 11 of 16 cores busy there, and three instances gave no gain
/// (bench/RESULTS.md); `encode.segments = N` still asks for it. Segments last about 2 seconds (24–120 frames)
/// unless the plan fixes their length: the extra keyframes cost under 1 % of the file size.
pub fn segments_for(
    e: &EncodePlan,
    width: u32,
    height: u32,
    frame_rate: Option<(i32, i32)>,
    cores: usize,
) -> (u32, u32) {
    if !matches!(e.codec, Codec::H264 | Codec::Hevc) {
        return (1, 0);
    }
    let large = u64::from(width) * u64::from(height) >= 3_500_000;
    let instances = match e.segments {
        0 if e.codec == Codec::Hevc && large && cores >= 8 => (cores / 5).clamp(2, 3) as u32,
        0 => 1,
        n => n.min(8),
    };
    if instances < 2 {
        return (1, 0);
    }
    let frames = match (e.segment_frames, frame_rate) {
        (0, Some((n, d))) if n > 0 && d > 0 => ((2 * n + d / 2) / d).clamp(24, 120) as u32,
        (0, _) => 48,
        (f, _) => f,
    };
    (instances, frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x264() -> EncodePlan {
        EncodePlan { segments: 0, ..EncodePlan::with_defaults(Codec::H264) }
    }

    #[test]
    fn segment_parallel_encoding_is_for_large_hevc_outputs_on_many_cores() {
        let x265 = EncodePlan { codec: Codec::Hevc, encoder: "libx265".into(), crf: Some(20), ..x264() };
        let x264 = x264();
        let fps = Some((24000, 1001));
        assert_eq!(segments_for(&x265, 3840, 2160, fps, 16), (3, 48), "4K on 16 cores: 3 instances, 2 s segments");
        assert_eq!(segments_for(&x265, 3840, 2160, fps, 8), (2, 48));
        assert_eq!(segments_for(&x265, 1920, 1080, fps, 16).0, 1, "1080p: one instance keeps up");
        assert_eq!(segments_for(&x265, 3840, 2160, fps, 4).0, 1, "few cores: one instance");
        assert_eq!(segments_for(&x265, 3840, 2160, Some((120, 1)), 16), (3, 120), "segments at most 120 frames");
        assert_eq!(segments_for(&x265, 3840, 2160, None, 16), (3, 48), "unknown rate: 48 frames");
        assert_eq!(segments_for(&x264, 3840, 2160, fps, 16).0, 1, "x264 uses the cores alone: not automatic");
        let forced = EncodePlan { segments: 2, ..x264.clone() };
        assert_eq!(segments_for(&forced, 640, 360, Some((25, 1)), 2), (2, 50), "asked for: always");
        let off = EncodePlan { segments: 1, ..x264.clone() };
        assert_eq!(segments_for(&off, 3840, 2160, fps, 16).0, 1);
        let ffv1 = EncodePlan { codec: Codec::Ffv1, encoder: "ffv1".into(), segments: 3, ..x264 };
        assert_eq!(segments_for(&ffv1, 3840, 2160, fps, 16).0, 1, "only x264/x265");
    }
}
