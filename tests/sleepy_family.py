"""A runtime family whose conversion takes a minute, to catch a spare process at work
(tests/test_conversion_and_evaluation.py): it marks the start beside the file it would write."""

import time
from pathlib import Path


class Converter:
    def __init__(self, source):
        self.source = source

    def convert(self, target, out: Path) -> None:
        out.with_suffix(".started").touch()
        time.sleep(60)
