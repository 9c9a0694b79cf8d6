#!/usr/bin/env python3
"""Checks for tests/slurm/run.sh: what the tasks' logs and the outputs say. Standard library only.

  check.py outputs OUT CLIPS [--allow-partial]   every clip has one valid output (frames, size) with a complete
                                                 report; nothing is left behind (claims, temporaries, markers)
  check.py runs GLOB...                          per input: how often a run reported it done/skipped/failed
                                                 in its table, and how often a pipeline finished it
                                                 ("processed", also from runs killed later), over all logs
  check.py summaries OUT                         done/skipped/failed summed over videoforge-run*.json (JSON)
  check.py complete OUT                          the inputs whose output has a complete report now (JSON list)
"""
import glob
import json
import os
import re
import subprocess
import sys


def ffprobe(path, *args):
    out = subprocess.run(["ffprobe", "-v", "error", *args, path], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"ffprobe {path}: {out.stderr.strip()}")
    return out.stdout.strip()


def video(path):
    """(frames, width, height) of the first video stream, frames counted by decoding."""
    line = ffprobe(path, "-count_frames", "-select_streams", "v:0", "-show_entries",
                   "stream=nb_read_frames,width,height", "-of", "csv=p=0")
    w, h, n = line.split(",")[:3]
    return int(n), int(w), int(h)


def outputs(out, clips, allow_partial):
    problems = []
    inputs = sorted(glob.glob(os.path.join(clips, "*.mp4")))
    for clip in inputs:
        stem = os.path.splitext(os.path.basename(clip))[0]
        dst = os.path.join(out, f"{stem}.x2.mp4")
        if not os.path.isfile(dst):
            problems.append(f"{dst}: missing")
            continue
        try:
            with open(dst + ".report.json") as f:
                report = json.load(f)
        except (OSError, ValueError) as e:
            problems.append(f"{dst}: no report ({e})")
            continue
        if report.get("status") != "complete":
            problems.append(f"{dst}: report status {report.get('status')!r}")
        n_in, w_in, h_in = video(clip)
        n_out, w_out, h_out = video(dst)
        if (n_out, w_out, h_out) != (n_in, 2 * w_in, 2 * h_in):
            problems.append(f"{dst}: {n_out} frames {w_out}x{h_out}, expected {n_in} frames {2 * w_in}x{2 * h_in}")
    expected = {f"{os.path.splitext(os.path.basename(c))[0]}.x2.mp4" for c in inputs}
    for name in sorted(os.listdir(out)):
        if name.endswith(".mp4") and name not in expected:
            problems.append(f"{name}: an output nobody asked for")
        left = re.search(r"\.claim|\.tmp|takeover|\.released", name) or (".partial" in name and not allow_partial)
        if left:
            problems.append(f"{name}: left behind")
    for p in problems:
        print(f"  output problem: {p}", file=sys.stderr)
    print(f"  outputs: {len(inputs) - len([p for p in problems if 'missing' in p])}/{len(inputs)} present, "
          f"{len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


# A run's table on stderr: `done      0.2s  clips/c0.mp4 -> out/c0.x2.mp4`, `skipped ...`, `FAILED ...`.
ROW = re.compile(r"^(done|skipped|FAILED|interrupted)\s+[\d.]+s\s+(\S+)")
TOTAL = re.compile(r"^(\d+) done, (\d+) skipped, (\d+) failed")
# A file whose pipeline finished (its output is published), logged even by a run that is killed later:
# ` INFO clips/c0.mp4: 10 frames at 5.1 fps (...)`.
PROCESSED = re.compile(r"\bINFO (\S+): \d+ frames at ")


def runs(patterns):
    per_input = {}
    totals = {"done": 0, "skipped": 0, "failed": 0, "tables": 0}
    for log in sorted({p for pattern in patterns for p in glob.glob(pattern)}):
        with open(log, errors="replace") as f:
            for line in f:
                m = ROW.match(line)
                if m:
                    status = {"FAILED": "failed"}.get(m.group(1), m.group(1))
                    per_input.setdefault(m.group(2), {}).setdefault(status, 0)
                    per_input[m.group(2)][status] += 1
                m = PROCESSED.search(line)
                if m:
                    per_input.setdefault(m.group(1), {}).setdefault("processed", 0)
                    per_input[m.group(1)]["processed"] += 1
                m = TOTAL.match(line)
                if m:
                    totals["tables"] += 1
                    for k, v in zip(("done", "skipped", "failed"), m.groups()):
                        totals[k] += int(v)
    json.dump({"totals": totals, "inputs": per_input}, sys.stdout)
    print()
    return 0


def summaries(out):
    totals = {"done": 0, "skipped": 0, "failed": 0, "files": 0}
    for path in sorted(glob.glob(os.path.join(out, "videoforge-run*.json"))):
        with open(path) as f:
            s = json.load(f)
        for k in ("done", "skipped", "failed"):
            totals[k] += s.get(k, 0)
        totals["files"] += 1
    json.dump(totals, sys.stdout)
    print()
    return 0


def complete(out):
    done = []
    for path in sorted(glob.glob(os.path.join(out, "*.report.json"))):
        try:
            with open(path) as f:
                r = json.load(f)
        except (OSError, ValueError):
            continue
        if r.get("status") == "complete":
            done.append(r.get("input"))
    json.dump(done, sys.stdout)
    print()
    return 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "outputs":
        return outputs(argv[1], argv[2], "--allow-partial" in argv)
    if len(argv) >= 2 and argv[0] == "runs":
        return runs(argv[1:])
    if len(argv) == 2 and argv[0] == "summaries":
        return summaries(argv[1])
    if len(argv) == 2 and argv[0] == "complete":
        return complete(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
