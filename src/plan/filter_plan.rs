//! What one file's decoded frames go through before the model: deinterlacing (libavfilter's bwdif on the CPU, or
//! NVDEC's adaptive deinterlacer where NVDEC decodes) and inverse telecine (fieldmatch + decimate on the CPU), with
//! the field order it reads and the output's time base and frame rate, decided before a frame moves.

use super::facts::{FieldOrder, InputFacts};
use crate::codec::Deinterlace;
use serde::{Deserialize, Serialize};

/// What is done to the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterKind {
    /// Nothing: frames go to the model as decoded.
    None,
    /// libavfilter's bwdif on the CPU, one frame per frame.
    Bwdif,
    /// libavfilter's bwdif on the CPU, one frame per field.
    BwdifDouble,
    /// Inverse telecine on the CPU: fieldmatch, bwdif on frames left combed, decimate (one frame in five).
    Ivtc,
    /// NVDEC's adaptive deinterlacer, one frame per frame.
    NvdecAdaptive,
    /// NVDEC's adaptive deinterlacer, one frame per field (the decoder compensates for its fields coming out one
    /// field late: `gpu::nvdec::fields`).
    NvdecAdaptiveDouble,
}

/// One file's filter, as the pipeline runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterPlan {
    /// What is done.
    pub kind: FilterKind,
    /// The libavfilter graph run on the CPU between the decoder and the model, `None` when there is none.
    pub chain: Option<String>,
    /// The field order used (deinterlacing and inverse telecine).
    pub field_order: Option<FieldOrder>,
    /// What was done and why, with the field order read and where: one line for the plan and the report.
    pub summary: String,
    /// Time base of the frames after the filter: the input's, or half of it where bwdif runs (libavfilter's bwdif
    /// halves it at either rate) or NVDEC gives one frame per field.
    pub time_base: (i32, i32),
    /// Frame rate after the filter (the input's; doubled at one frame per field; four fifths after inverse
    /// telecine).
    pub frame_rate: Option<(i32, i32)>,
    /// Frames out per frame in, as a fraction: 1/1, 2/1 or 4/5.
    pub rate: (u32, u32),
    /// Timestamps are rewritten at `frame_rate` from the first input frame's (inverse telecine drops one frame in
    /// five and the rest are evenly spaced); otherwise the filter's own are kept.
    pub retime: bool,
}

impl FilterPlan {
    /// No filter: the input's timing.
    pub fn none(input: &InputFacts, summary: impl Into<String>) -> FilterPlan {
        FilterPlan {
            kind: FilterKind::None,
            chain: None,
            field_order: None,
            summary: summary.into(),
            time_base: input.time_base,
            frame_rate: input.frame_rate,
            rate: (1, 1),
            retime: false,
        }
    }

    /// Output frames expected for `frames` input frames.
    pub fn frames_out(&self, frames: u64) -> u64 {
        frames * u64::from(self.rate.0) / u64::from(self.rate.1.max(1))
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs().max(1)
    } else {
        gcd(b, a % b)
    }
}

/// `n/d` reduced.
fn reduce(n: i64, d: i64) -> (i32, i32) {
    let g = gcd(n, d);
    ((n / g) as i32, (d / g) as i32)
}

/// What the job's choice means for deinterlacing, before the frame path is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wanted {
    /// Nothing to do.
    Nothing,
    /// One frame per frame.
    Single,
    /// One frame per field.
    Double,
    /// Inverse telecine (CPU only).
    Ivtc,
}

/// What the choice asks for this input, and why when nothing is done.
pub(super) fn wanted(choice: Deinterlace, input: &InputFacts) -> (Wanted, &'static str) {
    match choice {
        Deinterlace::Off => (Wanted::Nothing, "deinterlace = \"off\""),
        Deinterlace::Auto if input.interlacing.is_interlaced() => (Wanted::Single, ""),
        Deinterlace::Auto => (Wanted::Nothing, "progressive (neither flagged nor detected as interlaced)"),
        Deinterlace::Bwdif => (Wanted::Single, ""),
        Deinterlace::BwdifDouble => (Wanted::Double, ""),
        Deinterlace::Ivtc if input.frame_rate.is_none() => (Wanted::Nothing, "inverse telecine needs a frame rate"),
        Deinterlace::Ivtc => (Wanted::Ivtc, ""),
    }
}

/// The filter for this input, given what the choice asks for and whether NVDEC decodes it.
pub(super) fn plan_filter(
    choice: Deinterlace,
    want: (Wanted, &str),
    input: &InputFacts,
    nvdec: bool,
    warnings: &mut Vec<String>,
) -> FilterPlan {
    let (want, why_not) = want;
    let il = &input.interlacing;
    if want == Wanted::Nothing {
        if il.is_interlaced() {
            warnings.push(format!(
                "interlaced input (field order {}, {} of {} first frames flagged interlaced) is upscaled as \
                 progressive frames: {why_not}",
                il.field_order, il.frames_interlaced, il.frames_checked
            ));
        } else if choice == Deinterlace::Ivtc {
            warnings.push(format!("no inverse telecine: {why_not}"));
        }
        return FilterPlan::none(input, format!("none: {why_not}"));
    }
    let (order, source) = il.field_order();
    let source = source.unwrap_or_else(|| {
        warnings.push("field order unknown (neither the stream nor its frames say): assumed top field first".into());
        "assumed (unknown)".into()
    });
    let o = order.as_str();
    let asked = if choice == Deinterlace::Auto { "interlaced input (auto)" } else { "asked for" };
    // Flagged frames: only those are touched (a mixed stream keeps its progressive frames); otherwise every frame.
    let deint = if il.frames_interlaced > 0 && choice == Deinterlace::Auto { "interlaced" } else { "all" };
    let (tb, fr) = (input.time_base, input.frame_rate);
    // libavfilter's bwdif always halves the time base (and doubles the timestamps), at either rate.
    let half = reduce(i64::from(tb.0), 2 * i64::from(tb.1));
    let (kind, chain, time_base, frame_rate, rate, what) = match (want, nvdec) {
        (Wanted::Single, true) => {
            (FilterKind::NvdecAdaptive, None, tb, fr, (1, 1), "NVDEC adaptive deinterlacing, one frame per frame")
        }
        (Wanted::Double, true) => (
            FilterKind::NvdecAdaptiveDouble,
            None,
            half,
            fr.map(|(n, d)| reduce(2 * i64::from(n), i64::from(d))),
            (2, 1),
            "NVDEC adaptive deinterlacing, one frame per field",
        ),
        (Wanted::Single, false) => (
            FilterKind::Bwdif,
            Some(format!("bwdif=mode=send_frame:parity={o}:deint={deint}")),
            half,
            fr,
            (1, 1),
            "bwdif deinterlacing on the CPU, one frame per frame",
        ),
        (Wanted::Double, false) => (
            FilterKind::BwdifDouble,
            Some(format!("bwdif=mode=send_field:parity={o}:deint={deint}")),
            half,
            fr.map(|(n, d)| reduce(2 * i64::from(n), i64::from(d))),
            (2, 1),
            "bwdif deinterlacing on the CPU, one frame per field",
        ),
        (_, _) => (
            FilterKind::Ivtc,
            Some(format!(
                "fieldmatch=order={o}:combmatch=full,bwdif=mode=send_frame:parity={o}:deint=interlaced,decimate"
            )),
            half,
            fr.map(|(n, d)| reduce(4 * i64::from(n), 5 * i64::from(d))),
            (4, 5),
            "inverse telecine on the CPU (fieldmatch, bwdif on frames left combed, decimate one in five)",
        ),
    };
    let rates = match (fr, frame_rate) {
        (Some((a, b)), Some((c, d))) if (a, b) != (c, d) => format!("; {a}/{b} fps becomes {c}/{d} fps"),
        _ => String::new(),
    };
    FilterPlan {
        kind,
        chain,
        field_order: Some(order),
        summary: format!("{what} ({asked}); field order {o} from {source}{rates}"),
        time_base,
        frame_rate,
        rate,
        retime: kind == FilterKind::Ivtc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Chroma, Codec, Container, Device};
    use crate::plan::Interlacing;
    use crate::plan::{plan_file, DecodeRoute, Decoder, EncodePlan, FilePlan, FileSettings, FramePath, PipelinePlan};
    use std::path::Path;

    fn input(codec: &str, pix: &str, chroma: Chroma, field_order: &str, flagged: u32, top: u32) -> InputFacts {
        InputFacts {
            codec: codec.into(),
            width: 720,
            height: 480,
            bit_depth: if pix.contains("10") { 10 } else { 8 },
            pixel_format: pix.into(),
            chroma,
            planar_yuv: true,
            alpha: false,
            needs_swscale: false,
            frame_rate: Some((30000, 1001)),
            time_base: (1, 90000),
            container: "mpegts".into(),
            interlacing: Interlacing {
                field_order: field_order.into(),
                frames_checked: 8,
                frames_interlaced: flagged,
                frames_top_first: top,
            },
        }
    }

    fn plan(device: Device, deinterlace: Deinterlace, facts: &InputFacts) -> FilePlan {
        let encode = EncodePlan { segments: 1, ..EncodePlan::with_defaults(Codec::H264) };
        let pipeline = PipelinePlan {
            depth: 2,
            batch: 1,
            tile: 0,
            tile_overlap: 0,
            cpu_threads: 4,
            inference_threads: 0,
            pin_host_frames: true,
        };
        let routes = [DecodeRoute {
            codec: "h264".into(),
            bit_depth: 8,
            decoder: Decoder::Nvdec,
            reason: "NVDEC".into(),
            limits: Some([48, 16, 4096, 4096]),
        }];
        let settings = FileSettings {
            input: Path::new("in.ts"),
            output: Path::new("out.mp4"),
            device,
            container: Container::Mp4,
            encode: &encode,
            pipeline: &pipeline,
            decode: &routes,
            scale: 2,
            frame_pool_budget: None,
            quality: &Default::default(),
            deinterlace,
        };
        plan_file(&settings, facts)
    }

    #[test]
    fn auto_deinterlaces_flagged_streams_with_the_field_order_the_frames_give() {
        let p = plan(Device::Cpu, Deinterlace::Auto, &input("mpeg2video", "yuv420p", Chroma::C420, "bb", 8, 0));
        assert_eq!(p.filter.kind, FilterKind::Bwdif);
        assert_eq!(p.filter.chain.as_deref(), Some("bwdif=mode=send_frame:parity=bff:deint=interlaced"));
        assert_eq!((p.filter.time_base, p.filter.frame_rate), ((1, 180000), Some((30000, 1001))));
        assert!(p.filter.summary.contains("field order bff from frame flags (8 of 8"), "{}", p.filter.summary);
        let flagged_only =
            plan(Device::Cpu, Deinterlace::Auto, &input("mpeg2video", "yuv420p", Chroma::C420, "tb", 0, 0));
        assert_eq!(flagged_only.filter.chain.as_deref(), Some("bwdif=mode=send_frame:parity=bff:deint=all"));
        assert!(flagged_only.filter.summary.contains("codec parameters (field order tb)"));
        let progressive =
            plan(Device::Cpu, Deinterlace::Auto, &input("h264", "yuv420p", Chroma::C420, "progressive", 0, 0));
        assert_eq!((progressive.filter.kind, progressive.filter.time_base), (FilterKind::None, (1, 90000)));
        assert!(progressive.warnings.is_empty(), "{:?}", progressive.warnings);
    }

    #[test]
    fn nvdec_deinterlaces_where_it_decodes_and_ivtc_goes_to_the_cpu() {
        let tff = input("h264", "yuv420p", Chroma::C420, "tt", 8, 8);
        let p = plan(Device::Cuda(0), Deinterlace::Bwdif, &tff);
        assert_eq!(
            (p.frames, p.filter.kind, p.filter.chain.clone()),
            (FramePath::Nvdec, FilterKind::NvdecAdaptive, None)
        );
        assert_eq!(p.filter.time_base, (1, 90000), "NVDEC keeps the time base at one frame per frame");
        let p = plan(Device::Cuda(0), Deinterlace::BwdifDouble, &tff);
        assert_eq!(
            (p.frames, p.filter.kind, p.filter.chain),
            (FramePath::Nvdec, FilterKind::NvdecAdaptiveDouble, None)
        );
        assert_eq!(
            (p.filter.time_base, p.filter.frame_rate, p.filter.rate),
            ((1, 180000), Some((60000, 1001)), (2, 1))
        );
        let p = plan(Device::Cuda(0), Deinterlace::Ivtc, &tff);
        assert_eq!((p.frames, p.filter.kind), (FramePath::Upload, FilterKind::Ivtc));
        assert_eq!(p.frames_reason, "decoded on the CPU and uploaded: inverse telecine runs on the CPU (libavfilter)");
        assert_eq!((p.filter.frame_rate, p.filter.rate), (Some((24000, 1001)), (4, 5)));
        assert_eq!(p.filter.frames_out(30), 24);
    }

    #[test]
    fn four_two_two_takes_the_upload_path_and_keeps_its_chroma() {
        let prores = input("prores", "yuv422p10le", Chroma::C422, "progressive", 0, 0);
        let p = plan(Device::Cuda(0), Deinterlace::Auto, &prores);
        assert_eq!(p.frames, FramePath::Upload);
        assert_eq!(
            p.frames_reason,
            "decoded on the CPU and uploaded: NVDEC decodes 4:2:0 only here, and yuv422p10le is 4:2:2"
        );
        assert_eq!(
            (p.chroma, p.pixel_format.as_str(), p.encode.profile.as_deref()),
            (Chroma::C422, "yuv422p10le", Some("high422"))
        );
    }

    #[test]
    fn an_unknown_field_order_is_assumed_top_first_and_said() {
        let unflagged = input("ffv1", "yuv420p", Chroma::C420, "unknown", 0, 0);
        let p = plan(Device::Cpu, Deinterlace::Ivtc, &unflagged);
        assert_eq!(p.filter.field_order, Some(FieldOrder::Tff));
        assert!(p.warnings.iter().any(|w| w.contains("field order unknown")), "{:?}", p.warnings);
        let off = plan(Device::Cpu, Deinterlace::Off, &input("mpeg2video", "yuv420p", Chroma::C420, "tt", 8, 8));
        assert_eq!(off.filter.kind, FilterKind::None);
        assert!(off.warnings.iter().any(|w| w.contains("upscaled as progressive frames: deinterlace = \"off\"")));
    }
}
