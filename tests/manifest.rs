//! Job files: exact error texts for invalid manifests, the checked-in JSON Schema, every example validated
//! against it, and arbitrary TOML never panicking the parser.

use std::path::{Path, PathBuf};
use videoforge::manifest;
use videoforge::plan;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Parses and validates a job file the way `videoforge validate` does; returns every message. Run from the
/// repository root, so messages name `jobs/invalid/...` as a user in the checkout sees them.
fn check(rel: &str) -> String {
    let path = Path::new("jobs/invalid").join(rel);
    std::env::set_current_dir(root()).expect("repository root");
    match videoforge::runner::load_job(&path) {
        Err(videoforge::EngineError::Invalid(problems)) => plan::format_problems(&problems),
        Err(e) => e.to_string(),
        Ok(spec) => plan::format_problems(&plan::locate(&spec, plan::validate(&spec))),
    }
}

#[test]
fn invalid_manifests_give_exact_errors() {
    let d = "models/missing.onnx";
    #[rustfmt::skip]
    let table: Vec<(&str, String)> = vec![
        ("unknown_key.toml", "jobs/invalid/unknown_key.toml:4:1: model.precison: unknown field `precison`, expected one of `path`, `backend`, `precision`, `runtime`".into()),
        ("bad_precision.toml", "jobs/invalid/bad_precision.toml:4:13: model.precision: unknown variant `f8`, expected one of `f16`, `f32`, `auto`".into()),
        ("version_not_a_number.toml", "jobs/invalid/version_not_a_number.toml:1:11: version: invalid type: string \"one\", expected u32".into()),
        ("missing_model.toml", "jobs/invalid/missing_model.toml:1:1: missing field `model`".into()),
        ("bad_gpus.toml", "jobs/invalid/bad_gpus.toml:5:8: device.gpus: invalid value: string \"gpu0\", expected \"auto\", \"cpu\" or a list of GPU indices like [0, 1]".into()),
        ("bad_vram_limit.toml", "jobs/invalid/bad_vram_limit.toml:5:14: device.vram_limit: invalid size \"8 parsecs\": unknown unit \"parsecs\" (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)".into()),
        ("bad_container.toml", "jobs/invalid/bad_container.toml:8:13: output.container: unknown variant `avi`, expected one of `mp4`, `mkv`, `mov`, `same`".into()),
        ("syntax_error.toml", "jobs/invalid/syntax_error.toml:2:7: invalid table header\nexpected `.`, `]`".into()),
        ("type_and_value_errors.toml", [
            "jobs/invalid/type_and_value_errors.toml:4:13: model.precision: unknown variant `f8`, expected one of `f16`, `f32`, `auto`",
            "jobs/invalid/type_and_value_errors.toml:6:8: device.gpus: invalid value: string \"gpu0\", expected \"auto\", \"cpu\" or a list of GPU indices like [0, 1]",
            "jobs/invalid/type_and_value_errors.toml:9:18: input[0].encode.crf: invalid type: string \"high\", expected u32",
            "jobs/invalid/type_and_value_errors.toml:15:9: pipeline.depth: invalid type: string \"four\", expected u32",
            "jobs/invalid/type_and_value_errors.toml:13:1: encode.crf: crf 99 is out of range for h264 (expected 0..=51)",
            // The input's own crf was unreadable, so it inherits the job's, which is out of range too.
            "jobs/invalid/type_and_value_errors.toml:9:12: input[0].encode.crf: crf 99 is out of range for h264 (expected 0..=51)",
        ].join("\n")),
        ("unknown_input_key.toml", "jobs/invalid/unknown_input_key.toml:8:1: input[1].recurse: unknown field `recurse`, expected one of `path`, `recursive`, `encode`".into()),
        ("crf_out_of_range.toml", "jobs/invalid/crf_out_of_range.toml:10:1: encode.crf: crf 60 is out of range for h264 (expected 0..=51)".into()),
        ("ffv1_with_crf.toml", "jobs/invalid/ffv1_with_crf.toml:11:1: encode.crf: ffv1 is lossless and takes no crf".into()),
        ("ffv1_in_mp4.toml", "jobs/invalid/ffv1_in_mp4.toml:10:1: encode.codec: ffv1 cannot be stored in mp4 (use container = \"mkv\" or \"mov\")".into()),
        ("bad_preset.toml", "jobs/invalid/bad_preset.toml:9:1: encode.preset: unknown preset \"warp\" for h264 (expected one of ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, veryslow, placebo)".into()),
        ("model_not_found.toml", format!("jobs/invalid/model_not_found.toml:3:1: model.path: model file {d} not found")),
        ("no_input_matched.toml", "jobs/invalid/no_input_matched.toml:5:1: input[0].path: \"../media/*.mkv\" matched no video file".into()),
        ("bad_name_template.toml", "jobs/invalid/bad_name_template.toml:8:1: output.name: unknown placeholder {resolution} in \"{stem}.{resolution}.mp4\" (expected {stem}, {ext}, {scale}, {codec} or {index})".into()),
        ("depth_zero.toml", "jobs/invalid/depth_zero.toml:9:1: pipeline.depth: must be at least 1".into()),
        ("tile_too_small.toml", "jobs/invalid/tile_too_small.toml:9:1: pipeline.tile: tile 16 is too small (0 for whole frames, or at least 32)".into()),
        ("unsupported_version.toml", "jobs/invalid/unsupported_version.toml:1:1: version: unsupported manifest version 2 (expected 1)".into()),
        ("ten_bit_profile.toml", "jobs/invalid/ten_bit_profile.toml:11:1: encode.profile: profile \"high\" cannot carry 10-bit video (use high10)".into()),
        ("many_problems.toml", format!("jobs/invalid/many_problems.toml:3:1: model.path: model file {d} not found\njobs/invalid/many_problems.toml:10:1: encode.crf: crf 70 is out of range for av1 (expected 0..=63)\njobs/invalid/many_problems.toml:11:1: encode.preset: unknown preset \"slow\" for av1 (expected a number 0..=13)\njobs/invalid/many_problems.toml:13:1: pipeline.batch: must be at least 1")),
    ];
    let on_disk = std::fs::read_dir(root().join("jobs/invalid")).unwrap().count();
    assert_eq!(on_disk, table.len(), "every file in jobs/invalid/ has a row in this table");
    let mut failures = Vec::new();
    for (file, expected) in &table {
        let got = check(file);
        if &got != expected {
            failures.push(format!("{file}:\n  expected: {expected:?}\n  got:      {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn checked_in_schema_matches_the_code() {
    let path = root().join("schemas/job.schema.json");
    let generated = manifest::json_schema_text();
    if std::env::var_os("VIDEOFORGE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "schemas/job.schema.json is out of date: run `cargo run -- schema > schemas/job.schema.json` \
         (or VIDEOFORGE_BLESS=1 cargo test --test manifest)"
    );
}

fn example_jobs(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() && p.file_name().is_some_and(|n| n != "invalid") {
            example_jobs(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn every_example_job_validates_against_the_schema_and_the_code() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("schemas/job.schema.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let mut jobs = Vec::new();
    example_jobs(&root().join("jobs"), &mut jobs);
    assert!(jobs.len() >= 2, "examples found: {jobs:?}");
    for job in jobs {
        let text = std::fs::read_to_string(&job).unwrap();
        let value: serde_json::Value = toml::from_str(&text).unwrap();
        let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", job.display());
        let spec = manifest::load(&job).unwrap_or_else(|e| panic!("{e}"));
        let problems = plan::validate(&spec);
        assert!(problems.is_empty(), "{}: {}", job.display(), plan::format_problems(&problems));
    }
}

#[test]
fn the_schema_rejects_what_the_parser_rejects() {
    let schema = manifest::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for file in ["unknown_key.toml", "bad_precision.toml", "bad_gpus.toml", "bad_container.toml", "missing_model.toml"]
    {
        let text = std::fs::read_to_string(root().join("jobs/invalid").join(file)).unwrap();
        let value: serde_json::Value = toml::from_str(&text).unwrap();
        assert!(!validator.is_valid(&value), "{file} passed the schema");
    }
}

mod fuzz {
    use proptest::prelude::*;
    use std::path::Path;

    fn toml_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            "[a-z0-9 ./*{}]{0,12}".prop_map(|s| format!("{s:?}")),
            Just("true".to_string()),
            Just("[0, 1]".to_string()),
            Just("\"8GiB\"".to_string()),
            Just("\"auto\"".to_string()),
        ]
    }

    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "version",
            "path",
            "backend",
            "precision",
            "gpus",
            "vram_limit",
            "dir",
            "name",
            "container",
            "codec",
            "crf",
            "preset",
            "depth",
            "tile",
            "batch",
            "recursive",
            "bogus",
        ])
    }

    fn section() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", "[model]", "[device]", "[[input]]", "[output]", "[encode]", "[pipeline]", "[x]"])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// Structured, manifest-like TOML: always a manifest or an error with a message, never a panic.
        #[test]
        fn manifest_like_toml_never_panics(lines in prop::collection::vec((section(), key(), toml_value()), 0..14)) {
            let mut text = String::new();
            for (s, k, v) in lines {
                if !s.is_empty() { text += s; text.push('\n'); }
                text += &format!("{k} = {v}\n");
            }
            match videoforge::manifest::parse(&text, Path::new("fuzz.toml")) {
                Ok(_) => {}
                Err(e) => prop_assert!(e.to_string().starts_with("fuzz.toml")),
            }
        }

        /// Arbitrary bytes as text.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = videoforge::manifest::parse(&text, Path::new("fuzz.toml"));
        }
    }
}
