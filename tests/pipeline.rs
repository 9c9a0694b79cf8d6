//! The pipeline on real files made with the `ffmpeg` CLI: stream copy, timestamps, colour tags, bit depth, odd
//! sizes, bad inputs, cancellation and panics. Tiny clips; a test-local nearest-neighbour model unless the test
//! is about inference (see `tests/pipeline_model.rs` for the ONNX plugin).

mod common;

use common::*;
use videoforge::codec::Container;
use videoforge::pipeline::Cancel;
use videoforge::plan::EncodePlan;
use videoforge::EngineError;

#[test]
fn mkv_with_audio_and_subtitles_keeps_them_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (srt, input, output) = (dir.path().join("s.srt"), dir.path().join("in.mkv"), dir.path().join("out.mkv"));
    std::fs::write(&srt, "1\n00:00:00,000 --> 00:00:00,500\nhello\n\n2\n00:00:00,500 --> 00:00:01,000\nworld\n")
        .unwrap();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10:duration=1",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1",
        "-i",
        srt.to_str().unwrap(),
        "-map",
        "0",
        "-map",
        "1",
        "-map",
        "2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-c:s",
        "srt",
        input.to_str().unwrap(),
    ]);
    let report = run(&input, &output, Container::Mkv, &x264(18), Box::new(Nearest(2)), &Cancel::new()).unwrap();
    assert_eq!((report.frames_decoded, report.frames_encoded), (10, 10));
    assert_eq!((report.output_width, report.output_height), (128, 96));
    assert_eq!(video_field(&output, "width,height"), "128,96");
    let kinds = ffprobe(&output, &["-show_entries", "stream=codec_type,codec_name", "-of", "csv=p=0"]);
    assert_eq!(kinds.lines().collect::<Vec<_>>(), vec!["h264,video", "aac,audio", "subrip,subtitle"]);
    assert_eq!(stream_md5(&input, "0:a"), stream_md5(&output, "0:a"));
    assert_eq!(frame_times(&input), frame_times(&output));
    let tags = ffprobe(&output, &["-show_entries", "format_tags=videoforge_fingerprint", "-of", "csv=p=0"]);
    assert_eq!(tags, "test-fp");
    assert_eq!(dir_entries(dir.path()), vec!["in.mkv", "out.mkv", "s.srt"], "no temporary file left");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["stages"].as_array().unwrap().len(), 3);
    assert!(report.cpu_s.is_some_and(|c| c > 0.0), "CPU time over the file: {:?}", report.cpu_s);
}

#[test]
fn process_cpu_time_counts_a_busy_thread() {
    // Spins until the process has been charged 0.2 s more (10 s at most, for a loaded machine).
    let before = videoforge::pipeline::process_cpu_s().expect("/proc/self/stat");
    let t = std::time::Instant::now();
    let mut x = 0u64;
    let spent = loop {
        for _ in 0..1_000_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let spent = videoforge::pipeline::process_cpu_s().expect("/proc/self/stat") - before;
        if spent >= 0.2 || t.elapsed().as_secs() >= 10 {
            break spent;
        }
    };
    assert!(spent >= 0.2, "{:.1} s of spinning counted as {spent} s of CPU", t.elapsed().as_secs_f64());
}

fn assert_media_error(r: Result<videoforge::pipeline::FileReport, EngineError>, needle: &str) {
    match r {
        Err(e) => match e.root() {
            EngineError::Video(videoforge::video::VideoError::Input { message, .. }) => {
                assert!(message.contains(needle), "message: {message}")
            }
            other => panic!("expected an input error containing {needle:?}, got {other:?}"),
        },
        Ok(r) => panic!("expected an input error containing {needle:?}, got a report of {} frames", r.frames_encoded),
    }
}

#[test]
fn variable_frame_rate_timestamps_are_kept_frame_by_frame_into_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("vfr.mkv"), dir.path().join("out.mp4"));
    // Drop every third frame and stretch some: irregular gaps between frames.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=25:duration=1.2",
        "-vf",
        "select='not(eq(mod(n\\,3)\\,1))',setpts='PTS+gte(N\\,10)*0.37/TB'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        input.to_str().unwrap(),
    ]);
    let times = frame_times(&input);
    assert!(times.len() > 10);
    run(&input, &output, Container::Mp4, &x264(20), Box::new(Nearest(2)), &Cancel::new()).unwrap();
    assert_eq!(frame_times(&output), times);
}

#[test]
fn ten_bit_in_gives_ten_bit_out_and_bt709_tags_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in10.mkv"), dir.path().join("out10.mkv"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10:duration=0.5",
        "-pix_fmt",
        "yuv420p10le",
        "-colorspace",
        "bt709",
        "-color_primaries",
        "bt709",
        "-color_trc",
        "bt709",
        "-color_range",
        "tv",
        "-c:v",
        "libx265",
        "-x265-params",
        "log-level=error",
        input.to_str().unwrap(),
    ]);
    let r = run(&input, &output, Container::Same, &x264(20), Box::new(Nearest(2)), &Cancel::new()).unwrap();
    assert_eq!(r.output_bit_depth, 10);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(video_field(&output, "pix_fmt"), "yuv420p10le");
    assert_eq!(video_field(&output, "color_space,color_primaries,color_transfer,color_range"), "tv,bt709,bt709,bt709");
    assert_eq!(r.frames_encoded, 5);
}

#[test]
fn bt601_full_range_tags_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.mp4"), dir.path().join("out.mp4"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10:duration=0.5",
        "-vf",
        "scale=out_range=pc:out_color_matrix=bt601",
        "-pix_fmt",
        "yuv420p",
        "-colorspace",
        "smpte170m",
        "-color_primaries",
        "smpte170m",
        "-color_trc",
        "smpte170m",
        "-color_range",
        "pc",
        "-c:v",
        "libx264",
        input.to_str().unwrap(),
    ]);
    let r = run(&input, &output, Container::Same, &x264(20), Box::new(Nearest(2)), &Cancel::new()).unwrap();
    assert_eq!(r.container, "mp4");
    assert_eq!(
        video_field(&output, "color_range,color_space,color_transfer,color_primaries"),
        "pc,smpte170m,smpte170m,smpte170m"
    );
}

#[test]
fn untagged_sd_input_is_assumed_bt601_limited_and_tagged_so() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.mkv"), dir.path().join("out.mkv"));
    ffmpeg(&["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=0.3", "-c:v", "ffv1", input.to_str().unwrap()]);
    let r = run(&input, &output, Container::Mkv, &ffv1(), Box::new(Nearest(2)), &Cancel::new()).unwrap();
    assert!(r.warnings.iter().any(|w| w.contains("assumed BT.601")), "{:?}", r.warnings);
    assert_eq!(video_field(&output, "color_space,color_range"), "tv,smpte170m");
}

#[test]
fn odd_sizes_are_kept_or_cropped_to_even_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("odd.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=100x76:rate=10:duration=0.3",
        "-vf",
        "scale=99:75",
        "-pix_fmt",
        "yuv444p",
        "-c:v",
        "ffv1",
        input.to_str().unwrap(),
    ]);
    let out2 = dir.path().join("x2.mkv");
    let r = run(&input, &out2, Container::Mkv, &ffv1(), Box::new(Nearest(2)), &Cancel::new()).unwrap();
    assert_eq!(video_field(&out2, "width,height"), "198,150");
    assert_eq!(r.frames_encoded, 3);
    // 4:4:4 in, 4:4:4 out: an odd size is kept; forced to 4:2:0, it is cropped to even.
    let out3 = dir.path().join("x3.mkv");
    let r = run(&input, &out3, Container::Mkv, &ffv1(), Box::new(Nearest(3)), &Cancel::new()).unwrap();
    assert_eq!(video_field(&out3, "width,height,pix_fmt"), "297,225,yuv444p");
    assert!(r.warnings.iter().all(|w| !w.contains("cropped")), "{:?}", r.warnings);
    let out420 = dir.path().join("x3_420.mkv");
    let as420 = EncodePlan { chroma: Some(videoforge::codec::Chroma::C420), ..ffv1() };
    let r = run(&input, &out420, Container::Mkv, &as420, Box::new(Nearest(3)), &Cancel::new()).unwrap();
    assert_eq!(video_field(&out420, "width,height,pix_fmt"), "296,224,yuv420p");
    assert!(r.warnings.iter().any(|w| w.contains("which 4:2:0 cannot encode: cropped to 296x224")), "{:?}", r.warnings);
}

#[test]
fn non_square_pixels_and_rotation_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, input, output) = (dir.path().join("p.mp4"), dir.path().join("in.mp4"), dir.path().join("out.mp4"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10:duration=0.3",
        "-vf",
        "setsar=4/3",
        "-c:v",
        "libx264",
        plain.to_str().unwrap(),
    ]);
    // FFmpeg 5.1 turns the `rotate` tag into a display matrix when remuxing.
    ffmpeg(&["-i", plain.to_str().unwrap(), "-c", "copy", "-metadata:s:v:0", "rotate=90", input.to_str().unwrap()]);
    run(&input, &output, Container::Mp4, &x264(20), Box::new(Nearest(2)), &Cancel::new()).unwrap();
    assert_eq!(video_field(&output, "sample_aspect_ratio"), "4:3");
    let rot = |p: &std::path::Path| {
        ffprobe(p, &["-select_streams", "v:0", "-show_entries", "stream_side_data=rotation", "-of", "csv=p=0"])
    };
    assert_eq!(rot(&output), rot(&input));
    assert!(!rot(&input).is_empty());
}

#[test]
fn subrip_cannot_go_into_mp4_and_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (srt, input, output) = (dir.path().join("s.srt"), dir.path().join("in.mkv"), dir.path().join("out.mp4"));
    std::fs::write(&srt, "1\n00:00:00,000 --> 00:00:00,300\nhi\n\n").unwrap();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10:duration=0.3",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=0.3",
        "-i",
        srt.to_str().unwrap(),
        "-map",
        "0",
        "-map",
        "1",
        "-map",
        "2",
        "-c:v",
        "libx264",
        "-c:a",
        "aac",
        "-c:s",
        "srt",
        input.to_str().unwrap(),
    ]);
    let r = run(&input, &output, Container::Mp4, &x264(20), Box::new(Nearest(2)), &Cancel::new()).unwrap();
    assert!(r.warnings.iter().any(|w| w.contains("subrip cannot be stored in mp4")), "{:?}", r.warnings);
    let kinds = ffprobe(&output, &["-show_entries", "stream=codec_type", "-of", "csv=p=0"]);
    assert_eq!(kinds.lines().collect::<Vec<_>>(), vec!["video", "audio"]);
    assert_eq!(stream_md5(&input, "0:a"), stream_md5(&output, "0:a"));
}

#[test]
fn missing_file_and_not_a_video_are_media_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mkv");
    assert_media_error(
        run(&dir.path().join("nope.mkv"), &out, Container::Mkv, &ffv1(), Box::new(Nearest(2)), &Cancel::new()),
        "no such file",
    );
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "this is not a video\n".repeat(50)).unwrap();
    assert_media_error(
        run(&text, &out, Container::Mkv, &ffv1(), Box::new(Nearest(2)), &Cancel::new()),
        "not a readable media file",
    );
    let audio = dir.path().join("audio.mka");
    ffmpeg(&["-f", "lavfi", "-i", "sine=duration=0.2", "-c:a", "aac", audio.to_str().unwrap()]);
    assert_media_error(
        run(&audio, &out, Container::Mkv, &ffv1(), Box::new(Nearest(2)), &Cancel::new()),
        "no video stream",
    );
    assert_eq!(dir_entries(dir.path()), vec!["audio.mka", "notes.mp4"]);
}

#[test]
fn truncated_and_corrupt_streams_fail_and_publish_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10:duration=2",
        "-c:v",
        "libx264",
        "-g",
        "5",
        good.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&good).unwrap();
    // Garbage over the middle third.
    let mut corrupt = bytes.clone();
    let (a, b) = (bytes.len() / 3, 2 * bytes.len() / 3);
    for (i, x) in corrupt[a..b].iter_mut().enumerate() {
        *x = (i * 7919 % 251) as u8;
    }
    let bad = dir.path().join("corrupt.ts");
    std::fs::write(&bad, &corrupt).unwrap();
    let out = dir.path().join("out.mkv");
    assert_media_error(
        run(&bad, &out, Container::Mkv, &ffv1(), Box::new(Nearest(2)), &Cancel::new()),
        "frames decoded before the stream broke",
    );
    // An mp4 cut in half (no index at the end) does not open; a Matroska file cut in half stops early.
    let mkv = dir.path().join("good.mkv");
    ffmpeg(&["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=2", "-c:v", "libx264", mkv.to_str().unwrap()]);
    let bytes = std::fs::read(&mkv).unwrap();
    let cut = dir.path().join("cut.mkv");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 4]).unwrap();
    assert_media_error(
        run(&cut, &out, Container::Mkv, &ffv1(), Box::new(Nearest(2)), &Cancel::new()),
        "frames decoded before the stream broke",
    );
    assert!(!out.exists());
    assert_eq!(dir_entries(dir.path()), vec!["corrupt.ts", "cut.mkv", "good.mkv", "good.ts"]);
}

#[test]
fn cancel_from_another_thread_leaves_no_output() {
    use std::sync::atomic::{AtomicU64, Ordering};
    struct Slow(Nearest);
    impl videoforge::backend::FrameModel for Slow {
        fn scale(&self) -> u32 {
            2
        }
        fn upscale(
            &mut self,
            i: &[f32],
            w: usize,
            h: usize,
            o: &mut Vec<f32>,
        ) -> Result<(), videoforge::backend::BackendError> {
            std::thread::sleep(std::time::Duration::from_millis(20));
            self.0.upscale(i, w, h, o)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.mkv"), dir.path().join("out.mkv"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=25:duration=4",
        "-c:v",
        "libx264",
        input.to_str().unwrap(),
    ]);
    let cancel = Cancel::new();
    let done = std::sync::Arc::new(AtomicU64::new(0));
    let watcher = {
        let (cancel, done) = (cancel.clone(), done.clone());
        std::thread::spawn(move || {
            while done.load(Ordering::SeqCst) < 5 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            cancel.request_stop();
        })
    };
    let d = done.clone();
    let r = videoforge::pipeline::upscale_file(videoforge::pipeline::FileJob {
        settings: videoforge::plan::FileSettings {
            input: &input,
            output: &output,
            device: videoforge::codec::Device::Cpu,
            container: Container::Mkv,
            encode: &x264(20),
            pipeline: &pipe(),
            decode: &[],
            scale: 2,
            frame_pool_budget: None,
            quality: &Default::default(),
            deinterlace: videoforge::codec::Deinterlace::Auto,
        },
        engine: videoforge::pipeline::Engine::Host(Box::new(Slow(Nearest(2)))),
        cancel: &cancel,
        progress: videoforge::pipeline::FileProgress::new(move |p| d.store(p.frames_done, Ordering::SeqCst)),
        metadata: vec![],
        audit: None,
        digest_frames: false,
        before_publish: None,
    });
    watcher.join().unwrap();
    assert!(matches!(r, Err(EngineError::Interrupted)), "{r:?}");
    assert_eq!(dir_entries(dir.path()), vec!["in.mkv"]);
}

#[test]
fn a_panicking_model_is_recovered_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.mkv"), dir.path().join("out.mkv"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10:duration=1",
        "-c:v",
        "libx264",
        input.to_str().unwrap(),
    ]);
    let r = run(&input, &output, Container::Mkv, &x264(20), Box::new(PanicsAt(3)), &Cancel::new());
    match r {
        Err(EngineError::PanicRecovered { origin, message }) => {
            assert_eq!(origin, "stage infer");
            assert!(message.contains("model exploded"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(dir_entries(dir.path()), vec!["in.mkv"]);
    // The same with segment-parallel encoding: the encoder threads stop with the run, nothing waits forever.
    let split = EncodePlan { segments: 3, segment_frames: 2, ..x264(20) };
    let r = run(&input, &output, Container::Mkv, &split, Box::new(PanicsAt(5)), &Cancel::new());
    assert!(matches!(r, Err(EngineError::PanicRecovered { .. })), "{r:?}");
    assert_eq!(dir_entries(dir.path()), vec!["in.mkv"]);
}

#[test]
fn hevc_and_av1_encoders_open() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mkv");
    ffmpeg(&["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=0.3", "-c:v", "ffv1", input.to_str().unwrap()]);
    use videoforge::codec::Codec;
    use videoforge::plan::EncodePlan;
    for (codec, encoder, crf, preset, name) in [
        (Codec::Hevc, "libx265", 28, "ultrafast", "hevc"),
        (Codec::Av1, "libsvtav1", 40, "12", "av1"),
        (Codec::Av1, "libaom-av1", 40, "8", "av1"),
    ] {
        let plan = EncodePlan { codec, encoder: encoder.into(), crf: Some(crf), preset: Some(preset.into()), ..ffv1() };
        let out = dir.path().join(format!("{encoder}.mkv"));
        let r = run(&input, &out, Container::Mkv, &plan, Box::new(Nearest(2)), &Cancel::new()).unwrap();
        assert_eq!(r.frames_encoded, 3, "{encoder}");
        assert_eq!(video_field(&out, "codec_name"), name);
        assert_eq!(frame_times(&out), frame_times(&input), "{encoder}");
    }
}

/// Segment-parallel encoding (three x264 instances on 10-frame segments, B-frames on): every frame once, at the
/// input's timestamps, a keyframe at each segment start, decoding timestamps strictly increasing and never after
/// presentation, audio copied unchanged, and the pictures as good as one instance's — H.264 in MP4 and Matroska,
/// HEVC in MP4.
#[test]
fn segment_parallel_encoding_joins_losslessly() {
    let dir = tempfile::tempdir().unwrap();
    for (ext, codec) in [("mp4", "h264"), ("mkv", "h264"), ("mp4", "hevc")] {
        let input = dir.path().join(format!("in.{ext}"));
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=96x64:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-frames:v",
            "64",
            "-t",
            "2.56",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            input.to_str().unwrap(),
        ]);
        let container = if ext == "mp4" { Container::Mp4 } else { Container::Mkv };
        let one = dir.path().join(format!("one_{codec}.{ext}"));
        let seg = dir.path().join(format!("seg_{codec}.{ext}"));
        let base = match codec {
            "hevc" => EncodePlan {
                codec: videoforge::codec::Codec::Hevc,
                encoder: "libx265".into(),
                preset: Some("ultrafast".into()),
                ..x264(18)
            },
            _ => x264(18),
        };
        let single = EncodePlan { segments: 1, ..base.clone() };
        let split = EncodePlan { segments: 3, segment_frames: 10, ..base };
        let r1 = run(&input, &one, container, &single, Box::new(Nearest(2)), &Cancel::new()).unwrap();
        let r3 = run(&input, &seg, container, &split, Box::new(Nearest(2)), &Cancel::new()).unwrap();
        assert_eq!((r1.encoder_instances, r1.segment_frames), (1, None));
        assert_eq!((r3.encoder_instances, r3.segment_frames), (3, Some(10)));
        assert_eq!((r3.frames_decoded, r3.frames_encoded), (64, 64));
        assert_eq!(frame_times(&seg), frame_times(&input), "{ext}: every frame once, at the input's time");
        let frames: serde_json::Value = serde_json::from_str(&ffprobe(
            &seg,
            &["-select_streams", "v:0", "-show_entries", "frame=key_frame", "-of", "json"],
        ))
        .unwrap();
        let keys: Vec<usize> = frames["frames"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, f)| f["key_frame"] == 1)
            .map(|(i, _)| i)
            .collect();
        for start in (0..64).step_by(10) {
            assert!(keys.contains(&start), "{ext}: no keyframe at segment start {start}: {keys:?}");
        }
        let packets: serde_json::Value = serde_json::from_str(&ffprobe(
            &seg,
            &["-select_streams", "v:0", "-show_entries", "packet=pts,dts", "-of", "json"],
        ))
        .unwrap();
        let packets = packets["packets"].as_array().unwrap();
        assert_eq!(packets.len(), 64, "{ext}: one packet per frame");
        // Matroska stores no decoding timestamps: ffprobe derives them, and not for the first packets.
        let ts: Vec<(i64, i64)> =
            packets.iter().filter_map(|p| Some((p["pts"].as_i64()?, p["dts"].as_i64()?))).collect();
        assert!(ts.len() >= 60, "{ext}: timestamps: {packets:?}");
        assert!(ts.windows(2).all(|w| w[0].1 < w[1].1), "{ext}: decoding timestamps increase: {ts:?}");
        assert!(ts.iter().all(|(pts, dts)| dts <= pts), "{ext}: no packet decodes after it is shown: {ts:?}");
        assert_eq!(stream_md5(&seg, "0:a"), stream_md5(&input, "0:a"), "{ext}: audio copied unchanged");
        let (y, u, v) = psnr_yuv420(&raw_frames(&seg, "yuv420p"), &raw_frames(&one, "yuv420p"), 192, 128);
        assert!(y > 40.0 && u > 40.0 && v > 40.0, "{ext}: segmented vs one encoder: {y:.1}/{u:.1}/{v:.1} dB");
    }
}
