"""Record reference fixtures from the original LanguageBind implementation.

The fixtures under ``tests/fixtures/reference/`` let lbsearch's own encoders be checked against the
pip package ``languagebind`` 0.1.0 (a repackaging of PKU-YuanGroup/LanguageBind). This script only
*imports* that package; nothing of it is copied into lbsearch. It must run in an isolated virtual
environment outside the repository, never in lbsearch's own development environment (the reference
needs transformers 4.45.x, lbsearch uses transformers 5).

Reference environment (tried on Python 3.11, CPU only)::

    python3 -m venv /work/refenv
    P=/work/refenv/bin/pip
    # torch/torchvision: the CUDA build of the matched pair; it runs fine without a GPU
    $P install torch==2.14.1 torchvision==0.29.1
    # only the pure-torch parts of torchaudio are used (kaldi fbank, resample)
    $P install torchaudio==2.11.0 --no-deps
    $P install transformers==4.45.2 peft==0.13.2 einops numpy pillow \
        opencv-python-headless soundfile decord==0.6.0 ftfy==6.1.1 iopath fvcore av
    $P install pytorchvideo==0.1.5 languagebind==0.1.0 --no-deps

transformers must stay below 4.46 (4.46 added an input-size check that breaks the audio tower).
The script itself applies the small import shims the package needs on current torch/torchvision
(see ``install_shims`` in ``tools/reference/env.py``); nothing in the venv is patched.

Usage (from the repository root)::

    /work/refenv/bin/python tools/make_reference_fixtures.py encoders
    /work/refenv/bin/python tools/make_reference_fixtures.py encoders --variants image audio_ft
    /work/refenv/bin/python tools/make_reference_fixtures.py encoders --no-check

``encoders`` builds tiny random-weight models for nine LanguageBind variants with the package's own
config and model classes, saves each one in the layout of the released Hugging Face checkpoints
(``config.json`` plus ``pytorch_model.bin`` or ``model.safetensors``, LoRA weights unmerged with the
old peft key names) and records the reference's text and modality features for fixed inputs in
``expected.npz`` with a ``meta.json`` describing how the inputs were made. Unless ``--no-check`` is
given it then reloads every saved checkpoint into a fresh reference model (LoRA merged by hand, and
separately with the LoRA keys mapped back to current peft names) and checks that the recorded
outputs are reproduced, and prints pairwise cosines showing that different inputs give clearly
different outputs.

The work is done by the helper modules in ``tools/reference/``. New fixture families (e.g.
``preprocessing``) are added as another entry in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import torch

# tools/reference/: this script's folder is first on sys.path
from reference.checks import check_distinct, check_reload
from reference.env import import_reference
from reference.record import record_variant
from reference.tokenizer import build_tokenizer
from reference.variants import VARIANTS, Variant

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "reference"


def run_encoders(args: argparse.Namespace) -> int:
    lb = import_reference()
    root: Path = args.out / "encoders"
    selected = [v for v in VARIANTS if not args.variants or v.name in args.variants]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in selected:
            tokenizer = build_tokenizer(lb_tokenizer_class(lb, variant), Path(tmp))
            print(f"{variant.name}:")
            arrays = record_variant(lb, variant, tokenizer, root)
            ok = check_distinct(arrays)
            if args.check:
                ok &= check_reload(lb, variant, arrays, root)
            if not ok:
                failures.append(variant.name)
    print("FAILED: " + ", ".join(failures) if failures else f"wrote {len(selected)} variants")
    return 1 if failures else 0


def lb_tokenizer_class(lb: ModuleType, variant: Variant) -> type:
    return getattr(lb, f"LanguageBind{variant.modality.capitalize()}Tokenizer")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"encoders": run_encoders}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=FIXTURES, help="fixture root folder")
    commands = parser.add_subparsers(dest="command", required=True)
    encoders = commands.add_parser("encoders", help="tiny random-weight encoder fixtures")
    encoders.add_argument("--variants", nargs="*", choices=[v.name for v in VARIANTS])
    encoders.add_argument("--no-check", dest="check", action="store_false")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    torch.set_num_threads(2)
    args = parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
