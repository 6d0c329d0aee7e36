"""/api/search takes all=1, min_relevance=X and order=score like `lbsearch query`'s flags, and
its results carry the same relevance and weak fields."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_helpers import index_folder, serving
from typer.testing import CliRunner

from lbsearch.cli import query as query_module
from lbsearch.cli.main import app
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.samples import write_sample_media

EXTRA = {"file_id", "thumbnail_url", "content_url"}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("serve-relevance")
    write_sample_media(base / "media")
    index_folder(base / "media", base / "library", FakeEncoders())
    return base / "library"


@pytest.fixture(scope="module")
def client(library: Path) -> Iterator[httpx.Client]:
    with serving(library) as run, httpx.Client(base_url=run.base, timeout=60) as http:
        yield http


def test_the_cut_off_parameters_equal_the_query_flags(
    client: httpx.Client, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query_module, "make_encoders", lambda *a, **k: FakeEncoders())
    for args, params in [
        (["a dog", "--all", "--limit", "50"], {"q": "a dog", "all": "1", "limit": 50}),
        (["a dog", "--all", "--order", "score"], {"q": "a dog", "all": "1", "order": "score"}),
        (["a dog", "--min-relevance", "-1"], {"q": "a dog", "min_relevance": -1}),
        (["a dog"], {"q": "a dog"}),
    ]:
        done = CliRunner().invoke(app, ["query", *args, "--json", "--library", str(library)])
        assert done.exit_code == 0, done.output
        expected = [json.loads(line) for line in done.stdout.splitlines()]
        response = client.get("/api/search", params=params)
        assert response.status_code == 200, response.text
        got = [{k: v for k, v in r.items() if k not in EXTRA} for r in response.json()["results"]]
        assert got == expected, args
        assert all("relevance" in r and "weak" in r for r in got)
    bad = client.get("/api/search", params={"q": "a dog", "order": "size"})
    assert bad.status_code == 400
