"""Which variant to ship: the fastest shippable file that fits the user's budget, decided on evidence
that one test image or timing noise cannot flip.

The budget (:class:`~zoolite.config.Budget`) is an accuracy drop below the run's most
accurate float model (:attr:`~zoolite.results.Run.best_reference_accuracy`, so a weak
backbone cannot win by being close to its own weak float model) plus optional limits on
mean single-image latency and file size. Only shippable variants are candidates: the
Keras model is the reference, not something an app ships. Everything is read from the
results, so ``zoolite report`` can re-ask with another budget without recomputing.

The rule (docs/measurements.md, "How the recommendation decides", gives the reasoning):

1. **Accuracy, on paired evidence.** Each variant is compared with the run's most accurate
   float model on the same test images. It is rejected when it is less accurate than the
   budget allows *and* the loss is real: more images lost than won, with a one-sided exact
   McNemar p below 0.05. On an imbalanced test split (:attr:`~zoolite.results.Run.balanced`)
   the accuracy is the balanced one, and the loss is real when a sign-flip test that weighs
   each image by its class's size says so. A drop that the test set cannot tell from chance does not reject it;
   the sentence then says how large a drop the test set could have detected at all.
2. **Fidelity, without labels.** A variant is also rejected when it changes the float model's
   answer on the images the float model is confident about (max probability >= 0.8; test
   images and ``--unlabelled`` photos pooled) at least :data:`MIN_CHANGED` times and
   significantly more often than the budget (one-sided exact 95% lower bound above it). A
   faithful quantized model keeps confident answers; a damaged one changes them.
3. **Speed, beyond noise.** Among the variants left, the one with the lowest median latency
   wins only over variants it is clearly faster than (the 95% bootstrap interval of the
   ratio of medians lies below 1). Those it cannot be told apart from tie with it, and the
   smallest file among them is recommended.
4. **"None of these", on paired evidence.** A variant is also rejected when it rejects fewer of
   the held-out ``--other`` photos than its backbone's float model by more than the budget's
   rejection drop, and the loss is real (more photos lost than won, one-sided exact McNemar p
   below 0.05): quantization can cost a model its ability to say "none of these" while its
   accuracy holds.
5. **No class lost.** A variant is also rejected when it loses a class's photos against its
   backbone's float model beyond chance (one-sided exact test per class, Holm-corrected for
   the number of classes), whatever its overall accuracy: quantization can cost a rare class
   while the average barely moves. The same test on the photos kept rather than said to be
   "none of these" rejects a variant whose gate drops a class's photos. The sentence names
   such variants, and what the gate costs the recommended variant's weakest class.
6. With fewer than :data:`MIN_TEST_IMAGES` test images nothing can be concluded about
   accuracy: the choice then rests on speed, size and fidelity, and the sentence says so.
"""

from __future__ import annotations

from collections.abc import Collection

from zoolite.measure import intervals, rejection, stats
from zoolite.config import Budget
from zoolite.errors import ZooliteError
from zoolite.results import MB, Backbone, Recommendation, RejectionMeasure, Run, Variant
from zoolite.targets import FAMILIES

# Accuracies are fractions: a drop of exactly the budget must not fail on rounding.
_TOLERANCE = 1e-8
SIGNIFICANCE = 0.05  # one-sided: only a loss rejects
MIN_TEST_IMAGES = 10
MIN_CHANGED = 3  # changed confident answers below this are never evidence of damage


def accuracy_loss_is_real(variant: Variant, floor: float, balanced: bool = False) -> bool:
    """Rule 1: below the floor, and more images lost than won beyond chance (balanced: weighed by class)."""
    if variant.judged_accuracy(balanced) >= floor - _TOLERANCE:
        return False
    return accuracy_loss_p(variant, balanced) < SIGNIFICANCE


def accuracy_loss_p(variant: Variant, balanced: bool = False) -> float:
    """The one-sided p that ``variant`` is less accurate than the run's best float model; 0 for results
    of zoolite 0.1, which carry no paired evidence (the point estimate decides)."""
    if balanced and variant.balanced_paired is not None:
        return variant.balanced_paired.loss_p
    paired = variant.paired
    if paired is None:
        return 0.0
    # With fewer wins than losses, the one-sided exact p is half the two-sided one.
    return paired.mcnemar_p / 2 if paired.only_reference_right > paired.only_variant_right else 1.0


def _lost(per_class: dict) -> list[str]:
    """The classes (of a ClassMeasure or ClassKept mapping) lost against the float model beyond chance: more
    photos lost than won, Holm-corrected one-sided p below SIGNIFICANCE."""
    return [name for name, c in per_class.items()
            if c.loss_p_holm is not None and c.lost > c.won and c.loss_p_holm < SIGNIFICANCE]


def lost_classes(variant: Variant) -> list[str]:
    """Rule 5: the classes whose photos ``variant`` gets wrong more often than its float model beyond
    chance, the test corrected for the number of classes (Holm), whatever its overall accuracy."""
    return _lost(variant.per_class)


def fewer_kept_classes(variant: Variant) -> list[str]:
    """Rule 5 on "none of these": the classes whose photos ``variant`` rejects more often than its float
    model beyond chance (none for results before schema 6, which have no per-class kept shares)."""
    return _lost(variant.rejection.per_class) if variant.rejection and variant.rejection.per_class else []


def class_flags(variant: Variant) -> dict[str, str]:
    """The per-class limits ("class", "kept") ``variant`` breaks, each with what it loses in words:
    {"class": "loses b", "kept": "keeps fewer of a"}."""
    found = {"class": ("loses", lost_classes(variant)), "kept": ("keeps fewer of", fewer_kept_classes(variant))}
    return {limit: f"{words} {' and '.join(classes)}" for limit, (words, classes) in found.items() if classes}


def changed_confident_answers(variant: Variant) -> tuple[int, int]:
    """(answers changed, images) where the float model is confident, test and unlabelled pooled."""
    sets = variant.fidelity.sets().values() if variant.fidelity else []
    rows = [r for rows in sets for r in rows if r.confident]
    return sum(r.changed for r in rows), sum(r.n for r in rows)


def unfaithful(variant: Variant, budget: Budget) -> bool:
    """Rule 2: confident answers changed often enough, and significantly more often than the budget."""
    changed, n = changed_confident_answers(variant)
    if changed < MIN_CHANGED:
        return False
    lower = intervals.proportion_interval(changed, n, confidence=1 - 2 * SIGNIFICANCE, method="exact").low
    return lower > budget.max_accuracy_drop_pp / 100


def rejection_lost(variant: Variant, backbone: Backbone, budget: Budget | None = None) -> bool:
    """Rule 4: rejects significantly fewer held-out other photos than its float model, beyond the budget."""
    reference = backbone.reference.rejection
    if variant.rejection is None or reference is None:
        return False
    return rejection.lost_rejection(variant.rejection, reference, (budget or Budget()).max_rejection_drop_pp,
                                    SIGNIFICANCE)


LIMITS = ("accuracy", "class", "kept", "fidelity", "rejection", "latency", "size")


def failures(variant: Variant, backbone: Backbone, floor: float, budget: Budget, decide_accuracy: bool,
             balanced: bool = False) -> list[str]:
    """The budget limits (:data:`LIMITS`) ``variant`` (of ``backbone``) breaks."""
    failed = []
    if decide_accuracy and accuracy_loss_is_real(variant, floor, balanced):
        failed.append("accuracy")
    failed += class_flags(variant)  # "class", "kept"
    if unfaithful(variant, budget):
        failed.append("fidelity")
    if rejection_lost(variant, backbone, budget):
        failed.append("rejection")
    if budget.max_latency_ms is not None and variant.latency.mean_ms > budget.max_latency_ms:
        failed.append("latency")
    if budget.max_size_mb is not None and variant.size_bytes > budget.max_size_mb * MB:
        failed.append("size")
    return failed


def _clearly_faster(a: Variant, b: Variant) -> bool:
    if a.latency.samples_ms and b.latency.samples_ms:
        return intervals.is_clearly_faster(a.latency.samples_ms, b.latency.samples_ms)
    return a.latency.median_ms < b.latency.median_ms  # no samples stored (zoolite 0.1 results)


def _resolution(n: int) -> str:
    drop = stats.detectable_drop_pp(n, confidence=1 - 2 * SIGNIFICANCE)  # two-sided at 10% = one-sided at 5%
    if drop == float("inf"):
        return f"with {n} test images no accuracy drop can be detected"
    return f"with {n} test images a drop below {drop:.3g} pp cannot be detected"


def _among(variant: Variant, runtime: str | None, targets: Collection[str] | None) -> bool:
    return runtime in (None, variant.family) and (targets is None or variant.target in targets)


def recommend(run: Run, budget: Budget | None = None, runtime: str | None = None,
              targets: Collection[str] | None = None) -> Recommendation:
    """The shippable variant within ``budget`` chosen by the rule above, among the variants of one
    ``runtime`` family if given, and of ``targets`` (their names) if given."""
    budget = budget or Budget()
    balanced = run.balanced
    best_float = run.best_reference_accuracy
    floor = budget.accuracy_floor(best_float)
    n = run.split.test
    decide_accuracy = n >= MIN_TEST_IMAGES
    pool = [(name, v) for name, b in run.backbones.items() for v in b.shippable if _among(v, runtime, targets)]
    if not pool:
        measured = sorted({v.family for b in run.backbones.values() for v in b.shippable})
        raise ZooliteError(f"--runtime {runtime}: no variant of it in this run; choose from: {', '.join(measured)}")
    among = "" if runtime is None else f"{FAMILIES[runtime].label} "

    def broken(name: str, v: Variant) -> list[str]:
        return failures(v, run.backbones[name], floor, budget, decide_accuracy, balanced)

    def broken_text(name: str, v: Variant) -> str:
        flags = class_flags(v)
        return ", ".join(flags.get(limit, limit) for limit in broken(name, v))

    fitting = [(name, v) for name, v in pool if not broken(name, v)]
    limits_text = budget.describe(run.other is not None, run.accuracy_name)
    evidence = (_resolution(n) if decide_accuracy else
                f"accuracy cannot be decided: only {n} test images (at least {MIN_TEST_IMAGES} are needed for any "
                "conclusion), so the choice rests on speed, size and agreement with the float model")
    if not fitting:
        counts = ", ".join(f"{n_broken} exceed the {limit} limit" for limit in LIMITS
                           if (n_broken := sum(limit in broken(name, v) for name, v in pool)))
        return Recommendation(budget, f"No variant satisfies the budget ({limits_text}): of {len(pool)} shippable "
                                      f"{among}variants, {counts or 'none were measured'} ({evidence}); loosen the budget "
                                      "with `zoolite report RUN_DIR --max-...`.", runtime=runtime)
    fastest = min(fitting, key=lambda c: (c[1].latency.median_ms, c[1].size_bytes))[1]
    tied = [c for c in fitting if c[1] is fastest or not _clearly_faster(fastest, c[1])]
    backbone, best = min(tied, key=lambda c: (c[1].size_bytes, c[1].latency.median_ms))
    several = len(run.backbones) > 1

    def named(b: str, v: Variant) -> str:
        return f"{b} {v.target}" if several else v.target

    name = named(backbone, best)
    others = [named(b, v) for b, v in tied if v is not best]
    if others:
        speed = f"as fast as {', '.join(others)} within timing noise, and the smallest of them"
    else:
        speed = "the only one" if len(fitting) == 1 else "clearly faster than the others"
    excluded = [f"{named(b, v)} ({broken_text(b, v)})" for b, v in pool
                if (b, v) not in fitting and v.latency.median_ms < best.latency.median_ms]
    losing = [f"{named(b, v)} ({', '.join(class_flags(v).values())})" for b, v in pool
              if class_flags(v) and v.latency.median_ms >= best.latency.median_ms]  # the faster ones are named above
    which = f"{len(pool)}" if len(fitting) == len(pool) else f"{len(fitting)} (of {len(pool)})"
    reference = f"the {'best ' if several else ''}float model"
    reason = (f"{name} ({FAMILIES[best.family].label}): {best.latency.median_ms:.2f} ms median per image, {best.size_mb:.2f} MB, "
              f"{_accuracy_text(best, best_float, floor, budget, balanced, reference, n, decide_accuracy)}"
              f"{_rejection_text(best)}. Of the {which} shippable {among}variants the budget ({limits_text}) does not rule "
              f"out, it is {speed}." + (f" Faster but outside the budget: {', '.join(excluded)}." if excluded else "")
              + (f" Also losing a class: {', '.join(losing)}." if losing else "") + f" Evidence: {evidence}.")
    return Recommendation(budget, reason, backbone, best.target, runtime)


def _accuracy_text(best: Variant, best_float: float, floor: float, budget: Budget, balanced: bool, reference: str,
                   n: int, decide_accuracy: bool) -> str:
    """What the recommended variant scores against ``reference``, and why a drop beyond the budget did not rule
    it out: it is not shown to be real with ``n`` test images."""
    value = best.judged_accuracy(balanced)
    interval = best.balanced_accuracy_interval if balanced else best.accuracy_interval
    # 0.0 + x: no "-0.0" for a variant exactly as accurate as the reference
    text = (f"{'balanced accuracy' if balanced else 'accuracy'} {value * 100:.1f}%{_interval_text(interval)}, "
            f"{0.0 + (value - best_float) * 100:+.1f} pp vs {reference}"
            + (f" (accuracy {best.accuracy * 100:.1f}%)" if balanced else ""))
    paired = best.paired
    if paired is not None:
        text += (f"; on the same {paired.n} test images it won {paired.only_variant_right} and lost "
                 f"{paired.only_reference_right} against {reference} (McNemar p = {paired.mcnemar_p:.2g})")
    if decide_accuracy and value < floor - _TOLERANCE:
        text += (f"; that drop exceeds the budget's {budget.max_accuracy_drop_pp:g} pp, but the {n} test images "
                 f"do not show it to be real (one-sided p = {accuracy_loss_p(best, balanced):.2g}), so it is not "
                 "ruled out")
    tested = any(c.loss_p_holm is not None for c in best.per_class.values())
    return text + ("; it loses no class beyond chance (per-class exact tests, Holm-corrected)" if tested else "")


def _rejection_text(variant: Variant) -> str:
    r = variant.rejection
    if r is None:
        return ""
    kept = f"; it keeps {r.kept_rate * 100:.1f}% of the test images as one of the classes"
    other = (" (its \"none of these\" was not measured on photos of other things)" if r.rejected is None else
             f" and rejects {r.rejected_rate * 100:.1f}% of the held-out other photos")
    return kept + other + _weakest_class_text(r)


def _weakest_class_text(r: RejectionMeasure) -> str:
    """What the gate costs the class it keeps the fewest photos of (nothing for results before schema 6)."""
    fewest = r.fewest_kept()
    if fewest is None:
        return ""
    name, c = fewest
    if c.kept == c.photos:
        return "; the gate keeps every test photo of every class"
    return (f"; the gate keeps {r.balanced_kept * 100:.0f}% of test photos per class on average, fewest of {name}: "
            f"{c.rate * 100:.0f}% [{c.interval.low * 100:.0f}%, {c.interval.high * 100:.0f}%]")


def _interval_text(interval) -> str:
    return "" if interval is None else f" (95% CI {interval.low * 100:.1f}-{interval.high * 100:.1f}%)"
