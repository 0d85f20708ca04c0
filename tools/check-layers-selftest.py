#!/usr/bin/env python3
"""Self-test of tools/check-layers.py (ctest lint.layers_selftest): the lint passes on a copy
of the tree and fails, naming the problem, on copies with one deliberate break each (a bad
include, a bad link, an include without its link, a new module cycle, a cycle in the picture,
a stale edge). Works in temp copies only; the repository is never touched.
Usage: check-layers-selftest.py [SRC_DIR]
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

FOLDERS = ("util", "lp", "conf", "ql", "buffer", "udp", "http", "relay", "tools")
HERE = os.path.dirname(os.path.abspath(__file__))


def copy_tree(src, dst):
    os.makedirs(os.path.join(dst, "docs"))
    shutil.copy(os.path.join(src, "docs", "ARCHITECTURE.md"), os.path.join(dst, "docs"))
    for folder in FOLDERS:
        os.makedirs(os.path.join(dst, folder))
        for name in os.listdir(os.path.join(src, folder)):
            if name.endswith((".c", ".h")) or name == "CMakeLists.txt":
                shutil.copy(os.path.join(src, folder, name), os.path.join(dst, folder))


def edit(root, rel, old, new, count=1):
    path = os.path.join(root, rel)
    with open(path) as f:
        text = f.read()
    if old not in text:
        raise AssertionError("%s: %r not found (the self-test needs updating)" % (rel, old))
    with open(path, "w") as f:
        f.write(text.replace(old, new, count))


def run(root):
    r = subprocess.run([sys.executable, os.path.join(HERE, "check-layers.py"), root],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def bad_include(root):
    edit(root, "util/log.c", '#include "util/log.h"\n', '#include "util/log.h"\n#include "http/server.h"\n')
    return 'util/log.c includes "http/server.h": util -> http is not in the picture'


def bad_link(root):
    edit(root, "lp/CMakeLists.txt", "target_link_libraries(ir_lp PUBLIC ir_util",
         "target_link_libraries(ir_lp PUBLIC ir_util ir_conf")
    return "ir_lp links ir_conf: lp -> conf is not in the picture"


def include_without_link(root):
    edit(root, "docs/ARCHITECTURE.md", "\nconf:   util\n", "\nconf:   util lp\n")
    edit(root, "conf/conf.c", '#include "conf/conf.h"\n', '#include "conf/conf.h"\n#include "lp/lp.h"\n')
    return "conf includes lp/ but ir_conf does not link ir_lp"


def new_cycle(root):
    edit(root, "util/clock.h", "#include <time.h>\n", '#include <time.h>\n\n#include "util/log.h"\n')
    # util/log.c already includes util/clock.h: clock.h -> log.h closes the cycle.
    return "module include cycle util/clock <-> util/log is not allowed"


def picture_cycle(root):
    edit(root, "docs/ARCHITECTURE.md", "\nutil:\n", "\nutil:   relay\n")
    return "the picture has a cycle"


def stale_edge(root):
    edit(root, "docs/ARCHITECTURE.md", "\nlp:     util\n", "\nlp:     util conf\n")
    return "lp -> conf is allowed but neither included nor linked"


def stale_cycle(root):
    edit(root, "docs/ARCHITECTURE.md", "x.c + x.h; to go): none.\n",
         "x.c + x.h; to go): none.\ncycle:  util/log util/clock\n")
    return "allowed cycle util/clock <-> util/log no longer exists"


def main(argv):
    src = os.path.abspath(argv[1] if len(argv) > 1 else os.path.join(HERE, ".."))
    failures = 0
    with tempfile.TemporaryDirectory(prefix="layers-selftest-") as tmp:
        clean = os.path.join(tmp, "clean")
        copy_tree(src, clean)
        rc, out = run(clean)
        if rc != 0:
            print("FAIL: the lint refuses an unchanged copy:\n" + out)
            failures += 1
        for case in (bad_include, bad_link, include_without_link, new_cycle, picture_cycle,
                     stale_edge, stale_cycle):
            root = os.path.join(tmp, case.__name__)
            copy_tree(src, root)
            want = case(root)
            rc, out = run(root)
            if rc == 0 or want not in out:
                print("FAIL: %s: exit %d, want 1 and %r in:\n%s" % (case.__name__, rc, want, out))
                failures += 1
            else:
                print("ok: %s: %s" % (case.__name__, want))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
