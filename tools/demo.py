"""`make demo`: build a sample media folder, index it, and search it with a text and an example.

It uses the real LanguageBind checkpoints (downloaded once into the Hugging Face cache). Where they
cannot be downloaded (no network), it says so and falls back to tiny untrained models so that the
whole pipeline still runs; their results carry no meaning.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lbsearch.testing.checkpoints import write_tiny_config
from lbsearch.testing.samples import write_sample_media

DEMO = Path("demo")


def lbsearch(*args: str, check: bool = True) -> int:
    command = [sys.executable, "-m", "lbsearch", *args]
    print("\n$ lbsearch " + " ".join(args), flush=True)
    code = subprocess.run(command).returncode
    if check and code not in (0, 1):
        sys.exit(code)
    return code


def tiny_config() -> Path:
    return write_tiny_config(DEMO / "tiny-config.toml", DEMO / "tiny-models")


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
