"""`make demo`: build a sample media folder, index it, and search it with a text and an example.

It uses the real LanguageBind checkpoints (downloaded once into the Hugging Face cache). Where they
cannot be downloaded (no network), it says so and falls back to tiny untrained models so that the
whole pipeline still runs; their results carry no meaning.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lbsearch.testing.checkpoints import VARIANTS, write_tiny_checkpoint
from lbsearch.testing.samples import write_sample_media

DEMO = Path("demo")
TINY_FOR = {
    "image": "image",
    "video": "video_ft",
    "audio": "audio_ft",
    "depth": "depth",
    "thermal": "thermal",
}


def lbsearch(*args: str, check: bool = True) -> int:
    command = [sys.executable, "-m", "lbsearch", *args]
    print("\n$ lbsearch " + " ".join(args), flush=True)
    code = subprocess.run(command).returncode
    if check and code not in (0, 1):
        sys.exit(code)
    return code


def tiny_config() -> Path:
    models = DEMO / "tiny-models"
    lines = ["[models]"]
    for modality, variant in TINY_FOR.items():
        target = models / variant
        if not (target / "config.json").exists():
            write_tiny_checkpoint(target, VARIANTS[variant])
        lines.append(f'{modality} = "{target.resolve()}"')
    path = DEMO / "tiny-config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main() -> None:
    files = write_sample_media(DEMO / "media")
    print(f"sample media: {len(files)} files in {DEMO / 'media'}")
    config: list[str] = []
    if lbsearch("pull", check=False) != 0:
        print(
            "\n*** The LanguageBind checkpoints could not be downloaded (see the error above).\n"
            "*** Continuing with TINY UNTRAINED models so the pipeline runs end to end:\n"
            "*** the vectors below are random and their similarities carry no meaning.\n"
        )
        config = ["--config", str(tiny_config())]
    library = ["--library", str(DEMO / "library")]
    lbsearch(*config, "models")
    lbsearch(*config, "index", str(DEMO / "media"), *library)
    lbsearch(*config, "status", *library)
    lbsearch(*config, "query", "a ball bouncing on a dark floor", *library, "--limit", "5")
    lbsearch(
        *config,
        "query",
        "--like",
        str(DEMO / "media" / "sunset_beach.jpg"),
        *library,
        "--limit",
        "5",
    )
    lbsearch(*config, "embed", str(files[0]), "--json")
    lbsearch(*config, "embed", "--text", "a ball bouncing", "--modality", "video", "--json")


if __name__ == "__main__":
    main()
