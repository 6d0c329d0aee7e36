"""The query language: `parse_query` (every front end's strings -> Query), the query box syntax
(`parse_box`, `format_box`) and the no-match explanation."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from lbsearch.errors import UsageError
from lbsearch.search import (
    Query,
    QueryRequest,
    Term,
    format_box,
    parse_box,
    parse_query,
)
from lbsearch.search.explain import explain_no_match
from lbsearch.types import Modality

ROOT = Path("/lib")


def test_parse_query_reads_weights_negatives_examples_and_filters(tmp_path: Path) -> None:
    example = tmp_path / "ex.jpg"
    example.write_bytes(b"x")
    query = parse_query(
        QueryRequest(
            texts=("dog:2", "a beach"),
            nots=("cat", "rain:0.5"),
            like=(str(example), f"{tmp_path / 'b.wav'}:3"),
            not_like=(str(example),),
            modalities=("Video", "audio", "video"),
            paths=("*.mp4",),
            after="2024-05-01",
            before="2024-05-01T18:00",
            min_duration=1.0,
            max_duration=60.0,
            limit=5,
            min_score=0.1,
        )
    )
    assert query.terms == (
        Term("dog", weight=2.0),
        Term("a beach"),
        Term("cat", weight=-1.0),
        Term("rain", weight=-0.5),
        Term(file=example),
        Term(file=tmp_path / "b.wav", weight=3.0),  # not on disk as given: the weight is split
        Term(file=example, weight=-1.0),
    )
    assert query.modalities == (Modality.VIDEO, Modality.AUDIO)
    assert query.after == datetime(2024, 5, 1).timestamp()
    assert query.before == datetime(2024, 5, 1, 18).timestamp()
    assert (query.min_duration_s, query.max_duration_s, query.limit, query.min_score) == (
        1.0,
        60.0,
        5,
        0.1,
    )


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "9999-12-31T23:59:59.999999"])
def test_the_first_and_last_days_python_can_write_are_bounds(day: str) -> None:
    query = parse_query(QueryRequest(texts=("dog",), after=day, before=day))
    assert query.after is not None and query.before is not None
    assert query.after <= query.before
    assert (query.before < 0) == day.startswith("0001")
    assert abs(query.before - query.after) <= 86400


def test_an_example_path_that_exists_keeps_its_colon(tmp_path: Path) -> None:
    odd = tmp_path / "clip:2"
    odd.write_bytes(b"x")
    assert parse_query(QueryRequest(like=(str(odd),))).terms == (Term(file=odd),)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (QueryRequest(), "nothing to search for"),
        (QueryRequest(texts=("dog:0",)), "weight must be above 0"),
        (QueryRequest(texts=("dog:-1",)), "weight must be above 0"),
        (QueryRequest(nots=("cat",)), "every term is negative"),
        (QueryRequest(texts=("dog",), modalities=("smell",)), "unknown modality"),
        (QueryRequest(texts=("dog",), after="last week"), "not a date"),
        (QueryRequest(texts=("dog",), after="2024-02-01", before="2024-01-01"), "later than"),
        (QueryRequest(texts=("dog",), limit=0), "limit"),
    ],
)
def test_parse_query_refuses_what_cannot_run(request_: QueryRequest, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_query(request_)
    assert caught.value.hint


def test_the_box_groups_words_and_splits_at_weights_and_quotes() -> None:
    assert parse_box("a dog on the beach").texts == ("a dog on the beach",)
    assert parse_box("red car:2 blue sky").texts == ("red car:2", "blue sky")
    assert parse_box('"red car" "blue sky"').texts == ("red car", "blue sky")
    assert parse_box('"dog:2"').texts == ("dog:2",)  # a weight, as on the command line
    assert parse_box("dog's bark").texts == ("dog's bark",)  # an apostrophe is no quote
    assert parse_box("http://example.org").texts == ("http://example.org",)
    weighted = parse_query(parse_box("dog:2 cat"))
    assert weighted.terms == (Term("dog", weight=2.0), Term("cat"))


def test_the_box_reads_every_operator() -> None:
    box = (
        '-cat not:dog -"a rainy day" -mud:0.5 like:"/x/a b.jpg" -like:/x/c.wav m:video,AUDIO '
        "modality:depth path:*.mp4 path:holiday/* after:2024-01-01 before:2024-02-01T10:00 "
        "min-duration:5 max-duration:60 min-score:0.2 match:Both sunset"
    )
    assert parse_box(box) == QueryRequest(
        texts=("sunset",),
        nots=("cat", "dog", "a rainy day", "mud:0.5"),
        like=("/x/a b.jpg",),
        not_like=("/x/c.wav",),
        modalities=("video", "AUDIO", "depth"),
        paths=("*.mp4", "holiday/*"),
        after="2024-01-01",
        before="2024-02-01T10:00",
        min_duration=5.0,
        max_duration=60.0,
        min_score=0.2,
        match="both",
    )
    assert parse_box('"m:video"').texts == ("m:video",)  # quoted: a text, never a filter


def test_a_typed_path_is_an_example_or_an_error_never_a_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = tmp_path / "my photos" / "dog.jpg"
    photo.parent.mkdir()
    photo.write_bytes(b"x")
    assert parse_box(str(photo)).like == (str(photo),)  # spaces and all, unquoted
    assert parse_box(f"{photo}:2").like == (f"{photo}:2",)
    monkeypatch.chdir(photo.parent)
    assert parse_box("dog.jpg").like == ("dog.jpg",)
    for missing in ("/no/such/cat.jpg", "~/no-such-folder/x", "./gone.png", "cat.mp4"):
        with pytest.raises(UsageError, match="no such file") as caught:
            parse_box(missing)
        assert "quotes" in caught.value.hint
    assert parse_box('"/no/such/cat.jpg"').texts == ("/no/such/cat.jpg",)


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ("m:", "needs a value"),
        ("-like:", "needs a value"),
        ("min-score:high", "not a number"),
        ("-m:video", "negative"),
        ("match:", "needs a value"),
        ("dog match:all", "unknown match mode 'all'"),
        ("-match:both", "negative"),
    ],
)
def test_box_mistakes_are_usage_errors(box: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_box(box)


@pytest.mark.parametrize(
    "request_",
    [
        QueryRequest(texts=("sunset beach", "dog:2", "x.jpg", "-5"), nots=("a cat",)),
        QueryRequest(like=("/x/with space.jpg",), not_like=("/y/z.wav:2",)),
        QueryRequest(texts=("m:video",), modalities=("video", "audio"), paths=("*.jpg",)),
        QueryRequest(texts=("q",), after="2024-01-01", before="2024-01-02T03:04", min_score=0.5),
        QueryRequest(texts=("q",), min_duration=1.5, max_duration=9.0),
        QueryRequest(texts=("q",), match="sound"),
        QueryRequest(texts=("q",), modalities=("video",), match="both"),
    ],
)
def test_format_box_is_read_back_as_the_same_request(request_: QueryRequest) -> None:
    assert parse_box(format_box(request_)) == request_


def test_no_match_says_why() -> None:
    plain = Query((Term("x"),))
    images = (Modality.IMAGE,)
    assert "nothing indexed yet" in explain_no_match(plain, (), ROOT)
    assert "lbsearch index" in explain_no_match(plain, (), ROOT)
    only_video = Query((Term("x"),), modalities=(Modality.VIDEO,))
    assert "no video files (it has image)" in explain_no_match(only_video, images, ROOT)
    assert "fewer filters" in explain_no_match(Query((Term("x"),), after=1.0), images, ROOT)
    scored = explain_no_match(Query((Term("x"),), min_score=0.9), images, ROOT)
    assert "0.9" in scored and "lower" in scored
    assert explain_no_match(plain, images, ROOT) == "no match"


@pytest.mark.parametrize("mode", ["any", "both", "picture", "sound"])
def test_match_in_the_box_is_the_query_match_mode(mode: str) -> None:
    query = parse_query(parse_box(f"a dog barking match:{mode}"))
    assert query.match.value == mode
    assert query.terms[0].text == "a dog barking"
