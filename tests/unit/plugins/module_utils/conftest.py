# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the library's unit tests: boards on the simulator's chip models (see emulated.py)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from emulated import Rig  # noqa: E402


@pytest.fixture
def rig(tmp_path):
    """``rig(profile, **options)``: a Board on emulated chips, with a log of every transaction."""

    def make(profile, **kwargs):
        return Rig(profile, tmp_path, **kwargs)

    return make
