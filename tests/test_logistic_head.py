"""The head fitted as an L2-regularised logistic regression (``--head logistic``, the default): scikit-learn's fit
carried into the Keras head exactly, its class weights, and the gate built on either kind of head."""

import numpy as np
import pytest

from zoolite.model import rejection
from zoolite.model.gated_head import with_rejection
from zoolite.model.layers import L2Normalize
from zoolite.model.logistic import fit_logistic_head, softmax, unit
from zoolite.model.training import assemble, build_head, class_weights, reads_unit_features


def _blobs(counts, dim=8, spread=1.0, seed=0):
    """Photos' made-up features: one cluster a class, at non-negative coordinates (as a ReLU backbone's)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(counts)), counts)
    centres = np.eye(dim)[:len(counts)] * 3 + 1
    return np.abs(centres[labels] + rng.normal(scale=spread, size=(len(labels), dim))), labels


@pytest.mark.parametrize("classes", [2, 4])
def test_the_head_minimises_the_regularised_cross_entropy_and_never_answers_a_class_it_had_no_photo_of(classes):
    """Two classes (which scikit-learn fits as one sigmoid) and four, with one more class in the head that has no
    training photo: the head's dense layer is where the gradient of c x the weighted cross-entropies of the
    unit-length features + |kernel|^2 / 2 vanishes, for the classes it saw, and that class is never the top one."""
    x, y = _blobs([30] * (classes - 1) + [15], spread=1.5)
    head = build_head(x.shape[1], classes + 1, 0.0, unit_features=True)
    weights = class_weights(y, classes + 1)
    fitted = fit_logistic_head(head, (x, y), (x[::3], y[::3]), 0.5, weights)
    assert fitted.converged and fitted.c == 0.5 and fitted.class_weights[-1] == 0.0
    kernel, bias = (w.astype(np.float64) for w in head.get_layer("probabilities").get_weights())
    probabilities = head.predict(x.astype(np.float32), verbose=0).astype(np.float64)
    np.testing.assert_allclose(probabilities, softmax(unit(x) @ kernel + bias), atol=1e-6)
    photo_weights = np.array([weights[label] for label in y])
    residual = (probabilities - np.eye(classes + 1)[y])[:, :classes] * photo_weights[:, None]
    gradient = 0.5 * unit(x).T @ residual + kernel[:, :classes]
    # per unit of data term: L-BFGS stops within its tolerance (1e-4) of 0; at the wrong c it is about the kernel
    assert np.abs(gradient).max() / (0.5 * photo_weights.sum()) < 1e-3 < np.abs(kernel).max()
    assert np.abs(residual.sum(0)).max() / photo_weights.sum() < 1e-3  # the bias's, not regularised
    assert probabilities[:, classes].max() < 1e-4
    # the fit's record is the head's own loss on its training photos, each weighed by its class
    nll = -np.log(probabilities[np.arange(len(y)), y])
    assert fitted.loss == pytest.approx(np.average(nll, weights=photo_weights), rel=1e-4)


def test_unit_length_is_the_heads_own_even_for_a_vector_of_almost_nothing():
    """The gate's and the fit's NumPy scaling is the head's L2Normalize layer's, the floor of a near-zero vector's
    length included (a photo the backbone sees nothing in)."""
    x = np.stack([np.linspace(0.1, 2.0, 8), np.full(8, 1e-9)])
    np.testing.assert_allclose(unit(x), np.asarray(L2Normalize()(x.astype(np.float32))), rtol=1e-5)


def test_a_head_that_reads_the_raw_features_is_refused():
    """The fit is of unit-length features: the recipe's head, reading them raw, would give other probabilities."""
    x, y = _blobs([10, 10])
    with pytest.raises(ValueError, match="unit_features"):
        fit_logistic_head(build_head(x.shape[1], 2, 0.0), (x, y), (x[:0], y[:0]), 1.0, None)


def test_augmented_views_add_variety_not_weight():
    """A photo and K views of it weigh as much as the photo alone: K exact copies give the photo's own fit."""
    x, y = _blobs([20, 20, 20])
    alone, copied = (build_head(x.shape[1], 3, 0.0, unit_features=True) for _ in range(2))
    fit_logistic_head(alone, (x, y), (x[:0], y[:0]), 1.0, None)
    fit_logistic_head(copied, (np.concatenate([x] * 3), np.tile(y, 3)), (x[:0], y[:0]), 1.0, None, views=2)
    for a, b in zip(alone.get_weights(), copied.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_class_weights_answer_the_rare_class():
    """A rare class overlapping a common one: weighed by class ("auto") the head answers more of the rare class's
    new photos right than with every photo weighing 1."""
    x, y = _blobs([400, 20], spread=2.5, seed=1)
    new_x, new_y = _blobs([400, 400], spread=2.5, seed=2)
    recall = {}
    for how in ("auto", "none"):
        head = build_head(x.shape[1], 2, 0.0, unit_features=True)
        fit_logistic_head(head, (x, y), (x[:0], y[:0]), 1.0, class_weights(y, 2, how))
        answers = head.predict(new_x.astype(np.float32), verbose=0).argmax(1)
        recall[how] = np.mean(answers[new_y == 1] == 1)
    assert recall["auto"] > recall["none"] + 0.1, recall


@pytest.mark.parametrize("unit_features", [True, False])
def test_the_gated_model_computes_what_numpy_does_on_either_head(unit_features):
    """The gate folded into the model (``with_rejection``) reads the features as the head does, scaled to unit
    length for a logistic regression's head, as they are for the recipe's: its output is NumPy's scores."""
    import keras

    x, y = _blobs([60, 60, 60], dim=12)
    inputs = keras.Input((12,))
    extractor = keras.Model(inputs, keras.layers.Dense(16, activation="relu", name="made_up")(inputs),
                            name="extractor")
    head = build_head(16, 3, 0.0, unit_features=unit_features)
    classifier = assemble(extractor, head)
    features = extractor.predict(x.astype(np.float32), verbose=0)
    if unit_features:
        fit_logistic_head(head, (features, y), (features[::4], y[::4]), 1.0, None)
    else:
        head.get_layer("probabilities").set_weights([np.random.default_rng(3).normal(size=(16, 3)).astype(np.float32),
                                                     np.zeros(3, np.float32)])
    assert reads_unit_features(classifier) == unit_features
    scored = rejection.score_class_photos(classifier, features, y, features[::4], y[::4])
    prototypes, fitted = scored.prototypes, rejection.calibrate(scored, None, 0.9)
    expected = rejection.scores(classifier, features, prototypes, fitted)
    in_model = with_rejection(classifier, prototypes, fitted).predict(x.astype(np.float32), verbose=0)
    np.testing.assert_allclose(in_model, expected, atol=1e-5)
    kernel, bias = head.get_layer("probabilities").get_weights()
    logits = (unit(features) if unit_features else features) @ kernel + bias
    np.testing.assert_array_equal(expected.argmax(1), logits.argmax(1))  # the gate scales a photo's scores alike


def test_a_run_names_the_options_of_epochs_it_never_uses(tmp_path, caplog):
    """--epochs and the like change nothing in a run whose heads are logistic regressions and that fine-tunes
    nothing: the run says so in one line as it starts. Where something trains by epochs, they are used."""
    import logging

    from conftest import copy_sample
    from zoolite.config import RunConfig, TrainConfig
    from zoolite.runs import pipeline

    assert TrainConfig(epochs=3, dropout=0.1, head_c=0.5).unused_epoch_options(True) == ["--epochs", "--dropout"]
    assert TrainConfig(epochs=3, head="recipe").unused_epoch_options(True) == []
    assert TrainConfig(epochs=3, fine_tune_layers=2).unused_epoch_options(True) == []
    assert TrainConfig(epochs=3).unused_epoch_options(pretrained=False) == []  # scratch_cnn trains by them
    data = copy_sample(tmp_path / "data", classes=("cane", "gatto"), per_class=3)
    with caplog.at_level(logging.WARNING, logger="zoolite"):
        pipeline.prepare(RunConfig.from_options(data=str(data), runs_dir=str(tmp_path / "runs"), learning_rate=0.01))
    assert [r.getMessage() for r in caplog.records if "trains by epochs" in r.getMessage()] == [
        "--learning-rate: nothing in this run trains by epochs (its head is a logistic regression, --head logistic), "
        "so they change nothing; pass --head recipe to train the head by epochs"]
