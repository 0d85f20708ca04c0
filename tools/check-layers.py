#!/usr/bin/env python3
"""Layering lint (ctest lint.layers): the include graph between the source folders and the
CMake link lists of their libraries must match the picture in docs/ARCHITECTURE.md.

The picture is the fenced ```layers block of docs/ARCHITECTURE.md:
    FOLDER: DEP DEP ...        the folders FOLDER may include and link (its own always)
    cycle: DIR/MOD DIR/MOD ... a module include cycle allowed today (MOD = file without .c/.h)
'#' starts a comment. Checks, each failure printed as "check-layers: ...":
  1. the picture is acyclic and names only folders it defines;
  2. every '#include "DIR/..."' in FOLDER/*.c|h names FOLDER or an allowed DEP;
  3. target_link_libraries(ir_FOLDER ...) names only ir_DEP of allowed DEPs, every folder
     FOLDER includes is linked (or compiled in: a DIR/x.c source of the library), and every
     allowed DEP is included or linked (the picture keeps no stale edge);
  4. module include cycles (x.c/x.h including y.h and back) are exactly the allowed ones (an
     allowed cycle that is gone must be removed from the picture).
Usage: check-layers.py [SRC_DIR]   (exit 0 when all hold, 1 otherwise)
"""

import os
import re
import subprocess
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([A-Za-z0-9_]+)/([^"]+)"', re.M)


def fail(errors, msg):
    errors.append("check-layers: " + msg)


def read_picture(root, errors):
    path = os.path.join(root, "docs", "ARCHITECTURE.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"^```layers\n(.*?)^```", text, re.M | re.S)
    if len(blocks) != 1:
        fail(errors, "docs/ARCHITECTURE.md must hold exactly one ```layers block (found %d)"
             % len(blocks))
        return {}, []
    allowed, cycles = {}, []
    for n, line in enumerate(blocks[0].splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"^([a-z]+)\s*:\s*(.*)$", line)
        if not m:
            fail(errors, "layers block line %d: want 'FOLDER: DEPS' or 'cycle: MODULES'" % n)
            continue
        key, deps = m.group(1), m.group(2).split()
        if key == "cycle":
            cycles.append(frozenset(deps))
        elif key in allowed:
            fail(errors, "layers block: folder %s given twice" % key)
        else:
            allowed[key] = set(deps)
    for folder, deps in allowed.items():
        for d in deps - set(allowed):
            fail(errors, "layers block: %s depends on %s, which the picture does not define"
                 % (folder, d))
    check_acyclic(allowed, errors)
    return allowed, cycles


def check_acyclic(allowed, errors):
    state = {}

    def visit(node, path):
        if state.get(node) == "done":
            return
        if state.get(node) == "open":
            fail(errors, "the picture has a cycle: %s" % " -> ".join(path + [node]))
            return
        state[node] = "open"
        for d in sorted(allowed.get(node, ())):
            if d != node:
                visit(d, path + [node])
        state[node] = "done"

    for node in sorted(allowed):
        visit(node, [])


def source_files(root, folder):
    """Tracked .c/.h files of folder (every file below it when root is not a git checkout)."""
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "--", folder],
                             capture_output=True, text=True, check=True).stdout.split()
        if out:
            return [f for f in out if f.endswith((".c", ".h"))]
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for dirpath, _, names in os.walk(os.path.join(root, folder)):
        for name in names:
            if name.endswith((".c", ".h")):
                files.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(files)


def includes_of(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
        return INCLUDE.findall(f.read())


def check_includes(root, allowed, errors):
    """Returns {folder: folders it includes} and the module graph {module: {module}}."""
    used, modules = {}, {}
    for folder in sorted(allowed):
        used[folder] = set()
        for rel in source_files(root, folder):
            mod = os.path.splitext(rel)[0]
            modules.setdefault(mod, set())
            for dep, name in includes_of(root, rel):
                if dep != folder and dep not in allowed[folder]:
                    fail(errors, '%s includes "%s/%s": %s -> %s is not in the picture of '
                         "docs/ARCHITECTURE.md" % (rel, dep, name, folder, dep))
                if dep != folder:
                    used[folder].add(dep)
                target = os.path.splitext(dep + "/" + name)[0]
                if target != mod and os.path.exists(os.path.join(root, dep, name)):
                    modules[mod].add(target)
    return used, modules


def cmake_library(root, folder):
    """(linked folders, compiled-in folders) of ir_FOLDER, or None when there is no library."""
    path = os.path.join(root, folder, "CMakeLists.txt")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"#[^\n]*", "", f.read())
    lib = re.search(r"add_library\(\s*ir_%s\b([^)]*)\)" % folder, text)
    if lib is None:
        return None
    compiled = set(re.findall(r"\$\{CMAKE_SOURCE_DIR\}/([a-z]+)/[^\s)]+\.c", lib.group(1)))
    links = set()
    for m in re.finditer(r"target_link_libraries\(\s*ir_%s\b([^)]*)\)" % folder, text):
        links |= set(re.findall(r"\bir_([a-z]+)\b", m.group(1)))
    return links, compiled - {folder}


def check_cmake(root, allowed, used, errors):
    for folder in sorted(allowed):
        lib = cmake_library(root, folder)
        if lib is None:
            fail(errors, "%s/CMakeLists.txt defines no library ir_%s" % (folder, folder))
            continue
        links, compiled = lib
        for d in sorted(links - allowed[folder] - {folder}):
            fail(errors, "ir_%s links ir_%s: %s -> %s is not in the picture of "
                 "docs/ARCHITECTURE.md" % (folder, d, folder, d))
        for d in sorted(used.get(folder, set()) - links - compiled):
            fail(errors, "%s includes %s/ but ir_%s does not link ir_%s" % (folder, d, folder, d))
        for d in sorted(allowed[folder] - used.get(folder, set()) - links - compiled):
            fail(errors, "%s -> %s is allowed but neither included nor linked: remove it from "
                 "the picture of docs/ARCHITECTURE.md" % (folder, d))


def strongly_connected(graph):
    """Tarjan's algorithm; returns the components with more than one module."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check_cycles(modules, cycles, errors):
    found = set(strongly_connected(modules))
    for c in sorted(found - set(cycles), key=sorted):
        fail(errors, "module include cycle %s is not allowed by docs/ARCHITECTURE.md"
             % " <-> ".join(sorted(c)))
    for c in sorted(set(cycles) - found, key=sorted):
        fail(errors, "allowed cycle %s no longer exists: remove it from docs/ARCHITECTURE.md"
             % " <-> ".join(sorted(c)))


def main(argv):
    sys.setrecursionlimit(10000)
    root = os.path.abspath(argv[1] if len(argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    errors = []
    allowed, cycles = read_picture(root, errors)
    if allowed:
        used, modules = check_includes(root, allowed, errors)
        check_cmake(root, allowed, used, errors)
        check_cycles(modules, cycles, errors)
    for e in errors:
        print(e)
    if not errors:
        print("check-layers: the include graph and the link lists match docs/ARCHITECTURE.md "
              "(%d folders)" % len(allowed))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
