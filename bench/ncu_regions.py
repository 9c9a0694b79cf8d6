#!/usr/bin/env python3
"""Where a kernel's time goes, by code region, from Nsight Compute's source page.

Usage: ncu -i REPORT.ncu-rep --page source --csv --print-source sass > SRC.csv
       python3 bench/ncu_regions.py SRC.csv

Splits the SASS at the instructions that mark our kernels' phases (async global->shared copies, the first tensor
instruction, the wait for the tensor instructions, barriers) and prints, per region, the warp-stall samples and the
instructions executed, then the sixteen instructions with the most samples. This is how the first conv_wgmma was
found to spend 40 % of its instructions on patch-load index arithmetic (bench/RESULTS.md, GPU session 9).
"""
import csv
import sys


def load(path):
    rows = list(csv.reader(open(path, encoding="utf-8")))
    # The first row names the kernel; the header follows.
    head = next(i for i, r in enumerate(rows) if r and r[0] == "Address")
    hdr, data = rows[head], [r for r in rows[head + 1:] if len(r) > 2]
    col = {name: hdr.index(name) for name in ("Source", "Warp Stall Sampling (All Samples)", "Instructions Executed")}

    def num(r, name):
        v = r[col[name]].replace(",", "")
        return int(v) if v.isdigit() else 0

    return [(r[col["Source"]].strip(), num(r, "Warp Stall Sampling (All Samples)"), num(r, "Instructions Executed"))
            for r in data]


def regions(ins):
    """Region boundaries: the first copy, the first tensor instruction, the wait for the tensor instructions."""
    names = [s for s, _, _ in ins]
    find = lambda pred: next((i for i, s in enumerate(names) if pred(s)), None)
    marks = [("setup", 0)]
    for label, pred in [
        ("global->shared copies", lambda s: "LDGSTS" in s),
        ("tensor instructions", lambda s: "HGMMA" in s or "HMMA" in s),
        ("epilogue (after the tensor wait)", lambda s: "WARPGROUP.DEPBAR" in s),
    ]:
        i = find(pred)
        if i is not None and i > marks[-1][1]:
            marks.append((label, i))
    return marks + [("end", len(ins))]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    ins = load(sys.argv[1])
    total_s = sum(s for _, s, _ in ins) or 1
    total_e = sum(e for _, _, e in ins) or 1
    marks = regions(ins)
    print(f"{'region':<36} {'stall samples':>14} {'instructions':>14}")
    for (label, a), (_, b) in zip(marks, marks[1:]):
        s = sum(x for _, x, _ in ins[a:b])
        e = sum(x for _, _, x in ins[a:b])
        print(f"{label:<36} {100 * s / total_s:13.1f}% {100 * e / total_e:13.1f}%")
    print(f"{'total':<36} {total_s:14d} {total_e:14d}")
    print("\nmost sampled instructions:")
    for i, (src, s, e) in sorted(enumerate(ins), key=lambda t: -t[1][1])[:16]:
        print(f"  {100 * s / total_s:5.1f}%  #{i:<5} {src[:90]}")


if __name__ == "__main__":
    main()
