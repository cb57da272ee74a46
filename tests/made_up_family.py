"""A runtime family made up for the tests of zoolite.targets.parallel. Its converter writes, as a target's
file, which process converted it and how many calibration images it got. Mode "sleepy" first marks its start
beside the file, then takes a minute; mode "failing" raises."""

import os
import time
from pathlib import Path


class Converter:
    def __init__(self, source):
        self.source = source

    def convert(self, target, out: Path) -> None:
        if target.mode == "sleepy":
            out.with_suffix(".started").touch()
            time.sleep(60)
        if target.mode == "failing":
            raise ValueError("made up failure")
        images = len(self.source.representative()) if target.calibrated else 0
        out.write_text(f"{os.getpid()} {images}")
