#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_map_response from the recorded
fixtures (minified) and a few hand-made deltas. The first byte of each seed
picks the target's mode: 0 = NUL-separated JSON documents, 2 = raw map
stream, 3 = zstd map stream ([u32 LE length][body] frames).

Usage: tests/unit/netmap/make_fuzz_seeds.py   (needs the zstd command)
"""
import json
import os
import struct
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures")
OUT = os.path.join(HERE, "..", "..", "fuzz", "corpus", "fuzz_map_response")


def mini(name):
    with open(os.path.join(FIX, name), encoding="utf-8") as f:
        return json.dumps(json.load(f), separators=(",", ":")).encode()


def zstd(data):
    return subprocess.run(["zstd", "-q", "-1", "-c"], input=data, check=True, capture_output=True).stdout


def frame(body):
    return struct.pack("<I", len(body)) + body


def key(kind, n):
    return "%s:%064x" % (kind, n)


HAND = [
    # Patches and changes against the target's seeded peers 1-3.
    {"PeersChangedPatch": [{"NodeID": 1, "DERPRegion": 7, "Endpoints": ["[2001:db8::1]:9"], "Online": True,
                            "DiscoKey": key("discokey", 9), "LastSeen": "2027-01-01T00:00:00Z",
                            "Key": key("nodekey", 9), "CapMap": {"c": [1]}, "KeyExpiry": "2028-01-01T00:00:00+02:00"}]},
    {"PeersChanged": [{"ID": 2, "Key": key("nodekey", 2), "Addresses": ["100.64.0.2/32"], "HomeDERP": 5},
                      {"ID": 9, "Key": key("nodekey", 9), "Addresses": ["100.64.0.9/32"], "AllowedIPs": []}],
     "PeersRemoved": [3, 77], "PeerSeenChange": {"1": True, "2": False}, "OnlineChange": {"9": True}},
    {"PacketFilter": [], "PacketFilters": {"*": None, "a": [{"SrcIPs": ["100.64.0.1-100.64.0.9", "cap:x"],
                                                            "DstPorts": [{"IP": "10.0.0.0/8", "Ports": {"First": 1, "Last": 2}}],
                                                            "IPProto": [6, 300]}], "b": None}},
    {"DERPMap": {"HomeParams": {"RegionScore": {"1": 0.5}}}, "DNSConfig": {"Resolvers": [{"Addr": "198.18.0.53"}],
                                                                         "Routes": {"x.example": None}}},
    {"KeepAlive": True, "ControlTime": "2026-11-22T04:18:33.915253812Z"},
    {"Peers": [{"ID": 5, "Key": key("nodekey", 5), "DERP": "127.3.3.40:3", "Addresses": ["fd7a:115c:a1e0::5/128"]}],
     "Domain": "t.example", "Health": [], "CollectServices": False},
]


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(FIX, "manifest.json"), encoding="utf-8") as f:
        ex = json.load(f)["examples"]
    small = [mini(ex[k]) for k in ("patch", "removed", "keepalive", "empty")]
    hand = [json.dumps(h, separators=(",", ":")).encode() for h in HAND]
    seeds = {
        "json_full": b"\x00" + mini(ex["full"]),
        "json_join": b"\x00" + mini(ex["join"]),
        "json_recorded_deltas": b"\x00" + b"\x00".join(small),
        "json_hand_deltas": b"\x00" + b"\x00".join(hand),
        "stream_raw": b"\x02" + b"".join(frame(x) for x in small + hand[:2]),
        "stream_zstd": b"\x03" + b"".join(frame(zstd(x)) for x in small + hand[:2]),
        "stream_zstd_full": b"\x03" + frame(zstd(mini(ex["full"]))),
    }
    for i, h in enumerate(hand):
        seeds["json_hand_%d" % i] = b"\x00" + h
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
