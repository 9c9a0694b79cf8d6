//! Studio and archive sources (issue 15) and exact colour metadata (issue 13): mezzanine codecs (ProRes, DNxHR)
//! with timecode, reel name and PCM kept; chroma and bit depth following the input; deinterlacing checked against
//! FFmpeg's own bwdif; inverse telecine; every colour tag passed through unchanged. Media made with the `ffmpeg`
//! CLI; the exact nearest-x2 model, so references are plane-level nearest-neighbour upscales.

mod common;

use common::media::*;
use common::*;
use std::path::Path;
use videoforge::codec::{Chroma, Codec, Container, Deinterlace};
use videoforge::pipeline::Cancel;
use videoforge::plan::{EncodePlan, FilterKind};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn codec(codec: Codec) -> EncodePlan {
    EncodePlan { segments: 1, ..EncodePlan::with_defaults(codec) }
}

fn stream<'a>(probe: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    probe["streams"].as_array().unwrap().iter().find(|s| s["codec_type"] == kind).expect(kind)
}

/// ProRes 422 HQ (4:2:2 10-bit, 24-bit PCM, timecode, reel name, BT.709 tags) in .mov → ProRes 422 HQ out through
/// the exact nearest-x2 ONNX model: 4:2:2 10-bit kept, the timecode track rewritten with its reel name, the PCM
/// byte-identical, the tags kept, and the picture within ProRes HQ's loss of the nearest-x2 reference.
#[test]
fn prores_422_hq_in_gives_prores_422_hq_out_with_timecode_reel_and_pcm() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.mov"), dir.path().join("out.mov"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=128x96:rate=24000/1001",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-frames:v",
        "12",
        "-t",
        "0.5",
        "-vf",
        // Saturation lowered so that no chroma pair decodes out of gamut (the RGB model clamps those).
        "scale=out_color_matrix=bt709:out_range=tv,hue=s=0.6,setparams=colorspace=bt709:color_primaries=bt709:\
         color_trc=bt709:range=tv",
        "-c:v",
        "prores_ks",
        "-profile:v",
        "hq",
        "-pix_fmt",
        "yuv422p10le",
        "-c:a",
        "pcm_s24le",
        "-ac",
        "2",
        "-timecode",
        "01:02:03:04",
        "-metadata:s:v:0",
        "reel_name=REEL_A01",
        s(&input),
    ]);
    let model = onnx_model(&root().join("tests/fixtures/models/nearest2x.onnx"));
    let r = run(&input, &output, Container::Mov, &codec(Codec::Prores), model, &Cancel::new()).unwrap();
    assert_eq!((r.frames_decoded, r.frames_encoded), (12, 12));
    assert_eq!(
        (r.output_chroma, r.output_pixel_format.as_str(), r.output_bit_depth),
        (Chroma::C422, "yuv422p10le", 10)
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let p = probe_json(&output);
    let v = stream(&p, "video");
    assert_eq!((v["codec_name"].as_str(), v["profile"].as_str()), (Some("prores"), Some("HQ")));
    assert_eq!(
        (v["pix_fmt"].as_str(), v["width"].as_u64(), v["height"].as_u64()),
        (Some("yuv422p10le"), Some(256), Some(192))
    );
    assert_eq!(v["tags"]["timecode"], "01:02:03:04");
    assert_eq!(
        (v["color_space"].as_str(), v["color_primaries"].as_str(), v["color_transfer"].as_str()),
        (Some("bt709"), Some("bt709"), Some("bt709"))
    );
    let tmcd = stream(&p, "data");
    assert_eq!(tmcd["codec_tag_string"], "tmcd");
    assert_eq!(tmcd["tags"]["timecode"], "01:02:03:04");
    assert_eq!(tmcd["tags"]["reel_name"], "REEL_A01", "the reel name travels with the timecode track");
    let a = stream(&p, "audio");
    assert_eq!((a["codec_name"].as_str(), a["bits_per_sample"].as_u64()), (Some("pcm_s24le"), Some(24)));
    assert_eq!(stream_md5(&input, "0:a"), stream_md5(&output, "0:a"), "PCM copied byte for byte");
    assert_eq!(frame_times(&output), frame_times(&input));
    let l = Layout::new(128, 96, "422", 10);
    let want = nearest2(&samples(&input, &l), &l);
    let got = samples(&output, &l.doubled());
    let [y, u, v] = plane_psnr(&want, &got, &l.doubled());
    eprintln!("ProRes HQ out vs nearest-x2 of the input: Y {y:.1} dB, Cb {u:.1} dB, Cr {v:.1} dB (10-bit)");
    assert!(y > 45.0 && u > 45.0 && v > 45.0, "{y:.1}/{u:.1}/{v:.1} dB");
}

/// The other mezzanine outputs follow the input's chroma: DNxHR HQX from 4:2:2 10-bit, ProRes 4444 and DNxHR 444
/// from 4:4:4 10-bit, each at its own pixel format and profile.
#[test]
fn dnxhr_and_prores_4444_follow_the_input_chroma() {
    let dir = tempfile::tempdir().unwrap();
    for (pix, codec_, profile, want_profile, want_pix) in [
        ("yuv422p10le", Codec::Dnxhr, None, "DNXHR HQX", "yuv422p10le"),
        ("yuv444p10le", Codec::Dnxhr, None, "DNXHR 444", "yuv444p10le"),
        // FFmpeg's ProRes decoder gives 4444 as 12-bit.
        ("yuv444p10le", Codec::Prores, None, "4444", "yuv444p12le"),
        ("yuv420p", Codec::Dnxhr, Some("sq"), "DNXHR SQ", "yuv422p"),
    ] {
        let input = dir.path().join(format!("in-{pix}.mkv"));
        let output = dir.path().join(format!("out-{pix}-{}.mov", codec_.as_str()));
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x64:rate=25",
            "-frames:v",
            "3",
            "-vf",
            "hue=s=0.5",
            "-pix_fmt",
            pix,
            "-colorspace",
            "smpte170m",
            "-color_range",
            "tv",
            "-c:v",
            "ffv1",
            s(&input),
        ]);
        let plan = EncodePlan { profile: profile.map(str::to_string), ..codec(codec_) };
        let r = run(&input, &output, Container::Mov, &plan, Box::new(Nearest(2)), &Cancel::new()).unwrap();
        assert_eq!(r.frames_encoded, 3);
        assert_eq!(video_field(&output, "profile,pix_fmt"), format!("{want_profile},{want_pix}"), "{pix} {codec_:?}");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let l = Layout::new(160, 64, &want_pix[3..6], if want_pix.contains("p1") { 10 } else { 8 });
        let want = nearest2(&samples(&input, &l), &l);
        let [y, u, v] = plane_psnr(&want, &samples(&output, &l.doubled()), &l.doubled());
        eprintln!("{pix} -> {want_profile}: Y {y:.1} dB, Cb {u:.1} dB, Cr {v:.1} dB");
        // DNxHR SQ is 8-bit and lossier than the 10-bit profiles.
        let floor = if want_profile == "DNXHR SQ" { 34.0 } else { 45.0 };
        assert!(y > floor && u > floor && v > floor, "{want_profile}: {y:.1}/{u:.1}/{v:.1} dB");
    }
}

/// 4:4:4 in, 4:4:4 out with x264 (High 4:4:4) and FFV1, against the nearest-x2 reference; and where the codec or
/// profile cannot carry 4:4:4 (x264 high10, SVT-AV1), 4:2:0 with a warning naming the loss; `chroma = "420"`
/// asks for it without one.
#[test]
fn four_four_four_in_and_out_with_x264_and_ffv1() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in444.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=96x64:rate=25",
        "-frames:v",
        "5",
        "-vf",
        "hue=s=0.5",
        "-pix_fmt",
        "yuv444p",
        "-colorspace",
        "smpte170m",
        "-color_range",
        "tv",
        "-c:v",
        "ffv1",
        s(&input),
    ]);
    let l = Layout::new(96, 64, "444", 8);
    let want = nearest2(&samples(&input, &l), &l);
    for (plan, name, want_profile, floor) in [
        (codec(Codec::Ffv1), "ffv1.mkv", "", 45.0),
        (
            EncodePlan { crf: Some(4), preset: Some("veryfast".into()), ..codec(Codec::H264) },
            "x264.mp4",
            "High 4:4:4 Predictive",
            40.0,
        ),
    ] {
        let output = dir.path().join(name);
        let container = if name.ends_with("mp4") { Container::Mp4 } else { Container::Mkv };
        let r = run(&input, &output, container, &plan, Box::new(Nearest(2)), &Cancel::new()).unwrap();
        assert!(r.warnings.is_empty(), "{name}: {:?}", r.warnings);
        assert_eq!(r.output_chroma, Chroma::C444);
        if !want_profile.is_empty() {
            assert_eq!(video_field(&output, "profile"), want_profile);
        }
        assert_eq!(video_field(&output, "pix_fmt"), "yuv444p", "{name}");
        let [y, u, v] = plane_psnr(&want, &samples(&output, &l.doubled()), &l.doubled());
        eprintln!("4:4:4 {name}: Y {y:.1} dB, Cb {u:.1} dB, Cr {v:.1} dB");
        assert!(y > floor && u > floor && v > floor, "{name}: {y:.1}/{u:.1}/{v:.1} dB");
    }
    let high10 = EncodePlan { profile: Some("high10".into()), preset: Some("veryfast".into()), ..codec(Codec::H264) };
    let out = dir.path().join("high10.mp4");
    let r = run(&input, &out, Container::Mp4, &high10, Box::new(Nearest(2)), &Cancel::new()).unwrap();
    assert_eq!(video_field(&out, "pix_fmt"), "yuv420p");
    assert_eq!(
        r.warnings,
        vec![
            "the input's 4:4:4 chroma cannot be carried by h264 profile high10: encoded 4:2:0 (chroma resolution \
              halved horizontally and vertically)"
        ]
    );
    let av1 = EncodePlan { preset: Some("12".into()), crf: Some(40), ..codec(Codec::Av1) };
    let out = dir.path().join("av1.mkv");
    let r = run(&input, &out, Container::Mkv, &av1, Box::new(Nearest(2)), &Cancel::new()).unwrap();
    assert_eq!(video_field(&out, "pix_fmt"), "yuv420p");
    assert!(
        r.warnings.iter().any(|w| w.contains("4:4:4 chroma cannot be carried by av1: encoded 4:2:0")),
        "{:?}",
        r.warnings
    );
    let forced = EncodePlan { chroma: Some(Chroma::C420), preset: Some("veryfast".into()), ..codec(Codec::H264) };
    let out = dir.path().join("forced.mp4");
    let r = run(&input, &out, Container::Mp4, &forced, Box::new(Nearest(2)), &Cancel::new()).unwrap();
    assert_eq!(video_field(&out, "profile,pix_fmt"), "High,yuv420p");
    assert!(r.warnings.is_empty(), "asked for: {:?}", r.warnings);
}

/// A DVD-style interlaced clip: MPEG-2 in MPEG-TS, fields flagged in `order` (`tff`/`bff`), non-square pixels
/// (352x240, half of D1's width).
fn interlaced_clip(dir: &Path, order: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{order}.ts"));
    let (weave, top) = if order == "tff" { ("interleave_top", "1") } else { ("interleave_bottom", "0") };
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=352x240:rate=60000/1001",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-frames:v",
        "24",
        "-t",
        "0.4",
        "-vf",
        &format!("hue=s=0.6,tinterlace=mode={weave},setsar=32/27"),
        "-colorspace",
        "smpte170m",
        "-color_range",
        "tv",
        "-c:v",
        "mpeg2video",
        "-flags",
        "+ildct+ilme",
        "-top",
        top,
        "-b:v",
        "8M",
        "-c:a",
        "mp2",
        "-f",
        "mpegts",
        s(&path),
    ]);
    path
}

/// Interlaced tff and bff sources, deinterlaced one frame per frame (auto: flagged streams only) and one frame
/// per field: the pictures against FFmpeg's own bwdif (then nearest x2), the frame counts, and the timestamps
/// (each input frame's time; at double rate also half a frame later). SAR and audio kept.
#[test]
fn interlaced_tff_and_bff_are_deinterlaced_like_ffmpeg_s_bwdif() {
    let dir = tempfile::tempdir().unwrap();
    for order in ["tff", "bff"] {
        let input = interlaced_clip(dir.path(), order);
        let in_times = times(&input);
        let n = in_times.len();
        assert_eq!(n, 12, "{order}: 24 fields make 12 frames");
        for (choice, mode, per_frame) in
            [(Deinterlace::Auto, "send_frame", 1), (Deinterlace::BwdifDouble, "send_field", 2)]
        {
            let output = dir.path().join(format!("{order}-{mode}.mkv"));
            let r = run_filtered(&input, &output, Container::Mkv, &ffv1(), choice, Box::new(Nearest(2))).unwrap();
            let kind = if per_frame == 1 { FilterKind::Bwdif } else { FilterKind::BwdifDouble };
            assert_eq!(r.filter.kind, kind, "{order} {choice:?}");
            assert_eq!(r.filter.field_order.map(|o| o.as_str()), Some(order));
            assert!(r.filter.summary.contains("frame flags (8 of 8 frames interlaced"), "{}", r.filter.summary);
            assert_eq!((r.frames_decoded, r.frames_encoded), (n as u64, (n * per_frame) as u64), "{order} {mode}");
            assert!(r.warnings.is_empty(), "{:?}", r.warnings);
            // The reference: FFmpeg's bwdif on the same decoded frames.
            let reference = dir.path().join(format!("{order}-{mode}-ref.mkv"));
            ffmpeg(&[
                "-i",
                s(&input),
                "-vf",
                &format!("bwdif=mode={mode}:parity=auto:deint=all"),
                "-c:v",
                "ffv1",
                s(&reference),
            ]);
            let l = Layout::new(352, 240, "420", 8);
            let want = nearest2(&samples(&reference, &l), &l);
            let [y, u, v] = plane_psnr(&want, &samples(&output, &l.doubled()), &l.doubled());
            eprintln!(
                "{order} {mode}: {} frames; vs FFmpeg's bwdif: Y {y:.1} dB, Cb {u:.1} dB, Cr {v:.1} dB",
                r.frames_encoded
            );
            assert!(y > 45.0 && u > 45.0 && v > 45.0, "{order} {mode}: {y:.1}/{u:.1}/{v:.1} dB");
            let field = 1001.0 / 60000.0;
            let expected: Vec<f64> =
                in_times.iter().flat_map(|t| (0..per_frame).map(move |k| t + k as f64 * field)).collect();
            let got = times(&output);
            assert_eq!(got.len(), expected.len());
            for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
                assert!((a - b).abs() < 0.0011, "{order} {mode}: frame {i} at {a}, expected {b}");
            }
            assert_eq!(video_field(&output, "sample_aspect_ratio"), video_field(&input, "sample_aspect_ratio"));
            assert_ne!(video_field(&output, "sample_aspect_ratio"), "1:1");
            let rate = if per_frame == 1 { (30000, 1001) } else { (60000, 1001) };
            assert_eq!(r.filter.frame_rate, Some(rate), "{order} {mode}");
            assert_eq!(stream_md5(&input, "0:a"), stream_md5(&output, "0:a"));
        }
    }
}

/// `off` leaves an interlaced stream as it is, with a warning; `auto` leaves a progressive one alone, silently.
#[test]
fn off_and_progressive_inputs_are_not_deinterlaced() {
    let dir = tempfile::tempdir().unwrap();
    let input = interlaced_clip(dir.path(), "tff");
    let out = dir.path().join("off.mkv");
    let r = run_filtered(&input, &out, Container::Mkv, &ffv1(), Deinterlace::Off, Box::new(Nearest(2))).unwrap();
    assert_eq!((r.filter.kind, r.frames_encoded), (FilterKind::None, 12));
    assert!(
        r.warnings.iter().any(|w| w.contains("upscaled as progressive frames: deinterlace = \"off\"")),
        "{:?}",
        r.warnings
    );
    let progressive = dir.path().join("p.mkv");
    ffmpeg(&["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-frames:v", "4", "-c:v", "ffv1", s(&progressive)]);
    let out = dir.path().join("p-out.mkv");
    let r = run_filtered(&progressive, &out, Container::Mkv, &ffv1(), Deinterlace::Auto, Box::new(Nearest(2))).unwrap();
    assert_eq!((r.filter.kind, r.frames_encoded), (FilterKind::None, 4));
    assert!(r.warnings.iter().all(|w| !w.contains("interlaced")), "{:?}", r.warnings);
}

/// Telecined film (`telecine=pattern=23`: 24 progressive frames at 23.976 become 30 at 29.97, two in five combed)
/// is recovered by inverse telecine: the original 24 frames, retimed at 24000/1001 from the first, the audio in
/// sync (the video lasts as long within one frame), the pictures the originals'.
#[test]
fn telecined_film_is_recovered_to_the_original_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (film, input, output) = (dir.path().join("film.mkv"), dir.path().join("tc.mkv"), dir.path().join("ivtc.mkv"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=176x120:rate=24000/1001",
        "-frames:v",
        "24",
        "-vf",
        "hue=s=0.6",
        "-colorspace",
        "smpte170m",
        "-color_range",
        "tv",
        "-c:v",
        "ffv1",
        s(&film),
    ]);
    ffmpeg(&[
        "-i",
        s(&film),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-vf",
        "telecine=pattern=23",
        "-t",
        "1.001",
        "-c:v",
        "ffv1",
        "-c:a",
        "pcm_s16le",
        s(&input),
    ]);
    assert_eq!(times(&input).len(), 30, "24 film frames telecined to 30");
    let r = run_filtered(&input, &output, Container::Mkv, &ffv1(), Deinterlace::Ivtc, Box::new(Nearest(2))).unwrap();
    assert_eq!(r.filter.kind, FilterKind::Ivtc);
    assert_eq!(r.filter.frame_rate, Some((24000, 1001)));
    assert_eq!((r.frames_decoded, r.frames_encoded), (30, 24));
    assert!(
        r.warnings.iter().any(|w| w.contains("field order unknown")),
        "unflagged: the field order is assumed, and said: {:?}",
        r.warnings
    );
    assert_eq!(video_field(&output, "avg_frame_rate"), "24000/1001");
    let t = times(&output);
    assert_eq!(t.len(), 24);
    for (i, v) in t.iter().enumerate() {
        assert!((v - i as f64 * 1001.0 / 24000.0).abs() < 0.0011, "frame {i} at {v}");
    }
    let audio_end: f64 = ffprobe(
        &output,
        &["-select_streams", "a:0", "-show_entries", "packet=pts_time,duration_time", "-of", "csv=p=0"],
    )
    .lines()
    .filter_map(|l| {
        let mut f = l.split(',');
        Some(f.next()?.parse::<f64>().ok()? + f.next()?.parse::<f64>().ok()?)
    })
    .fold(0.0, f64::max);
    let video_end = t[23] + 1001.0 / 24000.0;
    eprintln!("ivtc: video ends at {video_end:.3} s, audio at {audio_end:.3} s");
    assert!((video_end - audio_end).abs() <= 1001.0 / 24000.0, "in sync within one frame");
    let l = Layout::new(176, 120, "420", 8);
    let want = nearest2(&samples(&film, &l), &l);
    let [y, u, v] = plane_psnr(&want, &samples(&output, &l.doubled()), &l.doubled());
    eprintln!("ivtc vs the original film frames: Y {y:.1} dB, Cb {u:.1} dB, Cr {v:.1} dB");
    assert!(y > 40.0 && u > 40.0 && v > 40.0, "{y:.1}/{u:.1}/{v:.1} dB");
}

/// An x264 clip tagged with `setparams` (the frames' tags, which x264 writes) plus extra ffmpeg options.
fn tagged_clip(path: &Path, params: &str, extra: &[&str]) {
    let vf = format!("setparams={params}");
    let mut args = vec!["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-frames:v", "3", "-vf", &vf];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-c:v", "libx264", "-pix_fmt", "yuv420p", s(path)]);
    ffmpeg(&args);
}

/// The colour fields of the first video stream: matrix, primaries, transfer, range, chroma location.
fn colour_fields(path: &Path) -> String {
    video_field(path, "color_space,color_primaries,color_transfer,color_range,chroma_location")
}

fn upscale(input: &Path, output: &Path) -> videoforge::pipeline::FileReport {
    let plan = EncodePlan { preset: Some("veryfast".into()), ..x264(20) };
    run(input, output, Container::Same, &plan, Box::new(Nearest(2)), &Cancel::new()).unwrap()
}

/// Regression (issue 13): a stream tagged bt470bg came out tagged smpte170m (the same maths, another name).
#[test]
fn a_bt470bg_matrix_stays_bt470bg() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.mp4"), dir.path().join("out.mp4"));
    tagged_clip(&input, "colorspace=bt470bg:range=tv", &[]);
    assert_eq!(video_field(&input, "color_space"), "bt470bg");
    let r = upscale(&input, &output);
    assert_eq!(video_field(&output, "color_space"), "bt470bg");
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

/// Primaries the conversion never uses are still written back as read.
#[test]
fn primaries_are_kept_as_read() {
    let dir = tempfile::tempdir().unwrap();
    for primaries in ["film", "bt470m", "smpte432"] {
        let (input, output) =
            (dir.path().join(format!("{primaries}.mkv")), dir.path().join(format!("{primaries}-out.mkv")));
        tagged_clip(&input, &format!("colorspace=bt709:color_primaries={primaries}:range=tv"), &[]);
        upscale(&input, &output);
        assert_eq!(video_field(&output, "color_primaries"), video_field(&input, "color_primaries"), "{primaries}");
        assert_eq!(video_field(&output, "color_primaries"), primaries);
    }
}

/// Transfer characteristics, including ones with other spellings (gamma28 is FFmpeg's bt470bg).
#[test]
fn transfer_is_kept_as_read() {
    let dir = tempfile::tempdir().unwrap();
    for (trc, name) in [
        ("bt470bg", "bt470bg"),
        ("smpte240m", "smpte240m"),
        ("arib-std-b67", "arib-std-b67"),
        ("iec61966-2-1", "iec61966-2-1"),
    ] {
        let (input, output) = (dir.path().join(format!("{name}.mp4")), dir.path().join(format!("{name}-out.mp4")));
        tagged_clip(&input, &format!("colorspace=bt709:color_trc={trc}:range=tv"), &[]);
        upscale(&input, &output);
        assert_eq!(video_field(&output, "color_transfer"), name, "{trc}");
    }
}

/// Full and limited range tags, and a matrix the conversion has no coefficients for (smpte240m: converted with a
/// stand-in both ways, so the samples stay in the input's space and the tag stays).
#[test]
fn range_and_an_unconverted_matrix_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    for (params, want) in [
        ("colorspace=bt709:range=pc", "pc,bt709"),
        ("colorspace=bt709:range=tv", "tv,bt709"),
        ("colorspace=smpte240m:range=tv", "tv,smpte240m"),
    ] {
        let (input, output) = (dir.path().join("in.mkv"), dir.path().join("out.mkv"));
        tagged_clip(&input, params, &[]);
        let r = upscale(&input, &output);
        assert_eq!(video_field(&output, "color_space,color_range"), want, "{params}");
        if want.ends_with("smpte240m") {
            assert!(r.warnings.iter().any(|w| w.contains("the output keeps the smpte240m tag")), "{:?}", r.warnings);
        }
    }
}

/// Chroma sample location, in the bitstream (H.264 VUI) and in Matroska's own field.
#[test]
fn chroma_location_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    for (ext, loc) in [("mp4", "topleft"), ("mkv", "center"), ("mkv", "left")] {
        let (input, output) = (dir.path().join(format!("in-{loc}.{ext}")), dir.path().join(format!("out-{loc}.{ext}")));
        tagged_clip(&input, "colorspace=bt709:range=tv", &["-chroma_sample_location", loc]);
        assert_eq!(video_field(&input, "chroma_location"), loc);
        upscale(&input, &output);
        assert_eq!(colour_fields(&output), colour_fields(&input), "{loc} in {ext}");
    }
}

/// Rotation (the display matrix) survives, in MP4 and QuickTime.
#[test]
fn rotation_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    for (ext, rotate) in [("mp4", "90"), ("mov", "180"), ("mp4", "270")] {
        let plain = dir.path().join(format!("p.{ext}"));
        let (input, output) =
            (dir.path().join(format!("in-{rotate}.{ext}")), dir.path().join(format!("out-{rotate}.{ext}")));
        ffmpeg(&["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-frames:v", "3", "-c:v", "libx264", s(&plain)]);
        ffmpeg(&["-i", s(&plain), "-c", "copy", "-metadata:s:v:0", &format!("rotate={rotate}"), s(&input)]);
        upscale(&input, &output);
        let rot = |p: &Path| {
            ffprobe(p, &["-select_streams", "v:0", "-show_entries", "stream_side_data=rotation", "-of", "csv=p=0"])
        };
        assert!(!rot(&input).is_empty(), "{rotate}: the input has a display matrix");
        assert_eq!(rot(&output), rot(&input), "{rotate} in {ext}");
    }
}

fn side_data<'a>(v: &'a serde_json::Value, kind: &str) -> Option<&'a serde_json::Value> {
    v["side_data_list"].as_array()?.iter().find(|d| d["side_data_type"] == kind)
}

/// HDR10: the mastering display and content light level of an HEVC stream (SEI in the bitstream, no container
/// box) come out in the HEVC output's bitstream (frame side data) and in the container (stream side data); a
/// second pass from that container into H.264 keeps them in the container. Transfer and primaries stay.
#[test]
fn hdr_mastering_display_and_content_light_level_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (input, hevc, avc) = (dir.path().join("hdr.mkv"), dir.path().join("out.mkv"), dir.path().join("again.mp4"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10",
        "-frames:v",
        "3",
        "-pix_fmt",
        "yuv420p10le",
        "-color_primaries",
        "bt2020",
        "-color_trc",
        "smpte2084",
        "-colorspace",
        "bt2020nc",
        "-color_range",
        "tv",
        "-c:v",
        "libx265",
        "-x265-params",
        "log-level=error:master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50):max-cll=1000,400",
        s(&input),
    ]);
    let frame_in = first_frame_json(&input);
    let md_in = side_data(&frame_in, "Mastering display metadata").expect("the input has SEI").clone();
    let cll_in = side_data(&frame_in, "Content light level metadata").expect("the input has SEI").clone();
    let plan = EncodePlan { preset: Some("ultrafast".into()), crf: Some(28), ..codec(Codec::Hevc) };
    let r = run(&input, &hevc, Container::Mkv, &plan, Box::new(Nearest(2)), &Cancel::new()).unwrap();
    assert!(r.video.color.mastering_display.is_some() && r.video.color.content_light.is_some());
    let frame_out = first_frame_json(&hevc);
    assert_eq!(side_data(&frame_out, "Mastering display metadata"), Some(&md_in), "SEI: mastering display");
    assert_eq!(side_data(&frame_out, "Content light level metadata"), Some(&cll_in), "SEI: content light level");
    let p = probe_json(&hevc);
    let v = stream(&p, "video");
    let md = side_data(v, "Mastering display metadata").expect("container: mastering display");
    // Matroska stores the values as floats: the same numbers, other fractions.
    let num = |v: &serde_json::Value| {
        let (n, d) = v.as_str().unwrap().split_once('/').unwrap();
        n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap()
    };
    for key in ["red_x", "red_y", "green_x", "green_y", "blue_x", "blue_y", "white_point_x", "white_point_y"] {
        assert!((num(&md[key]) - num(&md_in[key])).abs() < 1e-4, "{key}: {} vs {}", md[key], md_in[key]);
    }
    for key in ["min_luminance", "max_luminance"] {
        assert!((num(&md[key]) / num(&md_in[key]) - 1.0).abs() < 1e-4, "{key}: {} vs {}", md[key], md_in[key]);
    }
    let cll = side_data(v, "Content light level metadata").expect("container: content light level");
    assert_eq!((cll["max_content"].as_u64(), cll["max_average"].as_u64()), (Some(1000), Some(400)));
    assert_eq!(colour_fields(&hevc), colour_fields(&input));
    // From the container's side data into H.264, which has no SEI for it: the container keeps it.
    let plan = EncodePlan { preset: Some("ultrafast".into()), ..x264(28) };
    run(&hevc, &avc, Container::Mp4, &plan, Box::new(Nearest(2)), &Cancel::new()).unwrap();
    let p = probe_json(&avc);
    let v = stream(&p, "video");
    let md2 = side_data(v, "Mastering display metadata").expect("MP4 mdcv box");
    assert!((num(&md2["red_x"]) - 0.68).abs() < 1e-4 && (num(&md2["max_luminance"]) - 1000.0).abs() < 1e-2, "{md2}");
    assert_eq!(side_data(v, "Content light level metadata").map(|m| &m["max_content"]), Some(&cll["max_content"]));
    assert_eq!(video_field(&avc, "color_transfer,color_primaries"), "smpte2084,bt2020");
}

/// Job files: chroma, bit depth, profile and container combinations that cannot work are refused, each with what
/// would.
#[test]
fn codec_profile_depth_chroma_and_container_combinations_are_validated() {
    let root = root();
    let job = |encode: &str, container: &str| {
        let text = format!(
            "version = 1\n[model]\npath = \"tests/fixtures/models/nearest2x.onnx\"\n[[input]]\npath = \
             \"jobs/media/sample.mp4\"\n[output]\ndir = \"out/validate\"\ncontainer = \"{container}\"\n[encode]\n{encode}\n"
        );
        let spec = videoforge::manifest::JobSpec::new(
            "studio.toml".into(),
            root.clone(),
            videoforge::manifest::parse(&text, Path::new("studio.toml")).unwrap(),
        );
        videoforge::plan::format_problems(&videoforge::plan::validate(&spec))
    };
    #[rustfmt::skip]
    let table = [
        ("codec = \"prores\"", "mov", ""),
        ("codec = \"prores\"\nprofile = \"4444xq\"\nchroma = \"444\"", "mov", ""),
        ("codec = \"dnxhr\"\nprofile = \"hqx\"\nbit_depth = 10", "mov", ""),
        ("codec = \"hevc\"\nbit_depth = 12\nchroma = \"422\"", "mkv", ""),
        ("codec = \"ffv1\"\nbit_depth = 12\nchroma = \"444\"", "mkv", ""),
        ("codec = \"prores\"", "mp4", "encode.codec: prores cannot be stored in mp4 (use container = \"mov\")"),
        ("codec = \"dnxhr\"", "same", "encode.codec: dnxhr is written to .mov only, and container \"same\" follows each input's (use container = \"mov\")"),
        ("codec = \"prores\"\nbit_depth = 8", "mov", "encode.bit_depth: prores cannot carry 8-bit video (use bit_depth = 10, or leave it out)"),
        ("codec = \"prores\"\nchroma = \"420\"", "mov", "encode.chroma: prores cannot carry 4:2:0 video (use chroma = \"422\" or \"444\" or \"same\")"),
        ("codec = \"prores\"\nprofile = \"hq\"\nchroma = \"444\"", "mov", "encode.profile: profile \"hq\" cannot carry 4:4:4 video (use 4444)"),
        ("codec = \"dnxhr\"\nprofile = \"hq\"\nbit_depth = 10", "mov", "encode.profile: profile \"hq\" cannot carry 10-bit video (use hqx)"),
        ("codec = \"dnxhr\"\nprofile = \"dnxhr_hq\"", "mov", "encode.profile: unknown profile \"dnxhr_hq\" for dnxhr (expected one of lb, sq, hq, hqx, 444)"),
        ("codec = \"h264\"\nbit_depth = 12", "mp4", "encode.bit_depth: h264 cannot carry 12-bit video (use bit_depth = 8 or 10)"),
        ("codec = \"h264\"\nprofile = \"high10\"\nchroma = \"444\"", "mp4", "encode.profile: profile \"high10\" cannot carry 4:4:4 video (use high444)"),
        ("codec = \"h264\"\nprofile = \"high\"\nbit_depth = 10", "mp4", "encode.profile: profile \"high\" cannot carry 10-bit video (use high10)"),
        ("codec = \"av1\"\nchroma = \"422\"", "mkv", "encode.chroma: av1 cannot carry 4:2:2 video (use chroma = \"420\" or \"same\")"),
        ("codec = \"prores\"\ncrf = 10", "mov", "encode.crf: prores takes no crf (its profile sets the quality: proxy, lt, standard, hq, 4444, 4444xq)"),
        ("codec = \"hevc\"\nbit_depth = 9", "mkv", "encode.bit_depth: bit depth 9 is not supported (8, 10 or 12)"),
    ];
    let mut failures = Vec::new();
    for (encode, container, want) in table {
        let got = job(encode, container);
        if got != want {
            failures.push(format!("{encode:?} in {container}:\n  expected: {want:?}\n  got:      {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `[filter] deinterlace` parses with its five values and refuses others, naming them.
#[test]
fn the_filter_section_parses() {
    let text = |v: &str| {
        format!("version = 1\n[model]\npath = \"m.onnx\"\n[[input]]\npath = \"a.mp4\"\n[output]\ndir = \"o\"\n[filter]\ndeinterlace = \"{v}\"\n")
    };
    for (v, want) in [
        ("auto", Deinterlace::Auto),
        ("off", Deinterlace::Off),
        ("bwdif", Deinterlace::Bwdif),
        ("bwdif-double", Deinterlace::BwdifDouble),
        ("ivtc", Deinterlace::Ivtc),
    ] {
        let m = videoforge::manifest::parse(&text(v), Path::new("f.toml")).unwrap();
        assert_eq!(m.filter.deinterlace, want);
    }
    let e = videoforge::manifest::parse(&text("yadif"), Path::new("f.toml")).unwrap_err().to_string();
    assert_eq!(
        e,
        "f.toml:9:15: filter.deinterlace: unknown variant `yadif`, expected one of `auto`, `off`, `bwdif`, \
         `bwdif-double`, `ivtc`"
    );
}

/// `videoforge plan` shows each file's filter chain and output pixel format before anything runs.
#[test]
fn plan_shows_the_filter_chain_and_pixel_format_per_file() {
    let dir = tempfile::tempdir().unwrap();
    interlaced_clip(dir.path(), "bff");
    let model = root().join("tests/fixtures/models/nearest2x.onnx");
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "version = 1\n[model]\npath = {model:?}\n[device]\ngpus = \"cpu\"\n[[input]]\npath = \"bff.ts\"\n\
             [output]\ndir = \"out\"\ncontainer = \"mov\"\n[encode]\ncodec = \"prores\"\n[filter]\ndeinterlace = \"bwdif-double\"\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_videoforge"))
        .args(["plan"])
        .arg(&job)
        .env("ORT_DYLIB_PATH", ort_library())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(text.contains("libavfilter: bwdif=mode=send_field:parity=bff:deint=all"), "{text}");
    assert!(text.contains("field order bff from frame flags"), "{text}");
    assert!(text.contains("frames:  host RGB (CPU worker)"), "{text}");
    assert!(
        text.contains("output:  704x480 yuv422p10le (4:2:2, 10-bit), prores_ks profile hq, 59.940 fps (60000/1001)"),
        "{text}"
    );
}

/// Runs a job on `gpus` (`"cpu"` or `[0]`) with the exact nearest-x2 model: FFV1 out; the file's report.
fn run_job_on(
    dir: &Path,
    input: &Path,
    gpus: &str,
    extra: &str,
    name: &str,
) -> (std::path::PathBuf, serde_json::Value) {
    let model = root().join("tests/fixtures/models/nearest2x.onnx");
    let text = format!(
        "version = 1\n[model]\npath = {model:?}\n[device]\ngpus = {gpus}\n[[input]]\npath = {input:?}\n[output]\n\
         dir = {dir:?}\nname = \"{name}\"\ncontainer = \"mkv\"\n[encode]\ncodec = \"ffv1\"\n{extra}\n"
    );
    let spec = videoforge::manifest::JobSpec::new(
        "studio-gpu.toml".into(),
        dir.to_path_buf(),
        videoforge::manifest::parse(&text, Path::new("studio-gpu.toml")).unwrap(),
    );
    let opts = videoforge::runner::RunOptions { force: true, env: env(), ..Default::default() };
    let summary = videoforge::runner::run_job(&spec, &opts).unwrap();
    assert_eq!(summary.done, 1, "{}", summary.table());
    (dir.join(name), summary.files[0].pipeline.clone().expect("a report"))
}

/// On the lent GPU: an interlaced H.264 clip deinterlaced by a GPU job against the CPU path (libavfilter's bwdif):
/// NVDEC's adaptive deinterlacer at both rates (at one frame per field with its one-field lag undone: `tests/gpu.rs`).
/// The same frame counts and timestamps, the report naming what ran,
/// and both judged against the truth, the progressive frames the clip was woven from (top field from frame 2k,
/// bottom from 2k + 1; at one frame per picture, frame 2k): two deinterlacers are not one, so the GPU job's luma must
/// come as close to the truth as the CPU job's within 2 dB on average. The woven frames, not deinterlaced, are
/// printed beside them.
#[test]
#[ignore = "needs an NVIDIA GPU and ONNX Runtime's CUDA build (ORT_DYLIB_PATH)"]
fn nvdec_deinterlacing_matches_the_cpu_path() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("interlaced.mkv");
    interlaced_h264(&input, "hue=s=0.6,");
    let truth = dir.path().join("truth.mkv");
    interlaced_h264_truth(&truth, "hue=s=0.6,");
    let l = Layout::new(320, 240, "420", 8);
    let truth = nearest2(&samples(&truth, &l), &l);
    let big = l.doubled();
    let frames = |v: &[u16]| v.chunks_exact(big.frame_samples()).map(<[u16]>::to_vec).collect::<Vec<_>>();
    let truth = frames(&truth);
    // Mean luma PSNR of the frames against the true frame each stands for.
    let mean_psnr = |got: &[Vec<u16>], step: usize| {
        assert_eq!(got.len() * step, truth.len(), "one output frame per {step} true frames");
        got.iter().enumerate().map(|(i, f)| plane_psnr(f, &truth[i * step], &big)[0]).sum::<f64>() / got.len() as f64
    };
    let (woven, _) = run_job_on(dir.path(), &input, "\"cpu\"", "[filter]\ndeinterlace = \"off\"", "woven.mkv");
    let woven = mean_psnr(&frames(&samples(&woven, &big)), 2);
    for (choice, per_frame) in [("bwdif", 1usize), ("bwdif-double", 2)] {
        let extra = format!("[filter]\ndeinterlace = \"{choice}\"");
        let (cpu, cpu_report) = run_job_on(dir.path(), &input, "\"cpu\"", &extra, &format!("cpu-{choice}.mkv"));
        let (gpu, gpu_report) = run_job_on(dir.path(), &input, "[0]", &extra, &format!("gpu-{choice}.mkv"));
        let kind = if per_frame == 1 { "nvdec_adaptive" } else { "nvdec_adaptive_double" };
        assert_eq!(
            (gpu_report["decoder"].as_str(), gpu_report["filter"]["kind"].as_str()),
            (Some("nvdec"), Some(kind))
        );
        assert_eq!(cpu_report["filter"]["kind"], if per_frame == 1 { "bwdif" } else { "bwdif_double" });
        assert_eq!(gpu_report["frames_encoded"], (40 * per_frame) as u64);
        assert_eq!(gpu_report["frames_encoded"], cpu_report["frames_encoded"]);
        assert_eq!(times(&gpu), times(&cpu), "{choice}: timestamps");
        let step = 2 / per_frame;
        let (cpu, gpu) = (frames(&samples(&cpu, &big)), frames(&samples(&gpu, &big)));
        let cpu_db = mean_psnr(&cpu, step);
        let gpu_db = mean_psnr(&gpu, step);
        eprintln!(
            "{choice}: mean luma PSNR against the progressive truth: GPU job ({kind}) {gpu_db:.1} dB, bwdif on the \
             CPU {cpu_db:.1} dB (the woven frames, not deinterlaced: {woven:.1} dB)"
        );
        assert!(gpu_db > cpu_db - 2.0, "{choice}: GPU job {gpu_db:.1} dB, CPU {cpu_db:.1} dB");
    }
}

/// On the lent GPU: ProRes 422 HQ (4:2:2 10-bit, which NVDEC does not decode) takes the CPU-decode-and-upload
/// path, through the 4:2:2 colour kernels, and agrees with the CPU path.
#[test]
#[ignore = "needs an NVIDIA GPU and ONNX Runtime's CUDA build (ORT_DYLIB_PATH)"]
fn prores_422_takes_the_upload_path_on_the_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mov");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=25",
        "-frames:v",
        "10",
        "-vf",
        "hue=s=0.6",
        "-colorspace",
        "smpte170m",
        "-color_range",
        "tv",
        "-c:v",
        "prores_ks",
        "-profile:v",
        "hq",
        "-pix_fmt",
        "yuv422p10le",
        s(&input),
    ]);
    let (cpu, _) = run_job_on(dir.path(), &input, "\"cpu\"", "", "cpu.mkv");
    let (gpu, report) = run_job_on(dir.path(), &input, "[0]", "", "gpu.mkv");
    assert_eq!((report["frame_path"].as_str(), report["decoder"].as_str()), (Some("upload"), Some("cpu")), "{report}");
    assert!(report["frame_path_reason"].as_str().unwrap().contains("4:2:2"), "{report}");
    assert_eq!(video_field(&gpu, "pix_fmt"), "yuv422p10le");
    let l = Layout::new(640, 360, "422", 10);
    let [y, u, v] = plane_psnr(&samples(&cpu, &l), &samples(&gpu, &l), &l);
    eprintln!("ProRes 4:2:2 GPU upload path vs CPU: Y {y:.1} dB, Cb {u:.1} dB, Cr {v:.1} dB");
    assert!(y > 50.0 && u > 50.0 && v > 50.0, "{y:.1}/{u:.1}/{v:.1} dB");
}
