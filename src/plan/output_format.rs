//! The output's picture format for one file: chroma subsampling and bit depth follow the input (or what the job
//! fixes) where the codec and its profile can carry them, else the closest they can, with a warning that names
//! what was lost; the pixel format and the encoder profile follow from them.

use super::facts::InputFacts;
use super::EncodePlan;
use crate::codec::{Carries, Chroma};

/// What the encoder is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OutputFormat {
    /// Chroma subsampling.
    pub(super) chroma: Chroma,
    /// 8, 10 or 12.
    pub(super) bit_depth: u8,
    /// FFmpeg's pixel format name (`yuv422p10le`).
    pub(super) pixel_format: String,
    /// The encoder profile (the job's, else the smallest that carries the format); `None` where the encoder takes
    /// none.
    pub(super) profile: Option<String>,
}

/// The bit depth an input's samples ask for: 8, 10 or 12.
fn depth_class(bits: u8) -> u8 {
    match bits {
        0..=8 => 8,
        9..=10 => 10,
        _ => 12,
    }
}

/// `want` if `have` holds it, else the smallest larger value (nothing lost), else the largest smaller one.
fn closest<T: Copy + Ord>(want: T, have: &[T]) -> T {
    if have.contains(&want) {
        return want;
    }
    have.iter().copied().filter(|v| *v > want).min().or_else(|| have.iter().copied().max()).unwrap_or(want)
}

fn chroma_loss(from: Chroma, to: Chroma) -> &'static str {
    match (from, to) {
        (Chroma::C444, Chroma::C422) => "chroma resolution halved horizontally",
        (Chroma::C422, Chroma::C420) => "chroma resolution halved vertically",
        _ => "chroma resolution halved horizontally and vertically",
    }
}

/// Decides the output's chroma, bit depth, pixel format and profile; pushes a warning for each loss.
pub(super) fn output_format(e: &EncodePlan, input: &InputFacts, warnings: &mut Vec<String>) -> OutputFormat {
    let codec = e.codec;
    let want_chroma = e.chroma.unwrap_or(input.chroma);
    let want_depth = e.bit_depth.map(depth_class).unwrap_or_else(|| depth_class(input.bit_depth));
    let all = codec.carries(None);
    let chroma = closest(want_chroma, all.chroma);
    let depth = closest(want_depth, all.depths);
    let profile = e.profile.clone().or_else(|| codec.default_profile(chroma, depth).map(str::to_string));
    let carried: Carries = codec.carries(profile.as_deref());
    let (chroma, depth) = (closest(chroma, carried.chroma), closest(depth, carried.depths));
    let by = match &e.profile {
        Some(p) => format!("{} profile {p}", codec.as_str()),
        None => codec.as_str().to_string(),
    };
    let whose = if e.chroma.is_some() { "asked-for" } else { "input's" };
    if chroma < want_chroma {
        warnings.push(format!(
            "the {whose} {} chroma cannot be carried by {by}: encoded {} ({})",
            want_chroma.label(),
            chroma.label(),
            chroma_loss(want_chroma, chroma)
        ));
    }
    if depth < want_depth {
        let what = if e.bit_depth.is_some() { "asked-for" } else { "input's" };
        warnings.push(format!(
            "the {what} {want_depth}-bit samples cannot be carried by {by}: encoded at {depth} bits ({} bits of \
             precision lost)",
            want_depth - depth
        ));
    } else if e.bit_depth.is_none() && input.bit_depth > 12 {
        warnings.push(format!(
            "{}-bit input encoded at {depth} bits ({} bits of precision lost)",
            input.bit_depth,
            input.bit_depth - depth
        ));
    }
    OutputFormat { chroma, bit_depth: depth, pixel_format: chroma.pixel_format(depth), profile }
}

/// The encodable size: dimensions the chroma subsampling halves must be even.
pub(super) fn encodable_size((w, h): (u32, u32), chroma: Chroma) -> (u32, u32) {
    let (sx, sy) = chroma.shifts();
    (if sx > 0 { w & !1 } else { w }, if sy > 0 { h & !1 } else { h })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;

    fn facts(pix: &str, chroma: Chroma, bits: u8) -> InputFacts {
        InputFacts {
            codec: "prores".into(),
            width: 64,
            height: 48,
            bit_depth: bits,
            pixel_format: pix.into(),
            chroma,
            planar_yuv: true,
            alpha: false,
            needs_swscale: false,
            frame_rate: Some((25, 1)),
            time_base: (1, 25),
            container: "mov,mp4,m4a,3gp,3g2,mj2".into(),
            interlacing: Default::default(),
        }
    }

    fn plan(codec: Codec) -> EncodePlan {
        EncodePlan { preset: None, segments: 1, ..EncodePlan::with_defaults(codec) }
    }

    fn decide(e: &EncodePlan, input: &InputFacts) -> (String, Option<String>, Vec<String>) {
        let mut w = Vec::new();
        let f = output_format(e, input, &mut w);
        (f.pixel_format, f.profile, w)
    }

    #[test]
    fn chroma_and_depth_follow_the_input_where_the_codec_carries_them() {
        let p422 = facts("yuv422p10le", Chroma::C422, 10);
        let p444 = facts("yuv444p", Chroma::C444, 8);
        let p420 = facts("yuv420p", Chroma::C420, 8);
        let some = |s: &str| Some(s.to_string());
        assert_eq!(decide(&plan(Codec::Prores), &p422), ("yuv422p10le".into(), some("hq"), vec![]));
        assert_eq!(decide(&plan(Codec::Prores), &p444), ("yuv444p10le".into(), some("4444"), vec![]));
        assert_eq!(decide(&plan(Codec::Prores), &p420), ("yuv422p10le".into(), some("hq"), vec![]), "no loss");
        assert_eq!(decide(&plan(Codec::H264), &p422), ("yuv422p10le".into(), some("high422"), vec![]));
        assert_eq!(decide(&plan(Codec::H264), &p444), ("yuv444p".into(), some("high444"), vec![]));
        assert_eq!(decide(&plan(Codec::Hevc), &p422), ("yuv422p10le".into(), some("main422-10"), vec![]));
        assert_eq!(decide(&plan(Codec::Hevc), &p444), ("yuv444p".into(), some("main444-8"), vec![]));
        assert_eq!(decide(&plan(Codec::Ffv1), &p422), ("yuv422p10le".into(), None, vec![]));
        assert_eq!(decide(&plan(Codec::Dnxhr), &p422), ("yuv422p10le".into(), some("hqx"), vec![]));
        assert_eq!(decide(&plan(Codec::Dnxhr), &p444), ("yuv444p10le".into(), some("444"), vec![]), "no 8-bit 444");
        assert_eq!(decide(&plan(Codec::Dnxhr), &p420), ("yuv422p".into(), some("hq"), vec![]));
        let (pix, _, w) = decide(&plan(Codec::Av1), &p422);
        assert_eq!(pix, "yuv420p10le");
        assert_eq!(
            w,
            vec!["the input's 4:2:2 chroma cannot be carried by av1: encoded 4:2:0 (chroma resolution halved vertically)"]
        );
        let high10 = EncodePlan { profile: some("high10"), ..plan(Codec::H264) };
        let (pix, profile, w) = decide(&high10, &p444);
        assert_eq!((pix.as_str(), profile.as_deref()), ("yuv420p", Some("high10")));
        assert_eq!(
            w,
            vec![
                "the input's 4:4:4 chroma cannot be carried by h264 profile high10: encoded 4:2:0 (chroma \
                            resolution halved horizontally and vertically)"
            ]
        );
        let twelve = facts("yuv422p12le", Chroma::C422, 12);
        let (pix, _, w) = decide(&plan(Codec::H264), &twelve);
        assert_eq!(pix, "yuv422p10le");
        assert_eq!(
            w,
            vec![
                "the input's 12-bit samples cannot be carried by h264: encoded at 10 bits (2 bits of \
                            precision lost)"
            ]
        );
        let forced = EncodePlan { chroma: Some(Chroma::C420), ..plan(Codec::H264) };
        assert_eq!(decide(&forced, &p444), ("yuv420p".into(), some("high"), vec![]), "asked for: no warning");
    }

    #[test]
    fn sizes_are_cropped_only_where_chroma_is_halved() {
        assert_eq!(encodable_size((99, 75), Chroma::C420), (98, 74));
        assert_eq!(encodable_size((99, 75), Chroma::C422), (98, 75));
        assert_eq!(encodable_size((99, 75), Chroma::C444), (99, 75));
    }
}
