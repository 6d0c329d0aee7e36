"""`lbsearch browse` honours the box's `match:` (the query box language of browse and serve):
the engine is asked with that mode, and the m key's rewrite of the box keeps it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("textual")

from test_tui import CONFIG, SIZE, build_library, rows, settle

from lbsearch.cli.tui.app import BrowseApp, QueryInput
from lbsearch.library import Library
from lbsearch.search import Hit, Query, SearchEngine
from lbsearch.search.moments import Match
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.types import Modality


class Recording(SearchEngine):
    asked: list[Query]

    def search(self, query: Query) -> list[Hit]:
        self.asked.append(query)
        return super().search(query)


def test_the_box_match_mode_reaches_the_engine_and_survives_the_m_key(tmp_path: Path) -> None:
    with Library.open(build_library(tmp_path), config=CONFIG) as lib:
        engine = Recording(lib, CONFIG, FakeEncoders())
        engine.asked = []
        app = BrowseApp(engine, query="a red ball match:sound")

        async def main() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await settle(pilot)
                assert engine.asked[-1].match is Match.SOUND
                found = {h.modality for h in rows(app)}
                assert found and found <= {Modality.AUDIO, Modality.VIDEO}  # sound windows only
                await pilot.press("m")  # the modality key writes m: into the box
                await settle(pilot)
                box = app.query_one(QueryInput).value
                assert "match:sound" in box and "m:image" in box, box
                assert engine.asked[-1].match is Match.SOUND

        asyncio.run(main())
