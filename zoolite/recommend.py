"""Which variant to ship: the fastest shippable file that fits the user's budget, decided on evidence
that one test image or timing noise cannot flip.

The budget (:class:`~zoolite.config.Budget`) is an accuracy drop below the run's most
accurate float model (:attr:`~zoolite.results.Run.best_reference_accuracy`, so a weak
backbone cannot win by being close to its own weak float model) plus optional limits on
mean single-image latency and file size. Only shippable variants are candidates: the
Keras model is the reference, not something an app ships. Everything is read from the
results, so ``zoolite report`` can re-ask with another budget without recomputing.

The rule (the README's "How the recommendation decides" gives the reasoning):

1. **Accuracy, on paired evidence.** Each variant is compared with the float model on the
   same test images. It is rejected when it is worse than the budget allows *and* the
   evidence says the loss is real: its exact McNemar p-value is below 0.05 (more images
   lost than won, beyond chance), or the whole 95% paired interval of the difference lies
   beyond the budget. A drop that the test set cannot tell from noise does not reject it;
   the sentence then says how large a drop the test set could have detected.
2. **Fidelity, without labels.** A variant is also rejected when, on the images the float
   model is confident about (max probability >= 0.8), it disagrees with the float model on
   significantly more than the budget: the 95% interval of that disagreement lies above it.
   A faithful quantized model keeps the float model's confident answers (on test images a
   changed confident answer is almost always a lost right one); a damaged one changes them.
   The test images count, and so do the ``--unlabelled`` photos when given; their unsure
   answers, which flip easily and mean little, are left out.
3. **Speed, beyond noise.** Among the variants left, the one with the lowest median latency
   wins only over variants it is clearly faster than (the 95% bootstrap interval of the
   ratio of medians lies below 1). Those it cannot be told apart from tie with it, and the
   smallest file among them is recommended.
4. With fewer than :data:`MIN_TEST_IMAGES` test images nothing can be concluded about
   accuracy: the choice then rests on speed, size and fidelity, and the sentence says so.
"""

from __future__ import annotations

from zoolite import stats
from zoolite.config import Budget
from zoolite.results import MB, Recommendation, Run, Variant
from zoolite.targets import APP_INPUT_DTYPES

# Accuracies are fractions: a drop of exactly the budget must not fail on rounding.
_TOLERANCE = 1e-8
SIGNIFICANCE = 0.05
MIN_TEST_IMAGES = 10
CONFIDENT = 0.8  # the float model's max probability from which a changed answer counts as a loss
_FIDELITY_GROUP = f"reference max prob >= {CONFIDENT:g}"


def accuracy_loss_is_real(variant: Variant, budget: Budget, floor: float) -> bool:
    """Rule 1: below the floor, and the paired evidence says the loss is not chance."""
    if variant.accuracy >= floor - _TOLERANCE:
        return False
    paired = variant.paired
    if paired is None:  # results of zoolite 0.1 carry no paired evidence: the point estimate decides
        return True
    losing = paired.only_reference_right > paired.only_variant_right
    return (losing and paired.mcnemar_p < SIGNIFICANCE) \
        or paired.difference_interval.high < -budget.max_accuracy_drop_pp / 100


def unfaithful(variant: Variant, budget: Budget) -> list[str]:
    """Rule 2: the image sets on whose confident part the variant disagrees significantly more
    than the budget ('test', 'unlabelled')."""
    found = []
    for images, rows in variant.fidelity.items():
        row = next((r for r in rows if r["group"] == _FIDELITY_GROUP), None)
        if row and row["n"]:
            disagreement_low = 1 - row["agreement_high"]  # Wilson interval of agreement, turned over
            if disagreement_low > budget.max_accuracy_drop_pp / 100:
                found.append(images)
    return found


def failures(variant: Variant, floor: float, budget: Budget, decide_accuracy: bool) -> list[str]:
    """The budget limits ``variant`` breaks: 'accuracy', 'fidelity', 'latency', 'size'."""
    failed = []
    if decide_accuracy and accuracy_loss_is_real(variant, budget, floor):
        failed.append("accuracy")
    if unfaithful(variant, budget):
        failed.append("fidelity")
    if budget.max_latency_ms is not None and variant.latency.mean_ms > budget.max_latency_ms:
        failed.append("latency")
    if budget.max_size_mb is not None and variant.size_bytes > budget.max_size_mb * MB:
        failed.append("size")
    return failed


def _clearly_faster(a: Variant, b: Variant) -> bool:
    if a.latency.samples_ms and b.latency.samples_ms:
        return stats.is_clearly_faster(a.latency.samples_ms, b.latency.samples_ms)
    return a.latency.median_ms < b.latency.median_ms  # no samples stored (zoolite 0.1 results)


def _resolution(n: int) -> str:
    drop = stats.detectable_drop_pp(n)
    if drop == float("inf"):
        return f"with {n} test images no accuracy drop can be detected"
    return f"with {n} test images a drop below {drop:.2g} pp cannot be detected"


def recommend(run: Run, budget: Budget | None = None) -> Recommendation:
    """The shippable variant within ``budget`` chosen by the rule above."""
    budget = budget or Budget()
    best_float = run.best_reference_accuracy
    floor = budget.accuracy_floor(best_float)
    n = run.split["test"]
    decide_accuracy = n >= MIN_TEST_IMAGES
    pool = [(name, v) for name, b in run.backbones.items() for v in b.shippable]
    fitting = [(name, v) for name, v in pool if not failures(v, floor, budget, decide_accuracy)]
    evidence = (_resolution(n) if decide_accuracy else
                f"accuracy cannot be decided: only {n} test images (at least {MIN_TEST_IMAGES} are needed for any "
                "conclusion), so the choice rests on speed, size and agreement with the float model")
    if not fitting:
        broken = {limit: sum(limit in failures(v, floor, budget, decide_accuracy) for _, v in pool)
                  for limit in ("accuracy", "fidelity", "latency", "size")}
        counts = ", ".join(f"{n_broken} exceed the {limit} limit" for limit, n_broken in broken.items() if n_broken)
        return Recommendation(budget, f"No variant satisfies the budget ({budget.describe()}): of {len(pool)} "
                                      f"shippable variants, {counts or 'none were measured'} ({evidence}); loosen "
                                      "the budget with `zoolite report RUN_DIR --max-...`.")
    fastest = min(fitting, key=lambda c: (c[1].latency.median_ms, c[1].size_bytes))[1]
    tied = [c for c in fitting if c[1] is fastest or not _clearly_faster(fastest, c[1])]
    # Smallest file; near-equal integer files: the one whose input app clients accept.
    backbone, best = min(tied, key=lambda c: (c[1].input_dtype not in APP_INPUT_DTYPES, c[1].size_bytes,
                                              c[1].latency.median_ms))
    several = len(run.backbones) > 1
    name = f"{backbone} {best.variant}" if several else best.variant
    others = [f"{b} {v.variant}" if several else v.variant for b, v in tied if v is not best]
    speed = (f"as fast as {', '.join(others)} within timing noise, and the smallest of them" if others
             else "clearly faster than the others")
    which = f"{len(pool)}" if len(fitting) == len(pool) else f"{len(fitting)} (of {len(pool)})"
    paired = best.paired
    reference = f"the {'best ' if several else ''}float model"
    change = "" if paired is None else (
        f"; on the same {paired.n} test images it won {paired.only_variant_right} and lost "
        f"{paired.only_reference_right} against {reference} (McNemar p = {paired.mcnemar_p:.2g})")
    # 0.0 + x: no "-0.0" for a variant exactly as accurate as the reference
    reason = (f"{name}: {best.latency.median_ms:.2f} ms median per image, {best.size_mb:.2f} MB, accuracy "
              f"{best.accuracy * 100:.1f}%{_interval_text(best)}, {0.0 + (best.accuracy - best_float) * 100:+.1f} pp "
              f"vs {reference}{change}. Of the {which} shippable variants within the budget ({budget.describe()}), "
              f"it is {speed}. Evidence: {evidence}.")
    return Recommendation(budget, reason, backbone, best.variant)


def _interval_text(variant: Variant) -> str:
    interval = variant.accuracy_interval
    return "" if interval is None else f" (95% CI {interval.low * 100:.1f}-{interval.high * 100:.1f}%)"
