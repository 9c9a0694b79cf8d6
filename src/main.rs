//! The `videoforge` command line: a thin clap front end over the library. `cli/` holds its parts; this file
//! parses, sets up logging and dispatches.

mod cli;

use anyhow::Context;
use clap::Parser;
use cli::args::{Cli, Command, LogArgs, LogFormat};
use cli::Output;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use videoforge::error::EngineError;
use videoforge::exit_codes;
use videoforge::manifest;
use videoforge::runner::{self, RunOptions, Shard};

/// Counts host allocations for `--audit` (a thin wrapper over the system allocator).
#[global_allocator]
static ALLOC: videoforge::audit::CountingAlloc = videoforge::audit::CountingAlloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // A closed stderr leaves nothing to report to.
            e.print().ok();
            return ExitCode::from(if e.use_stderr() { exit_codes::USAGE as u8 } else { 0 });
        }
    };
    init_logging(&cli.log);
    let json = cli.log.log_format == LogFormat::Json;
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            let code = err.downcast_ref::<EngineError>().map(EngineError::exit_code).unwrap_or(exit_codes::BAD_JOB);
            if json {
                let line = serde_json::json!({ "error": one_line(&err), "exit_code": code });
                eprintln!("{line}");
            } else {
                eprintln!("error: {}", one_line(&err));
            }
            code
        }
    };
    ExitCode::from(code as u8)
}

/// An error and its causes on one line, each said once: the engine's errors already quote their source (`"{path}:
/// {source}"`), and appending the chain again would print `Permission denied (os error 13): Permission denied (os
/// error 13)`.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

fn init_logging(log: &LogArgs) {
    let level = if log.trace {
        "trace"
    } else if log.debug {
        "debug"
    } else if log.quiet {
        "error"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIDEOFORGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("videoforge={level},ffmpeg={level},warn")));
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if log.log_format == LogFormat::Json {
        b.json().init();
    } else {
        b.without_time().with_target(false).init();
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let out = Output { json: cli.log.log_format == LogFormat::Json, quiet: cli.log.quiet };
    let env = cli::env::environment();
    if let Some(list) = cli::env::cuda_libraries() {
        match cli::env::preload_cuda(&list.path) {
            Ok(n) => tracing::debug!("{n} CUDA libraries preloaded from {}", list.path.display()),
            Err(e) => tracing::warn!("a CUDA library did not load, so the CUDA provider may not start: {e}"),
        }
    }
    match cli.command {
        Some(Command::Run(a)) => {
            let spec = runner::load_job(&a.job)?;
            let sel = resolve_shard(a.shard.as_deref(), a.shard_count, spec.manifest.farm.shards)?;
            tracing::info!("{}", sel.describe());
            let opts = RunOptions {
                shard: sel.shard().map(|(index, count)| Shard { index, count }),
                steal: !a.no_steal && (a.steal || sel.steal),
                claims: cli::env::claims(),
                shard_source: Some(sel),
                force: a.force,
                dry_run: a.dry_run,
                audit: a.audit,
                progress: out.progress(),
                env,
            };
            let summary = runner::run_job(&spec, &opts)?;
            if a.dry_run {
                out.planned(&summary.planned)?;
                return Ok(exit_codes::SUCCESS);
            }
            out.summary(&summary)?;
            Ok(summary.exit_code())
        }
        Some(Command::Validate { jobs }) => validate(&jobs, &out),
        Some(Command::Plan { job, json, shards }) => {
            let spec = runner::load_job(&job)?;
            let planned = runner::plan_job(&spec, &env)?;
            let mut stdout = std::io::stdout().lock();
            if let Some(n) = shards {
                if n == 0 {
                    anyhow::bail!("--shards must be at least 1");
                }
                // Which of these tasks this process would run, and why (the scheduler's variables, if any).
                if let Ok(sel) = resolve_shard(None, Some(n), None) {
                    eprintln!("this task: {}", sel.describe());
                }
                let tasks = runner::shard_tasks(&planned.plan, n);
                writeln!(stdout, "{}", serde_json::to_string_pretty(&tasks)?)?;
            } else if json {
                writeln!(stdout, "{}", serde_json::to_string_pretty(&planned.plan)?)?;
            } else {
                write!(stdout, "{}", runner::describe_plan(&planned))?;
            }
            Ok(exit_codes::SUCCESS)
        }
        Some(Command::Bench(b)) => bench(b, &env),
        Some(Command::Report { dir }) => {
            let path = runner::html::write_report(&dir)?;
            out.result("report", &path, &format!("{}\n", path.display()))?;
            Ok(exit_codes::SUCCESS)
        }
        Some(Command::Schema) => {
            print!("{}", manifest::json_schema_text());
            Ok(exit_codes::SUCCESS)
        }
        Some(Command::Doctor { json }) => {
            let report = cli::doctor::doctor(&env);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
            if report.can_run() {
                Ok(exit_codes::SUCCESS)
            } else {
                eprintln!("error: the ONNX Runtime plugin or its library did not load: nothing can run (see above)");
                Ok(exit_codes::ENVIRONMENT)
            }
        }
        None => cli::single_file::single_file(cli.single, &out, env),
    }
}

fn bench(b: cli::args::BenchArgs, env: &videoforge::runner::Environment) -> anyhow::Result<i32> {
    use videoforge::backend::{Device, ExecutionProvider, Precision};
    let (w, h) = b
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?)))
        .with_context(|| format!("--size {}: expected WxH, e.g. 1920x1080", b.size))?;
    let device = match b.device.as_str() {
        "cpu" => Device::Cpu,
        n => Device::Cuda(n.parse().with_context(|| format!("-d {n}: a GPU index or cpu"))?),
    };
    let precision = match b.precision.as_str() {
        "f16" => Precision::F16,
        "f32" => Precision::F32,
        "auto" => Precision::Auto,
        p => anyhow::bail!("-p {p}: expected f16, f32 or auto"),
    };
    let ep = match b.ep.as_deref() {
        None => None,
        Some("cpu") => Some(ExecutionProvider::Cpu),
        Some("cuda") => Some(ExecutionProvider::Cuda),
        Some("tensorrt") => Some(ExecutionProvider::Tensorrt),
        Some(e) => anyhow::bail!("--ep {e}: expected cpu, cuda or tensorrt"),
    };
    if b.synthetic {
        let (width, height) = (u32::try_from(w)?, u32::try_from(h)?);
        let r = cli::bench::stress_test_synthetic(
            &cli::bench::SyntheticBench {
                model: b.model,
                device,
                precision,
                width,
                height,
                frames: b.frames.max(1) as u64,
                backend: b.backend,
            },
            env,
        )?;
        println!("{}", serde_json::to_string(&r)?);
        return Ok(if r.passed { exit_codes::SUCCESS } else { exit_codes::SOME_FILES_FAILED });
    }
    let bench = cli::bench::InferenceBench {
        model: b.model,
        width: w,
        height: h,
        frames: b.frames.max(1),
        device,
        precision,
        execution_provider: ep,
        tile: b.tile,
        backend: b.backend,
    };
    match (b.device_io, device) {
        (true, Device::Cuda(i)) => println!("{}", serde_json::to_string(&cli::bench::device(&bench, i, env)?)?),
        (true, Device::Cpu) => anyhow::bail!("--device-io needs a GPU (-d N)"),
        (false, _) => println!("{}", serde_json::to_string(&cli::bench::inference(&bench, env)?)?),
    }
    Ok(exit_codes::SUCCESS)
}

fn validate(jobs: &[PathBuf], out: &Output) -> anyhow::Result<i32> {
    let mut code = exit_codes::SUCCESS;
    for job in jobs {
        let problems: Vec<String> = match runner::load_job(job) {
            Ok(_) => Vec::new(),
            Err(EngineError::Invalid(problems)) => {
                problems.iter().map(|p| videoforge::plan::format_problems(std::slice::from_ref(p))).collect()
            }
            Err(e) => vec![e.to_string()],
        };
        if problems.is_empty() {
            out.result("valid", &job, &format!("{}: ok\n", job.display()))?;
            continue;
        }
        code = exit_codes::BAD_JOB;
        for p in &problems {
            if out.json {
                eprintln!("{}", serde_json::json!({ "problem": p, "job": job }));
            } else {
                eprintln!("{p}");
            }
        }
    }
    Ok(code)
}

/// The shard this process runs: `--shard`, else the scheduler's variables over the planned count (`--shard-count`,
/// else the job file's `[farm] shards`).
fn resolve_shard(
    flag: Option<&str>,
    count: Option<u32>,
    job_file_count: Option<u32>,
) -> anyhow::Result<runner::scheduler::Selection> {
    use runner::scheduler::{resolve, CountFrom, Planned, Request};
    let flag = flag.map(|s| Shard::parse(s).map_err(|e| anyhow::anyhow!("--shard: {e}"))).transpose()?;
    let planned = count
        .map(|count| Planned { count, from: CountFrom::ShardCount })
        .or(job_file_count.map(|count| Planned { count, from: CountFrom::JobFile }));
    let env = cli::env::scheduler_vars();
    Ok(resolve(&Request { flag: flag.map(|s| (s.index, s.count)), planned, env: &env })?)
}
