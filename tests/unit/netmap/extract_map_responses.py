#!/usr/bin/env python3
"""Cuts the MapResponses that tailscaled logged (TS_DEBUG_MAP=1) out of the
logs of a record_fixtures.sh run and writes them as fixtures.

Usage: extract_map_responses.py WORK_DIR OUT_DIR

Writes, for each node NAME whose log holds responses:
  NAME_NN.json               the NN-th MapResponse of NAME's map stream, as
                             tailscaled logged it (the JSON it received,
                             re-indented by json.Indent);
  NAME_netmap_after_NN.json  `tailscale debug netmap` taken when NAME had
                             decoded exactly NN responses (the client's own
                             merged netmap: the oracle for the merge tests);
and manifest.json naming the sessions, the oracles and one example of each
kind of response (full, join, patch, removed, keepalive, empty).
"""
import json
import os
import re
import sys

MARK = "MapResponse: "


def responses(log_text):
    dec = json.JSONDecoder()
    out, i = [], 0
    while True:
        j = log_text.find(MARK, i)
        if j < 0:
            return out
        start = j + len(MARK)
        obj, i = dec.raw_decode(log_text, start)
        out.append((obj, log_text[start:i]))


def main(work, out):
    manifest = {"sessions": {}, "oracles": [], "examples": {}}
    for node in ("alpha", "bravo", "charlie"):
        path = os.path.join(work, node + ".log")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            resps = responses(f.read())
        names = []
        for n, (_, text) in enumerate(resps):
            name = "%s_%02d.json" % (node, n)
            with open(os.path.join(out, name), "w", encoding="utf-8") as f:
                f.write(text + "\n")
            names.append(name)
        manifest["sessions"][node] = names
        for fn in sorted(os.listdir(work)):
            m = re.fullmatch(node + r"-netmap-after-(\d+)\.json", fn)
            if not m:
                continue
            after = int(m.group(1))
            name = "%s_netmap_after_%02d.json" % (node, after)
            with open(os.path.join(work, fn), encoding="utf-8") as f:
                text = f.read()
            json.loads(text)  # whole, or the snapshot went wrong
            with open(os.path.join(out, name), "w", encoding="utf-8") as f:
                f.write(text)
            manifest["oracles"].append({"session": node, "after": after, "file": name})

    def first(pred, sessions=("charlie", "alpha", "bravo")):
        for s in sessions:
            for name in manifest["sessions"].get(s, []):
                with open(os.path.join(out, name), encoding="utf-8") as f:
                    r = json.load(f)
                if pred(r):
                    return name
        return None

    ex = manifest["examples"]
    ex["full"] = first(lambda r: len(r.get("Peers", [])) >= 2)
    ex["join"] = first(lambda r: "PeersChanged" in r and "PeersRemoved" not in r, ("alpha",))
    ex["patch"] = first(lambda r: "PeersChangedPatch" in r, ("alpha",))
    ex["removed"] = first(lambda r: "PeersRemoved" in r, ("alpha",))
    ex["keepalive"] = first(lambda r: r.get("KeepAlive") is True, ("alpha",))
    ex["empty"] = first(lambda r: set(r) == {"ControlTime"}, ("alpha",))
    missing = [k for k, v in ex.items() if v is None]
    if missing:
        sys.exit("extract_map_responses: no example of " + ", ".join(missing))
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
