"""Which variant to ship: the fastest shippable file that fits the user's budget.

The budget (:class:`~zoolite.config.Budget`) is an accuracy drop below the run's most
accurate float model (:attr:`~zoolite.results.Run.best_reference_accuracy`, so a weak
backbone cannot win by being close to its own weak float model) plus optional limits on
mean single-image latency and file size. Only shippable variants are candidates: the
Keras model is the reference, not something an app ships. Everything is read from the
results, so ``zoolite report`` can re-ask with another budget without recomputing.
"""

from __future__ import annotations

from zoolite.config import Budget
from zoolite.results import MB, Recommendation, Run, Variant

# Accuracies are float32 fractions: a drop of exactly the budget must not fail on rounding.
_TOLERANCE = 1e-8


def failures(variant: Variant, floor: float, budget: Budget) -> list[str]:
    """The budget limits ``variant`` breaks: 'accuracy', 'latency', 'size'."""
    failed = []
    if variant.accuracy < floor - _TOLERANCE:
        failed.append("accuracy")
    if budget.max_latency_ms is not None and variant.latency.mean_ms > budget.max_latency_ms:
        failed.append("latency")
    if budget.max_size_mb is not None and variant.size_bytes > budget.max_size_mb * MB:
        failed.append("size")
    return failed


def recommend(run: Run, budget: Budget | None = None) -> Recommendation:
    """The shippable variant within ``budget`` with the lowest mean latency (ties: the smaller file)."""
    budget = budget or Budget()
    best_float = run.best_reference_accuracy
    floor = budget.accuracy_floor(best_float)
    pool = [(name, v) for name, b in run.backbones.items() for v in b.shippable]
    fitting = [(name, v) for name, v in pool if not failures(v, floor, budget)]
    if not fitting:
        broken = {limit: sum(limit in failures(v, floor, budget) for _, v in pool)
                  for limit in ("accuracy", "latency", "size")}
        counts = ", ".join(f"{n} exceed the {limit} limit" for limit, n in broken.items() if n)
        return Recommendation(budget, f"No variant satisfies the budget ({budget.describe()}): of {len(pool)} "
                                      f"shippable variants, {counts or 'none were measured'}; loosen the budget "
                                      "with `zoolite report RUN_DIR --max-...`.")
    backbone, best = min(fitting, key=lambda c: (c[1].latency.mean_ms, c[1].size_bytes))
    several = len(run.backbones) > 1
    name = f"{backbone} {best.variant}" if several else best.variant
    tied = [v.variant for _, v in fitting if v is not best and v.latency.mean_ms == best.latency.mean_ms]
    tie_note = f", tied on latency with {', '.join(tied)} but smaller" if tied else ""
    which = f"all {len(pool)}" if len(fitting) == len(pool) else f"the {len(fitting)} of {len(pool)}"
    # 0.0 + x: no "-0.0" for a variant exactly as accurate as the reference
    delta_pp = 0.0 + (best.accuracy - best_float) * 100
    reason = (f"{name} is the fastest of {which} shippable variants within the budget ({budget.describe()}): "
              f"{best.latency.mean_ms:.2f} ms mean per image, {best.size_mb:.2f} MB{tie_note}, accuracy "
              f"{best.accuracy * 100:.1f}% ({delta_pp:+.1f} pp vs the {'best ' if several else ''}float model).")
    return Recommendation(budget, reason, backbone, best.variant)
