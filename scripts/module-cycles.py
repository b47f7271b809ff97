#!/usr/bin/env python3
"""Module-level import cycles in src/ (issue 9 item 2, second bullet).

A module is one file (src/a.rs or src/a/mod.rs is `a`, src/a/b.rs is `a::b`) or an inline
`mod x { ... }` block. An edge M -> N means code in M names an item of N through a
`crate::`, `super::` or `self::` path (in a `use` or inline). Re-exports are followed to the
module that defines the item, and a parent's `pub use child::X` is a facade, not an edge.
Comments and string literals are ignored. Prints every strongly connected component with
more than one module, with one reference (file:line) per edge, and exits 1 if there is any.

usage: scripts/module-cycles.py [--under MODULE] [--known FILE]
  --under MODULE  only report cycles inside MODULE
  --known FILE    cycles listed in FILE (one per line, its modules as printed after
                  "cycle of N modules: "; `#` starts a comment) are reported but do not fail;
                  an entry that no longer matches a cycle fails, so the list only shrinks.
                  CI (scripts/test.sh, stage `cycles`) runs with scripts/module-cycles.known.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "src")


def strip(text):
    """Comments and string/char literal contents become spaces; newlines are kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        c, nxt = text[i], text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            while i < n and text[i] != "\n":
                out.append(" ")
                i += 1
        elif c == "/" and nxt == "*":
            depth = 0
            while i < n:
                if text.startswith("/*", i):
                    depth += 1
                    out.append("  ")
                    i += 2
                elif text.startswith("*/", i):
                    depth -= 1
                    out.append("  ")
                    i += 2
                    if depth == 0:
                        break
                else:
                    out.append("\n" if text[i] == "\n" else " ")
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_") or text[i - 1] == "b"):
            hashes = len(re.match(r"r(#*)", text[i:]).group(1))
            close = '"' + "#" * hashes
            j = text.find(close, i + 2 + hashes)
            j = n if j < 0 else j + len(close)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'" and re.match(r"'(\\[^']{1,10}|[^'\\])'", text[i:]):
            m = re.match(r"'(\\[^']{1,10}|[^'\\])'", text[i:])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def file_module(path):
    rel = os.path.relpath(path, SRC).replace(os.sep, "/")[:-3]
    parts = rel.split("/")
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)


def expand_use(tree):
    """`a::{b, c::{d as e}}` -> [("a::b", "b"), ("a::c::d", "e")]: (path, name it binds)."""
    tree = re.sub(r"\s*(::|\{|\}|,)\s*", r"\1", re.sub(r"\s+", " ", tree.strip()))
    brace = tree.find("{")
    if brace < 0:
        path, _, alias = tree.partition(" as ")
        return [(path, alias or path.split("::")[-1])]
    prefix, body = tree[:brace], tree[brace + 1:tree.rfind("}")]
    depth, start, items = 0, 0, []
    for k, ch in enumerate(body + ","):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            part = body[start:k]
            start = k + 1
            if part:
                items.extend(expand_use(prefix + part))
    return items


def parse(path, modules):
    """Yields (module, kind, path_text, alias, line) for every reference in a file."""
    text = strip(open(path, encoding="utf-8").read())
    base = file_module(path)
    # inline modules: (start offset, end offset, name)
    spans = []
    for m in re.finditer(r"\bmod\s+(\w+)\s*\{", text):
        depth, j = 0, m.end() - 1
        while j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                break
            j += 1
        spans.append((m.start(), j, m.group(1)))

    def module_at(off):
        mod = base
        for s, e, name in spans:
            if s <= off <= e:
                mod = mod + (name,)
        return mod

    for s, e, name in spans:
        modules.add(module_at(s) + (name,))
    line = lambda off: text.count("\n", 0, off) + 1
    used = []
    for m in re.finditer(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text):
        kind = "reexport" if m.group(1) else "use"
        for full, alias in expand_use(m.group(2)):
            here = module_at(m.start())
            if here + (full.split("::")[0],) in modules:
                full = "self::" + full  # a path into a child module
            if full.split("::")[0] in ("crate", "super", "self") or kind == "reexport":
                yield module_at(m.start()), kind, full, alias, line(m.start())
        used.append((m.start(), m.end()))
    for m in re.finditer(r"(?<![\w:])(\w+(?:::\w+)+)", text):
        if any(s <= m.start() < e for s, e in used):
            continue
        here, path = module_at(m.start()), m.group(1)
        if here + (path.split("::")[0],) in modules:
            path = "self::" + path  # a path into a child module
        if path.split("::")[0] in ("crate", "super", "self"):
            yield here, "path", path, None, line(m.start())


def absolute(module, path):
    parts = path.split("::")
    cur = list(module)
    if parts[0] == "crate":
        cur, parts = [], parts[1:]
    while parts and parts[0] in ("super", "self"):
        if parts[0] == "super":
            cur = cur[:-1]
        parts = parts[1:]
    return tuple(cur) + tuple(parts)


def main():
    under, known = None, set()
    args = sys.argv[1:]
    while args:
        if len(args) >= 2 and args[0] == "--under":
            under = tuple(args[1].split("::"))
        elif len(args) >= 2 and args[0] == "--known":
            with open(args[1]) as fh:
                lines = (ln.split("#", 1)[0].strip() for ln in fh)
                known = {ln for ln in lines if ln}
        else:
            print(__doc__, file=sys.stderr)
            return 2
        args = args[2:]
    files = []
    for d, _, names in os.walk(SRC):
        files += [os.path.join(d, f) for f in names if f.endswith(".rs")]
    files = sorted(f for f in files if os.path.basename(f) != "main.rs")
    modules = {file_module(f) for f in files}
    refs = []
    for f in files:
        for mod, kind, text, alias, ln in parse(f, modules):
            refs.append((mod, kind, text, alias, os.path.relpath(f, ROOT), ln))

    def split(path):
        """Longest module prefix of an absolute path, and the rest."""
        for k in range(len(path), -1, -1):
            if path[:k] in modules:
                return path[:k], path[k:]
        return (), path

    # re-exports: module -> {name: absolute target path}
    exports = {}
    for mod, kind, text, alias, _, _ in refs:
        if kind == "reexport":
            target = text
            if target.split("::")[0] not in ("crate", "super", "self"):
                target = "self::" + target
            exports.setdefault(mod, {})[alias] = absolute(mod, target)

    def resolve(path, hops=0):
        mod, rest = split(path)
        if rest and hops < 8 and rest[0] in exports.get(mod, {}):
            return resolve(exports[mod][rest[0]] + rest[1:], hops + 1)
        return mod

    edges = {}
    for mod, kind, text, alias, f, ln in refs:
        target = resolve(absolute(mod, text))
        if target == mod or not target:
            continue
        if kind == "reexport" and target[: len(mod)] == mod:
            continue  # a facade over its own children
        edges.setdefault(mod, {}).setdefault(target, f"{f}:{ln}")

    # Tarjan's strongly connected components
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
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
            sccs.append(comp)

    for v in sorted(modules):
        if v not in index:
            visit(v)
    name = lambda m: "::".join(m) or "crate"
    cycles = [sorted(c) for c in sccs if len(c) > 1]
    if under:
        cycles = [c for c in cycles if all(m[: len(under)] == under for m in c)]
    seen, new = set(), 0
    for comp in sorted(cycles):
        members = set(comp)
        listed = ", ".join(name(m) for m in comp)
        seen.add(listed)
        new += listed not in known
        tag = " (known)" if listed in known else ""
        print(f"cycle of {len(comp)} modules{tag}: {listed}")
        for m in comp:
            for t, where in sorted(edges.get(m, {}).items()):
                if t in members:
                    print(f"  {name(m)} -> {name(t)}  ({where})")
    stale = sorted(known - seen)
    for k in stale:
        print(f"known cycle no longer present (remove it from the list): {k}")
    print(f"module-cycles: {len(cycles)} cycle(s) among {len(modules)} modules, {new} not known")
    return 1 if new or stale else 0


if __name__ == "__main__":
    sys.exit(main())
