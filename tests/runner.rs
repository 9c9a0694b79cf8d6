//! The render-farm runner through the real CLI on real files: sharding (flag and scheduler variables),
//! skip/resume, fingerprint changes, SIGKILL recovery, failing files and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_videoforge"));
    c.env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("AWS_BATCH_JOB_ARRAY_INDEX")
        .env("VIDEOFORGE_NO_GPU", "1");
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        c.env("ORT_DYLIB_PATH", root().join(".deps/onnxruntime/libonnxruntime.so"));
    }
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A small H.264 clip made with the ffmpeg CLI: `frames` frames of a moving test pattern.
fn clip(path: &Path, w: u32, h: u32, frames: u32, seed: u32) {
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={w}x{h}:rate=24,hue=h={}", seed * 40))
        .args(["-frames:v", &frames.to_string(), "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(path)
        .status()
        .expect("ffmpeg CLI (scripts/setup.sh installs it)");
    assert!(st.success());
}

fn frames_in(path: &Path) -> u64 {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames"])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap_or(0)
}

struct Farm {
    dir: tempfile::TempDir,
}

impl Farm {
    /// `n` clips in `clips/` and a job that upscales them with the shipped model.
    fn new(n: u32, w: u32, h: u32, frames: u32) -> Farm {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("clips")).unwrap();
        for i in 0..n {
            clip(&dir.path().join(format!("clips/clip{i}.mp4")), w + 8 * i, h, frames, i);
        }
        let model = root().join("models/realesr-animevideov3-x2.onnx");
        std::fs::copy(&model, dir.path().join("model.onnx")).unwrap();
        let job = "version = 1\n[model]\npath = \"model.onnx\"\n[device]\ngpus = \"cpu\"\n\
                   [[input]]\npath = \"clips/*.mp4\"\n[output]\ndir = \"out\"\n[encode]\npreset = \"ultrafast\"\n";
        std::fs::write(dir.path().join("job.toml"), job).unwrap();
        Farm { dir }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn run(&self, args: &[&str]) -> Output {
        bin().arg("run").arg(self.path("job.toml")).args(args).output().unwrap()
    }
    fn outputs(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path("out"))
            .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.retain(|n| n.ends_with(".mp4"));
        v.sort();
        v
    }
}

/// Waits until a run has started writing its output (a temporary `.partial` file appears), then a little longer so
/// it is mid-file.
fn wait_until_writing(farm: &Farm) {
    let started = std::time::Instant::now();
    loop {
        let tmp = std::fs::read_dir(farm.path("out"))
            .map(|rd| rd.flatten().any(|e| e.file_name().to_string_lossy().contains("partial")))
            .unwrap_or(false);
        if tmp || started.elapsed().as_secs() > 60 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
}

fn dry_run_list(farm: &Farm, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let mut c = bin();
    c.arg("run").arg(farm.path("job.toml")).arg("--dry-run").args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()
}

#[test]
fn six_inputs_over_three_shards_cover_each_file_once_and_scheduler_variables_agree() {
    let farm = Farm::new(6, 32, 24, 2);
    let mut all = Vec::new();
    for i in 1..=3 {
        let flag = dry_run_list(&farm, &["--shard", &format!("{i}/3")], &[]);
        assert!(!flag.is_empty(), "shard {i} has work");
        let idx = (i - 1).to_string();
        let slurm = dry_run_list(
            &farm,
            &[],
            &[("SLURM_ARRAY_TASK_ID", &i.to_string()), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "3")],
        );
        let k8s = dry_run_list(&farm, &["--shard-count", "3"], &[("JOB_COMPLETION_INDEX", &idx)]);
        let aws = dry_run_list(&farm, &[], &[("AWS_BATCH_JOB_ARRAY_INDEX", &idx), ("AWS_BATCH_JOB_ARRAY_SIZE", "3")]);
        assert_eq!(flag, slurm, "Slurm selects shard {i}");
        assert_eq!(flag, k8s, "Kubernetes selects shard {i}");
        assert_eq!(flag, aws, "AWS Batch selects shard {i}");
        all.extend(flag);
    }
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, 6, "six files in all shards together");
    assert_eq!(all.len(), 6, "no file in two shards");

    // The submitters' task list agrees.
    let o = bin().arg("plan").arg(farm.path("job.toml")).args(["--shards", "3"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let tasks: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let n: usize = tasks.as_array().unwrap().iter().map(|t| t["files"].as_array().unwrap().len()).sum();
    assert_eq!(n, 6);

    // Really run the three shards: every output exactly once.
    for i in 1..=3 {
        let o = farm.run(&["--shard", &format!("{i}/3")]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let outs = farm.outputs();
    assert_eq!(outs.len(), 6, "{outs:?}");
    for o in outs {
        assert_eq!(frames_in(&farm.path(&format!("out/{o}"))), 2);
    }
}

#[test]
fn a_second_run_skips_everything_and_a_new_model_redoes_everything() {
    let farm = Farm::new(2, 32, 24, 3);
    let o = farm.run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2 done, 0 skipped, 0 failed"), "{}", text(&o));

    let o = farm.run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("0 done, 2 skipped, 0 failed"), "{}", text(&o));

    // A different model file is a new fingerprint: everything is redone.
    std::fs::copy(root().join("models/realesr-animevideov3-x2-fp16.onnx"), farm.path("model.onnx")).unwrap();
    let o = farm.run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2 done, 0 skipped, 0 failed"), "{}", text(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(farm.path("out/clip0.x2.mp4.report.json")).unwrap()).unwrap();
    assert_eq!(report["status"], "complete");
    assert_eq!(report["fingerprint"]["execution_provider"], "cpu");
    // The fingerprint is in the output container's metadata too.
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format_tags=videoforge_fingerprint", "-of", "csv=p=0"])
        .arg(farm.path("out/clip0.x2.mp4"))
        .output()
        .unwrap();
    let tag = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(tag, report["fingerprint_id"].as_str().unwrap());
}

#[test]
fn a_failing_file_does_not_stop_the_others_and_sets_the_exit_code() {
    let farm = Farm::new(2, 32, 24, 2);
    std::fs::write(farm.path("clips/broken.mp4"), b"this is not a video").unwrap();
    let o = farm.run(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("2 done, 0 skipped, 1 failed"), "{t}");
    assert!(t.contains("broken.mp4"), "{t}");
    assert_eq!(farm.outputs(), vec!["clip0.x2.mp4".to_string(), "clip1.x2.mp4".to_string()]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(farm.path("out/videoforge-run.json")).unwrap()).unwrap();
    assert_eq!(summary["failed"], 1);
}

#[test]
fn sigkill_mid_file_leaves_no_complete_looking_output_and_a_rerun_finishes() {
    let farm = Farm::new(1, 96, 64, 48);
    let mut child = bin().arg("run").arg(farm.path("job.toml")).spawn().unwrap();
    wait_until_writing(&farm);
    child.kill().unwrap();
    let _ = child.wait();
    assert!(farm.outputs().is_empty(), "nothing at the output path after SIGKILL: {:?}", farm.outputs());
    assert!(!farm.path("out/clip0.x2.mp4.report.json").exists());
    let partial = format!(".clip0.x2.mp4.partial-{}", child.id());
    assert!(farm.path("out").join(&partial).exists(), "the killed run's temporary file is there");

    let o = farm.run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(farm.outputs(), vec!["clip0.x2.mp4".to_string()]);
    assert_eq!(frames_in(&farm.path("out/clip0.x2.mp4")), 48);
    // The rerun swept the dead run's temporary file: nothing but the output, its report and the summary remain.
    let left: Vec<String> = std::fs::read_dir(farm.path("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "stale temporary files left: {left:?}");
}

#[test]
fn a_bad_job_exits_3_and_names_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.toml"),
        "version = 1\n[model]\npath = \"nope.onnx\"\n[[input]]\npath = \"none/*.mp4\"\n[output]\ndir = \"out\"\n[encode]\ncrf = 99\n",
    )
    .unwrap();
    let o = bin().arg("run").arg(dir.path().join("job.toml")).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("model.path: model file"), "{t}");
    assert!(t.contains("input[0].path"), "{t}");
    assert!(t.contains("encode.crf: crf 99 is out of range"), "{t}");
}

/// The shipped Slurm, Kubernetes and AWS Batch examples: their shard counts agree with the variables they set,
/// and running the example job with the variables each scheduler would set covers every file exactly once.
#[test]
fn scheduler_examples_shard_the_farm_job() {
    let farm = root().join("jobs/farm");
    let slurm = std::fs::read_to_string(farm.join("slurm.sh")).unwrap();
    let k8s = std::fs::read_to_string(farm.join("k8s-indexed-job.yaml")).unwrap();
    let aws_def: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(farm.join("aws-batch-job-definition.json")).unwrap()).unwrap();
    let aws_submit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(farm.join("aws-batch-submit.json")).unwrap()).unwrap();

    let array = slurm.lines().find_map(|l| l.strip_prefix("#SBATCH --array=")).expect("an --array line");
    let (lo, hi) = array.split_once('-').unwrap();
    let (lo, hi): (u32, u32) = (lo.parse().unwrap(), hi.parse().unwrap());
    assert!(slurm.contains("videoforge run jobs/farm/job.toml"));

    let completions: u32 = k8s.lines().find_map(|l| l.trim().strip_prefix("completions: ")).unwrap().parse().unwrap();
    let k8s_count: u32 = k8s
        .split("name: VIDEOFORGE_SHARD_COUNT")
        .nth(1)
        .and_then(|r| r.split("value: \"").nth(1))
        .and_then(|r| r.split('"').next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(completions, k8s_count, "VIDEOFORGE_SHARD_COUNT must equal completions");
    assert!(k8s.contains("completionMode: Indexed"));

    let size = aws_submit["arrayProperties"]["size"].as_u64().unwrap();
    let env_size = aws_submit["containerOverrides"]["environment"][0]["value"].as_str().unwrap();
    assert_eq!(size.to_string(), env_size, "AWS_BATCH_JOB_ARRAY_SIZE must equal the array size");
    assert_eq!(aws_def["containerProperties"]["command"][1], "run");

    let job = root().join("jobs/farm/job.toml");
    let list = |env: Vec<(String, String)>| -> Vec<String> {
        let mut c = bin();
        c.arg("run").arg(&job).arg("--dry-run").envs(env);
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()
    };
    let mut per_scheduler = Vec::new();
    let s = |k: &str, v: String| (k.to_string(), v);
    per_scheduler.push(
        (lo..=hi)
            .flat_map(|id| {
                list(vec![
                    s("SLURM_ARRAY_TASK_ID", id.to_string()),
                    s("SLURM_ARRAY_TASK_MIN", lo.to_string()),
                    s("SLURM_ARRAY_TASK_COUNT", (hi - lo + 1).to_string()),
                ])
            })
            .collect::<Vec<_>>(),
    );
    per_scheduler.push(
        (0..completions)
            .flat_map(|i| {
                list(vec![s("JOB_COMPLETION_INDEX", i.to_string()), s("VIDEOFORGE_SHARD_COUNT", k8s_count.to_string())])
            })
            .collect(),
    );
    per_scheduler.push(
        (0..size)
            .flat_map(|i| {
                list(vec![
                    s("AWS_BATCH_JOB_ARRAY_INDEX", i.to_string()),
                    s("AWS_BATCH_JOB_ARRAY_SIZE", size.to_string()),
                ])
            })
            .collect(),
    );
    let all = list(vec![]);
    assert!(!all.is_empty());
    for mut files in per_scheduler {
        files.sort();
        let mut want = all.clone();
        want.sort();
        assert_eq!(files, want, "every file exactly once across the array");
    }
}

/// `[farm] shards` in the job file is the planned count: a Kubernetes index alone selects the same files as
/// `--shard`, and a resubmitted single Slurm task maps onto that count, says so and steals.
#[test]
fn the_job_files_shard_count_plans_the_split() {
    let farm = Farm::new(6, 32, 24, 2);
    let job = std::fs::read_to_string(farm.path("job.toml")).unwrap() + "\n[farm]\nshards = 3\n";
    std::fs::write(farm.path("job.toml"), job).unwrap();
    for i in 0..3u32 {
        let flag = dry_run_list(&farm, &["--shard", &format!("{}/3", i + 1)], &[]);
        let k8s = dry_run_list(&farm, &[], &[("JOB_COMPLETION_INDEX", &i.to_string())]);
        assert_eq!(flag, k8s, "the job file's count splits like --shard {}/3", i + 1);
    }
    let o = bin()
        .arg("run")
        .arg(farm.path("job.toml"))
        .arg("--dry-run")
        .envs([("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_MIN", "2"), ("SLURM_ARRAY_TASK_COUNT", "1")])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("count 3 from the job file"), "{t}");
    assert!(t.contains("stealing on"), "{t}");

    let bad = std::fs::read_to_string(farm.path("job.toml")).unwrap().replace("shards = 3", "shards = 0");
    std::fs::write(farm.path("job.toml"), bad).unwrap();
    let o = farm.run(&[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(3), "{t}");
    assert!(t.contains("farm.shards") && t.contains("job.toml:"), "the problem names the key and its line: {t}");
}

/// A worker whose device fails stops; its file goes back to the queue and the other workers finish the job.
#[test]
fn a_failing_device_stops_only_its_own_worker() {
    let farm = Farm::new(4, 32, 24, 2);
    let job = std::fs::read_to_string(farm.path("job.toml"))
        .unwrap()
        .replace("gpus = \"cpu\"\n", "gpus = \"cpu\"\nfiles_at_once = 2\n");
    std::fs::write(farm.path("job.toml"), job).unwrap();
    let o = bin().arg("run").arg(farm.path("job.toml")).env("VIDEOFORGE_FAIL_SLOT", "0/1").output().unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("slot 1 stopped: injected device failure"), "{t}");
    assert!(t.contains("4 done, 0 skipped, 0 failed"), "{t}");
    assert_eq!(farm.outputs().len(), 4);
}

/// Ctrl+C (SIGINT) mid-file: the run stops, publishes nothing partial, removes its temporary file, writes the
/// summary and exits with the retry code; a rerun finishes the job.
#[test]
fn sigint_mid_file_publishes_nothing_and_exits_with_the_retry_code() {
    let farm = Farm::new(1, 96, 64, 60);
    let child = bin().arg("run").arg(farm.path("job.toml")).stderr(std::process::Stdio::piped()).spawn().unwrap();
    wait_until_writing(&farm);
    let st = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(75), "{t}");
    assert!(t.contains("interrupted"), "{t}");
    let left: Vec<String> = std::fs::read_dir(farm.path("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "videoforge-run.json" && n != "videoforge-run.html")
        .collect();
    assert!(left.is_empty(), "nothing but the summary and its page is left: {left:?}");

    let o = farm.run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(frames_in(&farm.path("out/clip0.x2.mp4")), 60);
}
