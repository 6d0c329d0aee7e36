"""The page's query box speaks the box language's `match:` (as `--match`): /api/search reads it
from `box`, and a `match` field given beside it must agree."""

from __future__ import annotations

import pytest
from starlette.datastructures import QueryParams

from lbsearch.cli.serve.forms import read_request
from lbsearch.errors import UsageError


def test_the_box_match_mode_reaches_the_request() -> None:
    assert read_request(QueryParams("box=dog+match:both")).match == "both"
    assert read_request(QueryParams("box=dog&match=sound")).match == "sound"
    assert read_request(QueryParams("box=dog+match:both&match=BOTH")).match == "both"
    assert read_request(QueryParams("box=dog")).match == "any"


def test_a_box_and_a_field_that_disagree_or_a_bad_mode_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="match is given twice"):
        read_request(QueryParams("box=dog+match:both&match=sound"))
    with pytest.raises(UsageError, match="unknown match mode 'all'"):
        read_request(QueryParams("box=dog+match:all"))
    with pytest.raises(UsageError, match="unknown match mode 'x'"):
        read_request(QueryParams("box=dog&match=x"))
