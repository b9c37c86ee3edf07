# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of the EEPROM image code on a 2 MiB (BCM2712) image.

Prints the time to read the config (parse the image + decode bootconf.txt), to rewrite it
(new BOOT_ORDER, image bytes out), and the memory peak (tracemalloc) of one rewrite. Uses the
real image in ../shared/fixtures/eeprom when present, else a synthetic A/B image built here.

    .venv/bin/python bench/bench_eeprom.py [--repeat N]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import collection_link  # noqa: E402

COLLECTIONS = collection_link.activate()

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import config as C  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import image as I  # noqa: E402

FIXTURE = REPO.parent / "shared" / "fixtures" / "eeprom" / "2712-pieeprom-2026-05-26.bin"


def timed(fn, repeat):
    times = []
    for dummy in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()

    if FIXTURE.exists():
        raw = FIXTURE.read_bytes()
        source = "real image %s" % FIXTURE.name
    else:
        raw = I.make_synthetic_image("bcm2712", "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf461\n")
        source = "synthetic A/B image (fixture absent: %s)" % FIXTURE
    assert len(raw) == 2097152

    def read():
        return I.EepromImage(raw).config

    def rewrite():
        image = I.EepromImage(raw)
        text = C.apply_changes(image.config, ["nvme", "sd", "network", "restart"], {"BOOT_UART": 1})
        C.validate_config(text)
        return image.with_config(text).to_bytes()

    assert "BOOT_ORDER=0xf216" in I.EepromImage(rewrite()).config
    read_med, read_min = timed(read, args.repeat)
    write_med, write_min = timed(rewrite, args.repeat)

    tracemalloc.start()
    rewrite()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    print("bench_eeprom: %s, %d bytes, %d runs each" % (source, len(raw), args.repeat))
    print("  read config     median %7.2f ms  min %7.2f ms" % (read_med * 1e3, read_min * 1e3))
    print("  rewrite config  median %7.2f ms  min %7.2f ms" % (write_med * 1e3, write_min * 1e3))
    print("  rewrite memory peak (tracemalloc) %.1f MiB; process max RSS %.1f MiB" % (peak / 2 ** 20, rss / 1024))


if __name__ == "__main__":
    main()
