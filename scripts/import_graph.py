#!/usr/bin/env python3
"""The workspace's import graph, file by file, checked for circles and for imports that go up a layer.

An edge A -> B means: file A names an item (or module) that is defined in file B, through a `use`
declaration or a qualified path (`crate::store::Store`, `super::Summary`, `sqlite::open`). Paths
are followed through re-exports (`pub use`) to the file that defines the item, so a `mod.rs` that
re-exports its children is not a circle by itself. Test-only code (`#[cfg(test)] mod ... { }`) and
other crates are left out: Cargo already forbids circles between crates.

Usage:
    scripts/import_graph.py            check: exit 1 on a circle or an upward import
    scripts/import_graph.py --edges    print every edge (file -> file)
    scripts/import_graph.py --layers   print each crate's layers and their files
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Each crate's layers, lowest first: a file may import from its own layer and the layers below it,
# never from a layer above. A layer is a list of top-level modules (a file `x.rs` or folder `x/`).
LAYERS = {
    "normalizer": [
        ["violation", "case_type", "case_number", "standards"],
        ["xml_tree", "schema", "catalogue", "officers", "rules", "plans", "supplement", "publicity"],
        ["mapping"],
        ["pipeline"],
        ["mapping_tests", "suggest"],
    ],
    "adapters": [
        ["common"],
        ["http"],
        ["sources", "sinks"],
    ],
    "gateway": [
        ["allocator", "telemetry", "shutdown", "crypto"],
        ["config"],
        ["store", "attachments"],
        ["prepare"],
        ["commit"],
        ["runtime"],
        ["lifecycle", "intake", "outbox", "oversight", "archive"],
        ["server"],
        ["cli"],
    ],
}

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
ITEM_DEF = re.compile(
    r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+|const\s+|unsafe\s+|extern\s+\"C\"\s+)*"
    r"(?:fn|struct|enum|trait|type|const|static|union|macro_rules!)\s+(" + IDENT + ")",
    re.M,
)
MOD_DECL = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", re.M)
USE_DECL = re.compile(r"^\s*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.M)
QUALIFIED = re.compile(r"(?<![A-Za-z0-9_:])((?:crate|super|self|" + IDENT + r")(?:::(?:" + IDENT + r"|\{))+)")


def strip_comments_and_tests(text):
    """Source without comments, string literals' contents and `#[cfg(test)]` modules."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            out.append('""')
            i = n if j < 0 else j + len(end)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or c == "'" and text.startswith("'\\u{", i):
            j = text.find("'", i + 2)
            out.append("' '")
            i = j + 1
        else:
            out.append(c)
            i += 1
    code = "".join(out)
    # Drop test modules: `#[cfg(test)]` followed by `mod name {`, up to the matching brace.
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+" + IDENT + r"\s*\{", code)
        if not m:
            break
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        code = code[:m.start()] + code[j:]
    return code


def expand_use_tree(tree):
    """`a::{b, c::{d, *}}` -> [['a','b'], ['a','c','d'], ['a','c','*']] (aliases are marked by `parse_use`)."""
    tree = re.sub(r"\s+", "", tree)
    results = []

    def walk(prefix, t):
        parts = split_top(t)
        for part in parts:
            if not part:
                continue
            if "{" in part:
                head, _, rest = part.partition("{")
                body = rest[:-1]
                walk(prefix + [s for s in head.split("::") if s], body)
            else:
                segs = [s for s in part.split("::") if s]
                results.append(prefix + segs)

    walk([], tree)
    return results


def split_top(t):
    parts, depth, cur = [], 0, []
    for ch in t:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_use(tree_text):
    """Use tree -> list of (path segments, name bound). Handles `as` before whitespace is removed."""
    renamed = re.sub(r"\s+as\s+(" + IDENT + ")", r"@\1", tree_text)
    out = []
    for segs in expand_use_tree(renamed):
        if not segs:
            continue
        last = segs[-1]
        bound = last
        if "@" in last:
            name, bound = last.split("@", 1)
            segs = segs[:-1] + [name]
        if segs[-1] == "self":
            segs = segs[:-1]
            bound = segs[-1] if segs else "self"
        out.append((segs, bound))
    return out


class Module:
    def __init__(self, crate, path, file, parent):
        self.crate, self.path, self.file, self.parent = crate, path, file, parent
        self.children = {}
        self.items = set()
        self.uses = {}  # bound name -> path segments
        self.globs = []  # segments of `use x::*`
        self.code = ""


def load_crate(crate):
    src = os.path.join(ROOT, crate, "src")
    modules = {}

    def load(path, file, parent):
        m = Module(crate, path, file, parent)
        modules[tuple(path)] = m
        with open(file, encoding="utf-8") as f:
            m.code = strip_comments_and_tests(f.read())
        m.items = set(ITEM_DEF.findall(m.code))
        for um in USE_DECL.finditer(m.code):
            for segs, bound in parse_use(um.group(2)):
                if segs[-1] == "*":
                    m.globs.append(segs[:-1])
                else:
                    m.uses[bound] = segs
        here = os.path.dirname(file)
        base = os.path.basename(file)
        if base not in ("lib.rs", "main.rs", "mod.rs"):
            here = os.path.join(here, base[:-3])
        for name in MOD_DECL.findall(m.code):
            for cand in (os.path.join(here, name + ".rs"), os.path.join(here, name, "mod.rs")):
                if os.path.exists(cand):
                    m.children[name] = load(path + [name], cand, m)
                    break
        return m

    root = load([], os.path.join(src, "lib.rs"), None)
    return root, modules


def resolve(mod, segs, seen=None):
    """The file that defines the item named by `segs` as seen from module `mod` (None: outside the crate)."""
    seen = seen or set()
    key = (id(mod), tuple(segs))
    if key in seen:
        return mod.file
    seen.add(key)
    if not segs:
        return mod.file
    head, rest = segs[0], segs[1:]
    root = mod
    while root.parent:
        root = root.parent
    if head == "crate":
        return resolve(root, rest, seen) if rest else root.file
    if head == "super":
        return resolve(mod.parent or mod, rest, seen) if rest else (mod.parent or mod).file
    if head == "self":
        return resolve(mod, rest, seen) if rest else mod.file
    return lookup(mod, head, rest, seen)


def lookup(mod, name, rest, seen):
    """Name `name` in module `mod`, then the remaining segments."""
    if name in mod.children:
        child = mod.children[name]
        return resolve_in(child, rest, seen)
    if name in mod.uses:
        target = mod.uses[name]
        if target and target[0] not in ("crate", "super", "self") and target[0] not in mod.children and not local_name(mod, target[0]):
            return None  # another crate or std
        return resolve(mod, target + rest, seen)
    if name in mod.items:
        return mod.file
    for g in mod.globs:
        if g and g[0] not in ("crate", "super", "self") and g[0] not in mod.children:
            continue
        f = resolve(mod, g + [name] + rest, seen)
        if f:
            return f
    return None


def local_name(mod, name):
    return name in mod.children or name in mod.items


def resolve_in(mod, rest, seen):
    if not rest:
        return mod.file
    found = lookup(mod, rest[0], rest[1:], seen)
    return found or mod.file


def edges_of(modules):
    edges = {}
    for m in modules.values():
        targets = edges.setdefault(m.file, set())
        paths = [segs for segs in m.uses.values()] + list(m.globs)
        for q in QUALIFIED.findall(m.code):
            q = q.rstrip(":{")
            segs = [s for s in q.split("::") if s and s != "{"]
            if len(segs) > 1:
                paths.append(segs)
        for segs in paths:
            if not segs:
                continue
            head = segs[0]
            if head not in ("crate", "super", "self") and head not in m.children:
                continue
            f = resolve(m, segs)
            if f and f != m.file:
                targets.add(f)
    return edges


def sccs(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
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

    for v in list(edges):
        if v not in index:
            strong(v)
    return out


def top_module(crate, file):
    rel = os.path.relpath(file, os.path.join(ROOT, crate, "src"))
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def layer_of(crate, file):
    top = top_module(crate, file)
    if top == "lib":
        return None
    for i, layer in enumerate(LAYERS[crate]):
        if top in layer:
            return i
    return -1


def main():
    show_edges = "--edges" in sys.argv
    show_layers = "--layers" in sys.argv
    problems = []
    for crate in LAYERS:
        _, modules = load_crate(crate)
        edges = edges_of(modules)
        rel = lambda f: os.path.relpath(f, ROOT)
        for comp in sccs(edges):
            problems.append("circle: " + " <-> ".join(rel(f) for f in comp))
        for a, targets in sorted(edges.items()):
            la = layer_of(crate, a)
            if la == -1:
                problems.append(f"{rel(a)}: module {top_module(crate, a)!r} is in no layer of {crate} (scripts/import_graph.py)")
                continue
            for b in sorted(targets):
                lb = layer_of(crate, b)
                if show_edges:
                    print(f"{rel(a)} -> {rel(b)}")
                if la is not None and lb is not None and lb > la:
                    problems.append(f"upward import: {rel(a)} (layer {la}) -> {rel(b)} (layer {lb})")
        if show_layers:
            print(f"{crate}:")
            for i, layer in enumerate(LAYERS[crate]):
                files = sorted(rel(m.file) for m in modules.values() if layer_of(crate, m.file) == i)
                print(f"  {i}: {', '.join(layer)} ({len(files)} files)")
    problems = sorted(set(problems))
    for p in problems:
        print(p)
    if problems:
        print(f"import graph: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("import graph: no circles, no upward imports", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
