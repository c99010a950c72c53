"""Shared pytest set-up: the namespace harness and a ``topology`` fixture."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "net"))

from lopower_net import Topology  # noqa: E402


@pytest.fixture
def topology():
    """A fresh :class:`lopower_net.Topology`, torn down after the test.

    Skips the test when not running as root (namespaces need it).
    """
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    with Topology() as topo:
        yield topo
