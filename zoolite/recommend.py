"""Which variant to ship: the fastest LiteRT file that fits the user's budget.

The budget is an accuracy drop (percentage points below the most accurate float Keras
model of the run, so a weak backbone cannot win by being close to its own weak float
model) plus optional limits on mean single-image latency and file size. Only
``.tflite`` variants are candidates: the Keras model is the reference, not something an
app ships. Everything is read from the results dict, so ``zoolite report`` can re-ask
with another budget without recomputing anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from zoolite.errors import ZooliteError
from zoolite.reporting import MB, variant_rows

# Accuracies are float32 fractions: a drop of exactly the budget must not fail on rounding.
_TOLERANCE_PP = 1e-6


@dataclass(frozen=True)
class Budget:
    max_accuracy_drop_pp: float = 1.0
    max_latency_ms: float | None = None
    max_size_mb: float | None = None

    def __post_init__(self):
        if not self.max_accuracy_drop_pp >= 0:
            raise ZooliteError(f"--max-accuracy-drop {self.max_accuracy_drop_pp}: must be 0 or more "
                               "(percentage points below the float model)")
        for option, value in (("--max-latency-ms", self.max_latency_ms), ("--max-size-mb", self.max_size_mb)):
            if value is not None and not value > 0:
                raise ZooliteError(f"{option} {value}: must be above 0, or left out for no limit")

    def describe(self) -> str:
        parts = [f"accuracy drop ≤ {self.max_accuracy_drop_pp:g} pp"]
        if self.max_latency_ms is not None:
            parts.append(f"mean latency ≤ {self.max_latency_ms:g} ms")
        if self.max_size_mb is not None:
            parts.append(f"size ≤ {self.max_size_mb:g} MB")
        return ", ".join(parts)

    def to_json(self) -> dict:
        return asdict(self)


def candidates(results: dict) -> list[dict]:
    """Every LiteRT variant of every backbone, as a table row plus its backbone, file, size and
    ``drop_pp``, its accuracy below the best float Keras model of the run."""
    best_float = max(backbone["variants"][0]["accuracy"] for backbone in results["backbones"].values())
    out = []
    for name, backbone in results["backbones"].items():
        for row, table_row in zip(backbone["variants"], variant_rows(backbone)):
            if row["file"].endswith(".tflite"):
                out.append({"backbone": name, "file": row["file"], "size_bytes": row["size_bytes"],
                            "drop_pp": (best_float - row["accuracy"]) * 100, **table_row})
    return out


def _failures(candidate: dict, budget: Budget) -> list[str]:
    """The budget limits ``candidate`` breaks: 'accuracy', 'latency', 'size'."""
    failed = []
    if candidate["drop_pp"] > budget.max_accuracy_drop_pp + _TOLERANCE_PP:
        failed.append("accuracy")
    if budget.max_latency_ms is not None and candidate["mean_ms"] > budget.max_latency_ms:
        failed.append("latency")
    if budget.max_size_mb is not None and candidate["size_bytes"] > budget.max_size_mb * MB:
        failed.append("size")
    return failed


def recommend(results: dict, budget: Budget | None = None) -> dict:
    """The variant within ``budget`` with the lowest mean latency (ties: the smaller file).

    Returns ``{"budget", "backbone", "variant", "file", "accuracy", ..., "reason"}``;
    ``backbone`` and ``variant`` are None when nothing satisfies the budget, and
    ``reason`` (one sentence) then says which limits ruled the variants out.
    """
    budget = budget or Budget()
    pool = candidates(results)
    fitting = [c for c in pool if not _failures(c, budget)]
    out = {"budget": budget.to_json(), "backbone": None, "variant": None}
    if not fitting:
        broken = {limit: sum(limit in _failures(c, budget) for c in pool) for limit in ("accuracy", "latency", "size")}
        counts = ", ".join(f"{n} exceed the {limit} limit" for limit, n in broken.items() if n)
        out["reason"] = (f"No variant satisfies the budget ({budget.describe()}): of {len(pool)} LiteRT "
                         f"variants, {counts or 'none were measured'}; loosen the budget with "
                         "`zoolite report RUN_DIR --max-...`.")
        return out
    best = min(fitting, key=lambda c: (c["mean_ms"], c["size_bytes"]))
    several = len(results["backbones"]) > 1
    name = f"{best['backbone']} {best['variant']}" if several else best["variant"]
    out.update({key: best[key] for key in ("backbone", "variant", "file", "accuracy", "accuracy_delta_pp", "drop_pp",
                                           "mean_ms", "p90_ms", "size_mb", "size_bytes")})
    tied = [c["variant"] for c in fitting if c is not best and c["mean_ms"] == best["mean_ms"]]
    tie_note = f", tied on latency with {', '.join(tied)} but smaller" if tied else ""
    which = f"all {len(pool)}" if len(fitting) == len(pool) else f"the {len(fitting)} of {len(pool)}"
    out["reason"] = (f"{name} is the fastest of {which} LiteRT variants within the budget "
                     f"({budget.describe()}): {best['mean_ms']:.2f} ms mean per image, "
                     f"{best['size_mb']:.2f} MB{tie_note}, accuracy {best['accuracy'] * 100:.1f}% "
                     # 0.0 - x: no "-0.0" for a variant exactly as accurate as the reference
                     f"({0.0 - best['drop_pp']:+.1f} pp vs the {'best ' if several else ''}float Keras model).")
    return out
