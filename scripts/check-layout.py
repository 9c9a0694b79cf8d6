#!/usr/bin/env python3
"""Checks the code layout the architecture asks for, on every Rust file under src/ and backends/*/src:

- the module import graph has no cycle: an edge runs from a file's module to each module it names through
  `crate::`, `super::` or `self::` paths (items re-exported by a parent `mod.rs` are followed to the module that
  defines them, so `use super::VideoError` in a child is an edge to `video::error`, not to `video`);
- no file is longer than 600 lines (generated code, marked `// @generated`, is exempt);
- no function returns `Result<_, String>`;
- environment variables are read only at the command-line edge (src/main.rs, src/cli/).

Prints every violation and exits 1 if there is one.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 600
ENV_ALLOWED = ("src/main.rs", "src/cli/")


def crate_roots():
    roots = [("videoforge", os.path.join(ROOT, "src"), "lib.rs")]
    bdir = os.path.join(ROOT, "backends")
    for name in sorted(os.listdir(bdir)):
        src = os.path.join(bdir, name, "src")
        if os.path.isfile(os.path.join(src, "lib.rs")):
            roots.append((name, src, "lib.rs"))
    return roots


def module_of(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def strip_comments(text):
    """Code without comments and without the inline test module (its `super` is the file's own module)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.split(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)[0]
    return "\n".join(re.sub(r"//.*", "", line) for line in text.split("\n"))


def use_trees(text):
    """Yields the expanded paths of every `use` declaration and every inline `crate::a::b` path."""
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        yield from expand(m.group(1).replace("\n", " ").strip())
    for m in re.finditer(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", text):
        yield m.group(1)


def expand(tree):
    tree = tree.strip()
    if "{" not in tree:
        yield re.split(r"\s+as\s+", tree)[0].strip()
        return
    i = tree.index("{")
    prefix, inner = tree[:i].rstrip(":").strip(), tree[i + 1 : tree.rindex("}")]
    depth, cur, parts = 0, "", []
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for p in parts:
        p = p.strip()
        if not p:
            continue
        for sub in expand(p):
            yield prefix if sub == "self" else f"{prefix}::{sub}"


def main():
    problems = []
    for crate, src, _ in crate_roots():
        files = {}
        for d, _, names in os.walk(src):
            for n in names:
                if n.endswith(".rs"):
                    p = os.path.join(d, n)
                    files[module_of(src, p)] = p
        texts = {m: open(p, encoding="utf-8").read() for m, p in files.items()}
        # Re-exports: module -> {name: path it re-exports}
        reexports = {}
        for m, t in texts.items():
            for u in re.finditer(r"\bpub(?:\(crate\))?\s+use\s+([^;]+);", strip_comments(t)):
                for path in expand(u.group(1).replace("\n", " ")):
                    name = path.split("::")[-1]
                    reexports.setdefault(m, {})[name] = path

        def absolute(mod, path):
            parts = path.split("::")
            if parts[0] == "crate":
                base, rest = (), parts[1:]
            elif parts[0] == "self":
                base, rest = mod, parts[1:]
            elif parts[0] == "super":
                base, rest = mod, parts
                while rest and rest[0] == "super":
                    base, rest = base[:-1], rest[1:]
            else:
                # A child module named directly (`use child::X` inside mod.rs).
                if mod + (parts[0],) in files:
                    base, rest = mod, parts
                else:
                    return None
            return base, rest

        def resolve(mod, path, seen=0):
            r = absolute(mod, path)
            if r is None or seen > 10:
                return None
            base, rest = r
            cur = base
            for i, seg in enumerate(rest):
                if cur + (seg,) in files:
                    cur = cur + (seg,)
                    continue
                # `seg` is an item of `cur`: follow a re-export to its defining module.
                target = reexports.get(cur, {}).get(seg)
                if target is not None and cur != mod:
                    again = resolve(cur, target, seen + 1)
                    return again if again is not None else cur
                return cur
            return cur

        edges, why = {m: set() for m in files}, {}
        for m, t in texts.items():
            for path in use_trees(strip_comments(t)):
                target = resolve(m, path)
                if target is not None and target != m and target in files:
                    edges[m].add(target)
                    why.setdefault((m, target), path)
        name = lambda c: "::".join(c) or crate  # noqa: E731
        for cycle in cycles(edges):
            members = set(cycle)
            inner = [f"{name(a)} -> {name(b)} ({why[(a, b)]})" for a in cycle for b in sorted(edges[a]) if b in members]
            problems.append(f"{crate}: import cycle among {', '.join(map(name, cycle))}: " + "; ".join(inner))
        for m, p in files.items():
            rel = os.path.relpath(p, ROOT)
            text = texts[m]
            lines = text.count("\n")
            if lines > MAX_LINES and "@generated" not in text[:500]:
                problems.append(f"{rel}: {lines} lines (at most {MAX_LINES})")
            for n, line in enumerate(text.split("\n"), 1):
                code = re.sub(r"//.*", "", line)
                if re.search(r"Result<[^>]*,\s*String>", code):
                    problems.append(f"{rel}:{n}: returns Result<_, String>")
                if re.search(r"\benv::var(_os)?\s*\(|\benv::vars\s*\(", code) and not rel.startswith(ENV_ALLOWED):
                    if "/tests/" not in rel and not rel.startswith("tests/"):
                        problems.append(f"{rel}:{n}: reads an environment variable outside the command-line edge")
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"layout ok: {sum(1 for _ in crate_roots())} crates, no import cycle, files <= {MAX_LINES} lines")


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan), each as one cycle's members."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    main()
