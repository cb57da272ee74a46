"""The model in a browser: a static page around an export bundle, run with LiteRT.js.

:func:`write_site` adds ``index.html``, ``app.js`` and the vendored LiteRT.js runtime
(``litertjs/``, from npm ``@litertjs/core``, Apache-2.0) to a folder that already holds a
bundle written by ``zoolite export`` (``<variant>.tflite``, ``labels.txt``, ``model.json``).
The page loads only same-origin files: nothing comes from a CDN at run time.

LiteRT.js can build input tensors of float32, int32 and uint8 only, so a model whose input
(or output) is int8 cannot run in the page: :data:`WEB_INPUT_DTYPES`, :func:`web_can_run`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from zoolite.apps.model_card import ModelCard, read_card
from zoolite.errors import ZooliteError

HERE = Path(__file__).parent
PAGE_FILES = ("index.html", "app.js")
RUNTIME_DIR = "litertjs"  # in the site; the page's import map and app.js name this folder
VENDOR = HERE / "vendor" / "litertjs"

# Tensor dtypes the page can feed and read with LiteRT.js (its Tensor takes Float32Array,
# Int32Array or Uint8Array; zoolite models take pixels, so int32 never applies).
WEB_INPUT_DTYPES = frozenset({"float32", "uint8"})


def web_can_run(card: ModelCard) -> bool:
    """True when the model that ``card`` (model.json) describes can run in the page: export says so
    from the target registry (``web``), and its tensors are types LiteRT.js feeds."""
    return card.web and card.input.dtype in WEB_INPUT_DTYPES and card.output.dtype in WEB_INPUT_DTYPES


def check_web_model(card: ModelCard, where: str = "model.json") -> None:
    """Raise a one-line ZooliteError when the page cannot run ``card``'s model."""
    if not web_can_run(card):
        raise ZooliteError(f"{where}: variant {card.variant} ({card.runtime}, "
                           f"{card.input.dtype} input) cannot run in the page: LiteRT.js runs LiteRT files that "
                           f"take {' or '.join(sorted(WEB_INPUT_DTYPES))}; export a float32 or uint8 LiteRT variant "
                           "with --web")


def write_site(bundle_dir: Path) -> None:
    """Add the page and the LiteRT.js runtime to ``bundle_dir``, which holds an export bundle.

    Checks that model.json names a model file that is there and that LiteRT.js can run
    (:func:`check_web_model`); raises ZooliteError with a one-line message otherwise.
    Existing page/runtime files are replaced, so re-running it refreshes a site.
    """
    bundle_dir = Path(bundle_dir)
    card_path = bundle_dir / "model.json"
    card = read_card(card_path)
    if not (bundle_dir / card.model_file).is_file():
        raise ZooliteError(f"{card_path}: model file {card.model_file!r} is not in {bundle_dir}; export the model "
                           "again")
    check_web_model(card, str(card_path))
    if not (VENDOR / "core" / "index.js").is_file():
        raise ZooliteError(f"{VENDOR}: the LiteRT.js runtime is missing from this installation; "
                           "run scripts/refresh_litertjs.sh or reinstall zoolite")

    for name in PAGE_FILES:
        shutil.copyfile(HERE / name, bundle_dir / name)
    target = bundle_dir / RUNTIME_DIR
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(VENDOR, target, copy_function=shutil.copyfile)  # the site's own file modes
