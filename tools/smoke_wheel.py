"""`make smoke`: the wheel, installed into a fresh virtual environment, runs every command.

Builds the wheel from the source tree (offline: the setuptools of the interpreter running this),
installs torch then the wheel into a new venv (pip's cache makes this quick after the first time),
then, from a folder that holds decoys named `lbsearch`, `cli` and `indexers` (each raising on
import), runs `index` on generated media, `query`, `status`, `embed`, `serve` (one HTTP request)
and `browse --help` with tiny random-weight checkpoints: nothing is downloaded. Each command's
exit status is checked; the last line says PASS or FAIL.

    python tools/smoke_wheel.py [--torch torch==2.13.0] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_FOLDERS = ("lbsearch", "cli", "indexers")  # cli/, indexers/ install under lbsearch
BUILD_FILES = ("pyproject.toml", "setup.py", "README.md", "LICENSE")
# A decoy imports without error (as the parent folder of a clone or a library folder named
# `lbsearch` would) and says so: no command may import it, in any of its processes.
DECOY = 'import sys; sys.stderr.write("DECOY IMPORTED: {}\\n")\n'


class SmokeFailure(Exception):
    """A step failed; the message says which and how."""


def source_files(root: Path = ROOT) -> list[Path]:
    """The files of the package folders (relative to `root`) as a checkout has them: tracked and
    new files, not ignored ones (caches, build output); every file outside a git checkout."""
    try:
        listing = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        listed = subprocess.run(
            [*listing, "--", *PACKAGE_FOLDERS],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout
        names = {Path(os.fsdecode(n)) for n in listed.split(b"\0") if n}
        return sorted(n for n in names if (root / n).is_file())  # deleted but still tracked
    except (OSError, subprocess.CalledProcessError):
        return sorted(
            p.relative_to(root)
            for folder in PACKAGE_FOLDERS
            for p in (root / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        )


def build_wheel(out: Path, root: Path = ROOT) -> Path:
    """Build the wheel from a copy of the source files (never the checkout's own stale build/
    folder) with pip and the running interpreter's setuptools: no download."""
    src = out / "src"
    present = [name for name in BUILD_FILES if (root / name).exists()]
    for name in [*present, *map(str, source_files(root))]:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, src / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    done = subprocess.run(
        [*command, "-w", str(out / "dist"), str(src)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SmokeFailure(f"building the wheel failed:\n{done.stdout}{done.stderr}")
    (wheel,) = (out / "dist").glob("lbsearch-*.whl")
    return wheel


def step(name: str, command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    print(f"  {name}: exit {done.returncode} ({time.monotonic() - started:.1f} s)", flush=True)
    if done.returncode != 0 or "DECOY IMPORTED" in done.stderr:
        raise SmokeFailure(f"{name} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return done


def install(venv: Path, wheel: Path, torch: str) -> Path:
    """A fresh venv with `torch` (first, as the Makefile does) and then the wheel."""
    step("venv", [sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    step("pip install torch", [str(python), "-m", "pip", "install", "-q", "--no-compile", torch])
    step(
        "pip install wheel", [str(python), "-m", "pip", "install", "-q", "--no-compile", str(wheel)]
    )
    return python


def prepare(python: Path, base: Path) -> tuple[dict[str, str], Path, Path]:
    """Tiny checkpoints, sample media, the environment for lbsearch, and the decoy folder."""
    script = (
        "import sys; from pathlib import Path\n"
        "from lbsearch.testing.checkpoints import write_tiny_config\n"
        "from lbsearch.testing.samples import write_sample_media\n"
        "b = Path(sys.argv[1])\n"
        "write_tiny_config(b / 'config.toml', b / 'models', "
        "runtime={'device': 'cpu', 'dtype': 'float32'})\n"
        "write_sample_media(b / 'media')\n"
    )
    step("tiny models and media", [str(python), "-P", "-c", script, str(base)], cwd=base)
    env = {
        **os.environ,
        "LBSEARCH_CONFIG": str(base / "config.toml"),
        "LBSEARCH_HOME": str(base / "library"),
        "LBSEARCH_CACHE": str(base / "cache"),
        "HF_HOME": str(base / "hf"),
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("PYTHONPATH", None)
    work = base / "work"
    for name in PACKAGE_FOLDERS:
        (work / name).mkdir(parents=True)
        (work / name / "__init__.py").write_text(DECOY.format(work / name), encoding="utf-8")
    return env, base / "media", work


def run_commands(lbsearch: str, env: dict[str, str], media: Path, work: Path) -> None:
    common = {"env": env, "cwd": work}
    step("lbsearch index", [lbsearch, "index", str(media)], **common)
    found = step("lbsearch query", [lbsearch, "query", "a ball", "--json"], **common)
    if not [json.loads(line) for line in found.stdout.splitlines()]:  # JSON Lines, one a hit
        raise SmokeFailure(f"lbsearch query found nothing:\n{found.stdout}")
    status = json.loads(step("lbsearch status", [lbsearch, "status", "--json"], **common).stdout)
    if "files" not in json.dumps(status):
        raise SmokeFailure(f"lbsearch status --json says no files:\n{status}")
    step("lbsearch embed", [lbsearch, "embed", str(media / "whistle.wav"), "--json"], **common)
    serve(lbsearch, env, work)
    step("lbsearch browse --help", [lbsearch, "browse", "--help"], **common)


def serve(lbsearch: str, env: dict[str, str], work: Path) -> None:
    """Start `serve` on a free port, search once over HTTP, stop it with Ctrl-C (SIGINT)."""
    started = time.monotonic()
    server = subprocess.Popen(
        [lbsearch, "serve", "--port", "0"],
        env=env,
        cwd=work,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        base = _served_at(server)
        with urllib.request.urlopen(f"{base}/api/search?q=a+ball", timeout=60) as reply:
            hits = json.load(reply)["results"]
        if not hits:
            raise SmokeFailure("lbsearch serve: /api/search found nothing")
        server.send_signal(signal.SIGINT)
        code = server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    rest = server.stderr.read() if server.stderr else ""
    print(f"  lbsearch serve: exit {code} ({time.monotonic() - started:.1f} s)", flush=True)
    if code != 0 or "DECOY IMPORTED" in rest:
        raise SmokeFailure(f"lbsearch serve exited with {code}:\n{rest}")


def _served_at(server: subprocess.Popen[str]) -> str:
    """The base URL that `serve` announces on stderr ("open http://...:PORT/")."""
    assert server.stderr is not None
    said = []
    for line in server.stderr:
        said.append(line)
        if "DECOY IMPORTED" in line:
            break
        if line.startswith("open http"):
            return line.split()[1].rstrip("/")
    raise SmokeFailure("lbsearch serve exited before listening:\n" + "".join(said))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", default="torch==2.13.0", help="what to pip install first")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="lbsearch-smoke-"))
    try:
        wheel = build_wheel(base / "build")
        print(f"smoke: built {wheel.name}", flush=True)
        python = install(base / "venv", wheel, args.torch)
        env, media, work = prepare(python, base)
        run_commands(str(base / "venv" / "bin" / "lbsearch"), env, media, work)
    except (SmokeFailure, subprocess.SubprocessError, OSError, ValueError) as exc:
        print(f"smoke: {exc}", file=sys.stderr)
        print(f"smoke: FAIL ({time.monotonic() - started:.0f} s)", flush=True)
        return 1
    finally:
        if args.keep:
            print(f"smoke: kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(f"smoke: PASS ({time.monotonic() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
