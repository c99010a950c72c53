#!/usr/bin/env python3
"""The benchmark programs a build defines, one path a line.

    python3 bench/programs.py BUILD_DIR SOURCE_DIR

Every executable defined under bench/ (from meson's introspection, in the
order meson.build defines them): tools/test's smoke run and tools/bench run
them all, so a new benchmark is run without being listed anywhere.
"""

import json
import os
import subprocess
import sys


def main() -> None:
    build, root = sys.argv[1], sys.argv[2]
    targets = json.loads(
        subprocess.run(["meson", "introspect", "--targets", build], capture_output=True, text=True, check=True).stdout)
    bench = os.path.realpath(root) + "/bench/"
    for t in targets:
        if t["type"] == "executable" and os.path.realpath(t["defined_in"]).startswith(bench):
            print(t["filename"][0])


if __name__ == "__main__":
    main()
