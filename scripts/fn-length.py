#!/usr/bin/env python3
"""Function and file lengths in src/ (issue 9, "Done when": no function over 100 lines).

A function's length is counted from the line of its `fn` keyword to the line of its closing
brace. Test code is skipped: files of a module declared `#[cfg(test)] mod x;` (and their
children), and any item or statement under `#[cfg(test)]`. Comments and string literals are
ignored (the lexer of scripts/module-cycles.py). Prints a census (the longest functions and
every file over 500 lines) and exits 1 if a function is over the limit and not listed.

usage: scripts/fn-length.py [--known FILE] [--max LINES] [--top N]
  --known FILE  functions allowed over the limit, one `path:name` a line (`#` starts a
                comment); a listed function that is no longer over the limit, or gone,
                fails too, so the list only shrinks. CI (scripts/test.sh, stage `cycles`)
                runs with scripts/fn-length.known.
  --max LINES   the limit (default 100)
  --top N       how many of the longest functions to print (default 12)
"""
import importlib.util
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
SRC = os.path.join(ROOT, "src")
FILE_LINES = 500

_spec = importlib.util.spec_from_file_location("module_cycles", os.path.join(HERE, "module-cycles.py"))
_cycles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cycles)
strip, file_module = _cycles.strip, _cycles.file_module

OPEN, CLOSE = "([{", ")]}"


def item_end(text, start):
    """Offset just past the item or statement starting at `start`: its first `;` or its
    brace block, whichever comes first outside brackets."""
    depth, i, n = 0, start, len(text)
    while i < n:
        c = text[i]
        if c == "{" and depth == 0:
            return match(text, i) + 1
        if c in OPEN:
            depth += 1
        elif c in CLOSE:
            depth -= 1
            if depth < 0:  # the end of the enclosing block: an expression, not an item
                return i
        elif c == ";" and depth == 0:
            return i + 1
        i += 1
    return n


def match(text, open_at):
    """Offset of the brace closing the one at `open_at`."""
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return len(text) - 1


def test_spans(text):
    """(start, end) offsets of code under `#[cfg(test)]`, and the names of `mod x;` among it."""
    spans, test_mods = [], []
    for m in re.finditer(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]", text):
        end = item_end(text, m.end())
        spans.append((m.start(), end))
        decl = re.match(r"\s*(?:#\s*\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text[m.end():end])
        if decl:
            test_mods.append(decl.group(1))
    return spans, test_mods


def functions(text):
    """(name, first line, last line, offset) of every function with a body."""
    line = lambda off: text.count("\n", 0, off) + 1
    for m in re.finditer(r"\bfn\s+(\w+)", text):
        depth, i, n = 0, m.end(), len(text)
        while i < n:
            c = text[i]
            if c == "{" and depth == 0:
                break
            if c in "([<":
                depth += 1
            elif c in ")]" or (c == ">" and text[i - 1] not in "-="):
                depth -= 1
            elif c == ";" and depth == 0:
                i = n  # a declaration without a body (trait method)
            i += 1
        if i >= n:
            continue
        yield m.group(1), line(m.start()), line(match(text, i)), m.start()


def census():
    files = []
    for d, _, names in os.walk(SRC):
        files += [os.path.join(d, f) for f in names if f.endswith(".rs")]
    texts = {f: strip(open(f, encoding="utf-8").read()) for f in sorted(files)}
    test_modules = set()
    spans = {}
    for f, text in texts.items():
        spans[f], mods = test_spans(text)
        test_modules |= {file_module(f) + (m,) for m in mods}
    is_test_file = lambda f: any(file_module(f)[: len(t)] == t for t in test_modules)
    fns, long_files = [], []
    for f, text in texts.items():
        rel = os.path.relpath(f, ROOT).replace(os.sep, "/")
        if is_test_file(f):
            continue
        lines = text.count("\n") + (not text.endswith("\n"))
        if lines > FILE_LINES:
            in_tests = sum(text.count("\n", s, e) for s, e in spans[f])
            long_files.append((lines, rel, lines - in_tests))
        for name, first, last, off in functions(text):
            if any(s <= off < e for s, e in spans[f]):
                continue
            fns.append((last - first + 1, f"{rel}:{name}", first))
    return sorted(fns, key=lambda x: (-x[0], x[1])), sorted(long_files, reverse=True)


def main():
    known, max_lines, top = set(), 100, 12
    args = sys.argv[1:]
    while args:
        if len(args) >= 2 and args[0] == "--known":
            with open(args[1]) as fh:
                lines = (ln.split("#", 1)[0].strip() for ln in fh)
                known = {ln for ln in lines if ln}
        elif len(args) >= 2 and args[0] == "--max":
            max_lines = int(args[1])
        elif len(args) >= 2 and args[0] == "--top":
            top = int(args[1])
        else:
            print(__doc__, file=sys.stderr)
            return 2
        args = args[2:]
    fns, long_files = census()
    print(f"longest functions in src/ (of {len(fns)}, test code skipped):")
    for n, where, first in fns[:top]:
        print(f"  {n:4} lines  {where} (line {first})")
    over = [(n, where, first) for n, where, first in fns if n > max_lines]
    new = [x for x in over if x[1] not in known]
    for n, where, first in over:
        tag = "known" if where in known else "NOT KNOWN"
        print(f"function over {max_lines} lines ({tag}): {where} (line {first}, {n} lines)")
    stale = sorted(known - {where for _, where, _ in over})
    for k in stale:
        print(f"known long function no longer over {max_lines} lines (remove it from the list): {k}")
    print(f"files in src/ over {FILE_LINES} lines (test files skipped): {len(long_files)}")
    for n, rel, code in long_files:
        print(f"  {n:4} lines  {rel} ({code} outside #[cfg(test)] code)")
    print(f"fn-length: {len(over)} function(s) over {max_lines} lines, {len(new)} not known, "
          f"{len(stale)} stale")
    return 1 if new or stale else 0


if __name__ == "__main__":
    sys.exit(main())
