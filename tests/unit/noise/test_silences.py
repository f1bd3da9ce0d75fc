"""Silences: states, validation, Set/canUpdate, expire, the v2 API's JSON, filter and order.

Cases ported as data from prometheus/alertmanager (main, 2026) `silence/silence_test.go`:
TestSilenceCanUpdate -> CAN_UPDATE_CASES, TestValidateSilence and TestValidateUTF8Matcher ->
VALIDATE_CASES (Alertmanager's default UTF-8 mode: any non-empty label name is valid),
TestSilenceSet -> test_set_follows_alertmanagers_sequence, TestSilenceExpire ->
EXPIRE_CASES; `api/v2/api.go`'s postSilencesHandler checks -> POST_CASES, its
CheckSilenceMatchesFilterLabels and SortSilences -> FILTER_CASES and test_api_order.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from router.noise.matchers import Matcher, MatcherError, Matchers, MatchType, parse_matchers
from router.noise.silences import (
    GettableSilence,
    PostableSilence,
    PostSilenceResponse,
    Silence,
    SilenceDraft,
    SilenceError,
    SilenceNotFound,
    SilenceState,
    can_update,
    check_post,
    expire,
    gettable_silences,
    matches_filter,
    set_silence,
    silences_for,
    sort_for_api,
    validate_silence,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
S, M, H = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1)
AB = parse_matchers('a="b"')


def sil(
    start: timedelta,
    end: timedelta,
    *,
    id: str = "s1",
    matchers: Matchers = AB,
    updated: timedelta = -H,
    comment: str = "",
) -> Silence:
    """A silence with times relative to NOW."""
    return Silence(
        id=id,
        matchers=matchers,
        starts_at=NOW + start,
        ends_at=NOW + end,
        created_by="alice",
        comment=comment,
        updated_at=NOW + updated,
    )


def draft_of(s: Silence, **changes: object) -> SilenceDraft:
    values: dict[str, object] = {
        "id": s.id,
        "matchers": s.matchers,
        "starts_at": s.starts_at,
        "ends_at": s.ends_at,
        "created_by": s.created_by,
        "comment": s.comment,
    }
    values.update(changes)
    return SilenceDraft.model_validate(values)


class Ids:
    """A deterministic id generator (AM uses random UUIDs)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"00000000-0000-4000-8000-{self.n:012d}"


# (starts, ends relative to NOW, state at NOW): pending before start, active in [start, end).
STATE_CASES = [
    (M, H, SilenceState.PENDING),
    (-M, H, SilenceState.ACTIVE),
    (timedelta(0), H, SilenceState.ACTIVE),
    (-H, -M, SilenceState.EXPIRED),
    (-H, timedelta(0), SilenceState.EXPIRED),  # AM's CurrentState: the end is exclusive
]


@pytest.mark.parametrize(("start", "end", "want"), STATE_CASES)
def test_state(start: timedelta, end: timedelta, want: SilenceState) -> None:
    assert sil(start, end).state(NOW) is want


def test_silences_for_lists_active_matching_silences_sorted() -> None:
    silences = [
        sil(-M, H, id="b-active"),
        sil(-M, H, id="a-active"),
        sil(M, H, id="pending"),
        sil(-H, -M, id="expired"),
        sil(-M, H, id="other", matchers=parse_matchers('a="c"')),
    ]
    assert silences_for({"a": "b", "x": "y"}, silences, NOW) == ("a-active", "b-active")
    assert silences_for({"a": "c"}, silences, NOW) == ("other",)
    assert silences_for({"z": "b"}, silences, NOW) == ()
    # Once the pending one starts it mutes too; once all end, none does.
    assert "pending" in silences_for({"a": "b"}, silences, NOW + M)
    assert silences_for({"a": "b"}, silences, NOW + 2 * H) == ()


# (matchers, start, end relative to NOW, error or None)
VALIDATE_CASES: list[tuple[list[Matcher], timedelta, timedelta, str | None]] = [
    ([Matcher(name="a", value="b")], timedelta(0), timedelta(0), None),
    ([], timedelta(0), timedelta(0), "at least one matcher required"),
    (
        [Matcher(name="a", value="b"), Matcher(name="", value="b")],
        timedelta(0),
        timedelta(0),
        'invalid label matcher 1: invalid label name ""',
    ),
    # UTF-8 mode (Alertmanager's default): these names are valid.
    ([Matcher(name="00", value="a")], timedelta(0), timedelta(0), None),
    ([Matcher(name="🙂", value="a")], timedelta(0), timedelta(0), None),
    ([Matcher(name="a", value="🙂")], timedelta(0), timedelta(0), None),
    (
        [Matcher(name="a", value=""), Matcher(name="b", value=".*", type=MatchType.REGEX)],
        timedelta(0),
        timedelta(0),
        "at least one matcher must not match the empty string",
    ),
    (
        [Matcher(name="a", value="x|", type=MatchType.REGEX)],
        timedelta(0),
        H,
        "at least one matcher must not match the empty string",
    ),
    # `!=` and `!~` do not count as matching "" (AM's matchesEmpty), even though they do.
    ([Matcher(name="a", value="b", type=MatchType.NOT_EQUAL)], timedelta(0), H, None),
    ([Matcher(name="a", value="b", type=MatchType.NOT_REGEX)], timedelta(0), H, None),
    # One matcher that needs a value is enough.
    (
        [Matcher(name="a", value=""), Matcher(name="b", value=".+", type=MatchType.REGEX)],
        timedelta(0),
        H,
        None,
    ),
    ([Matcher(name="a", value="b")], timedelta(0), -S, "end time must not be before start time"),
]


@pytest.mark.parametrize(("matchers", "start", "end", "error"), VALIDATE_CASES)
def test_validate_silence(
    matchers: list[Matcher], start: timedelta, end: timedelta, error: str | None
) -> None:
    if error is None:
        validate_silence(Matchers(tuple(matchers)), NOW + start, NOW + end)
        return
    with pytest.raises(SilenceError) as info:
        validate_silence(Matchers(tuple(matchers)), NOW + start, NOW + end)
    assert str(info.value) == error


@pytest.mark.parametrize(
    ("pattern", "kind"), [("((", MatchType.REGEX), ("))", MatchType.NOT_REGEX)]
)
def test_invalid_regex_never_makes_a_silence(pattern: str, kind: MatchType) -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        Matcher(name="a", value=pattern, type=kind)


# ((old start, old end), (new start, new end), can update in place): TestSilenceCanUpdate.
CAN_UPDATE_CASES = [
    # Expired silence.
    ((-H, -S), (timedelta(0), timedelta(0)), False),
    # Pending silences.
    ((H, 2 * H), (-M, H), False),
    ((H, 2 * H), (M, M), True),
    ((H, 2 * H), (timedelta(0), 2 * H), True),  # set to exactly start now
    # Active silences.
    ((-H, 2 * H), (-M, 2 * H), False),  # the start moved
    ((-H, 2 * H), (-H, -S), False),  # the end in the past
    ((-H, 2 * H), (-H, timedelta(0)), True),
    ((-H, 2 * H), (-H, 3 * H), True),
]


@pytest.mark.parametrize(("old", "new", "ok"), CAN_UPDATE_CASES)
def test_can_update(
    old: tuple[timedelta, timedelta], new: tuple[timedelta, timedelta], ok: bool
) -> None:
    assert can_update(sil(*old), sil(*new, updated=timedelta(0)), NOW) is ok


def test_can_update_never_when_the_matchers_change() -> None:
    old = sil(-H, 2 * H)
    assert not can_update(old, sil(-H, 3 * H, matchers=parse_matchers('a="c"')), NOW)
    reordered = parse_matchers('a="b", c="d"')
    assert not can_update(
        sil(-H, 2 * H, matchers=reordered),
        sil(-H, 2 * H, matchers=parse_matchers('c="d", a="b"')),
        NOW,
    )


def test_active_start_compares_to_the_second() -> None:
    old = sil(-H, 2 * H)
    assert can_update(old, old.with_(starts_at=old.starts_at + timedelta(milliseconds=300)), NOW)


# (state of the silence, expected (start, end, updated) after expire at NOW): TestSilenceExpire.
EXPIRE_CASES = [
    ((M, H), (timedelta(0), timedelta(0), timedelta(0))),  # pending: never ran
    ((-M, H), (-M, timedelta(0), timedelta(0))),  # active: ends now
    ((-H, -M), (-H, -M, -H)),  # expired: unchanged
]


@pytest.mark.parametrize(("times", "want"), EXPIRE_CASES)
def test_expire(
    times: tuple[timedelta, timedelta], want: tuple[timedelta, timedelta, timedelta]
) -> None:
    got = expire(sil(*times), NOW)
    assert (got.starts_at, got.ends_at, got.updated_at) == tuple(NOW + t for t in want)
    assert got.state(NOW) is SilenceState.EXPIRED
    assert got.id == "s1" and got.matchers == AB
    assert expire(got, NOW + M) == got  # idempotent


def test_set_follows_alertmanagers_sequence() -> None:
    """TestSilenceSet, step by step on an injected clock."""
    ids = Ids()
    start1 = NOW

    # A new silence with a fixed start in the future keeps it; it gets an id and updated_at.
    d1 = SilenceDraft(
        matchers=AB, starts_at=start1 + 2 * M, ends_at=start1 + 5 * M, created_by="", comment=""
    )
    out1 = set_silence(d1, None, start1, ids)
    assert out1.expired is None
    sil1 = out1.silence
    assert sil1.id == "00000000-0000-4000-8000-000000000001"
    assert (sil1.starts_at, sil1.ends_at, sil1.updated_at) == (
        start1 + 2 * M,
        start1 + 5 * M,
        start1,
    )

    # No start: it starts now.
    start2 = start1 + M
    d2 = SilenceDraft(matchers=AB, ends_at=start2 + M, created_by="", comment="")
    sil2 = set_silence(d2, None, start2, ids).silence
    assert sil2.id != sil1.id
    assert (sil2.starts_at, sil2.ends_at, sil2.updated_at) == (start2, start2 + M, start2)

    # The same silence posted again, then with a comment: updated in place, same id.
    same = set_silence(draft_of(sil2), sil2, start2, ids)
    assert same.silence.id == sil2.id and same.expired is None
    sil4 = set_silence(draft_of(sil2, comment="c"), sil2, start2, ids).silence
    assert (sil4.id, sil4.comment) == (sil2.id, "c")

    # Extended to end later: in place too.
    start5 = start2 + M
    out5 = set_silence(draft_of(sil4, ends_at=start5 + 100 * M), sil4, start5, ids)
    sil5 = out5.silence
    assert out5.expired is None
    assert (sil5.id, sil5.starts_at, sil5.ends_at, sil5.updated_at, sil5.comment) == (
        sil2.id,
        start2,
        start5 + 100 * M,
        start5,
        "c",
    )

    # New matchers: the old silence is expired (its history kept), the edit is a new silence.
    start6 = start5 + M
    out6 = set_silence(draft_of(sil5, matchers=parse_matchers('a="c"')), sil5, start6, ids)
    sil6, old = out6.silence, out6.expired
    assert old is not None and old.id == sil2.id
    assert (old.starts_at, old.ends_at, old.updated_at, old.matchers) == (
        start2,
        start6,
        start6,
        AB,
    )
    assert sil6.id not in (sil1.id, sil2.id)
    assert (sil6.starts_at, sil6.ends_at, sil6.updated_at, sil6.comment) == (
        start6,
        start5 + 100 * M,
        start6,
        "c",
    )
    assert sil6.matchers == parse_matchers('a="c"')

    # Re-posting the replaced (now expired) silence with a start in the past: a new silence
    # that starts now; the expired one is left as it is.
    start7 = start6 + M
    out7 = set_silence(draft_of(old, starts_at=start1, ends_at=start1 + 5 * M), old, start7, ids)
    sil7 = out7.silence
    assert out7.expired is None
    assert sil7.id not in (sil2.id, sil6.id)
    assert (sil7.starts_at, sil7.ends_at, sil7.updated_at) == (start7, start1 + 5 * M, start7)

    # An invalid update changes nothing: it raises before anything is expired.
    with pytest.raises(SilenceError, match="end time must not be before start time"):
        set_silence(draft_of(sil7, ends_at=start1), sil7, start7, ids)
    assert sil7.state(start7) is SilenceState.ACTIVE


def test_set_with_an_unknown_id_is_not_found() -> None:
    draft = SilenceDraft(id="nope", matchers=AB, ends_at=NOW + H, created_by="", comment="")
    with pytest.raises(SilenceNotFound, match="silence nope not found"):
        set_silence(draft, None, NOW, Ids())


def test_set_of_an_active_silence_with_a_new_start_replaces_it() -> None:
    old = sil(-H, H)
    out = set_silence(draft_of(old, starts_at=NOW - M), old, NOW, Ids())
    assert out.expired is not None and out.expired.ends_at == NOW
    assert out.silence.id != old.id and out.silence.starts_at == NOW


# (posted start, end relative to NOW, error or None): the v2 API handler's checks.
POST_CASES: list[tuple[timedelta | None, timedelta, str | None]] = [
    (timedelta(0), H, None),
    (None, H, None),
    (H, H, "start time must be before end time"),
    (2 * H, H, "start time must be before end time"),
    (-2 * H, -H, "end time can't be in the past"),
]


@pytest.mark.parametrize(("start", "end", "error"), POST_CASES)
def test_check_post(start: timedelta | None, end: timedelta, error: str | None) -> None:
    draft = SilenceDraft(
        matchers=AB,
        starts_at=None if start is None else NOW + start,
        ends_at=NOW + end,
        created_by="alice",
        comment="",
    )
    if error is None:
        check_post(draft, NOW)
        return
    with pytest.raises(SilenceError) as info:
        check_post(draft, NOW)
    assert str(info.value) == error


# (silence matchers, filter, listed): a filter compares matchers, it does not match labels.
FILTER_CASES = [
    ('a="b", c=~"d.*"', "", True),
    ('a="b", c=~"d.*"', 'a="b"', True),
    ('a="b", c=~"d.*"', 'c=~"d.*", a="b"', True),
    ('a="b", c=~"d.*"', 'c="d1"', False),  # would match the labels, is not a matcher of it
    ('a="b", c=~"d.*"', 'a!="b"', False),
    ('a="b", c=~"d.*"', 'a="b", e="f"', False),
]


@pytest.mark.parametrize(("own", "filters", "listed"), FILTER_CASES)
def test_matches_filter(own: str, filters: str, listed: bool) -> None:
    silence = sil(-M, H, matchers=parse_matchers(own))
    assert matches_filter(silence, parse_matchers(filters)) is listed


def test_api_order() -> None:
    silences = [
        sil(-H, -2 * M, id="expired-earlier"),
        sil(M, H, id="pending-later"),
        sil(-H, 2 * H, id="active-later"),
        sil(-H, -M, id="expired-recent"),
        sil(S, H, id="pending-sooner"),
        sil(-H, H, id="active-sooner"),
    ]
    assert [s.id for s in sort_for_api(silences, NOW)] == [
        "active-sooner",
        "active-later",
        "pending-sooner",
        "pending-later",
        "expired-recent",
        "expired-earlier",
    ]


def test_gettable_silence_json_is_alertmanagers() -> None:
    """Byte for byte what Debian's Alertmanager 0.25 answered to `amtool silence add
    alertname=Foo 'env=~"prod|stage"' -d 2h -a alice -c deploy` then `GET /api/v2/silences`."""
    silence = Silence(
        id="6b200abe-49af-4321-a70e-1ecc1e0a3d0b",
        matchers=parse_matchers('alertname="Foo", env=~"prod|stage"'),
        starts_at=datetime(2026, 12, 5, 13, 58, 44, 703112, tzinfo=UTC),
        ends_at=datetime(2026, 12, 5, 15, 58, 44, 701998, tzinfo=UTC),
        created_by="alice",
        comment="deploy",
        updated_at=datetime(2026, 12, 5, 13, 58, 44, 703112, tzinfo=UTC),
    )
    now = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)
    body = json.dumps(gettable_silences([silence], now), separators=(",", ":"))
    assert body == (
        '[{"id":"6b200abe-49af-4321-a70e-1ecc1e0a3d0b","status":{"state":"active"},'
        '"updatedAt":"2026-12-05T13:58:44.703Z","comment":"deploy","createdBy":"alice",'
        '"endsAt":"2026-12-05T15:58:44.701Z","matchers":[{"isEqual":true,"isRegex":false,'
        '"name":"alertname","value":"Foo"},{"isEqual":true,"isRegex":true,"name":"env",'
        '"value":"prod|stage"}],"startsAt":"2026-12-05T13:58:44.703Z"}]'
    )
    assert gettable_silences([silence], now + 3 * H)[0]["status"] == {"state": "expired"}
    annotated = silence.with_(annotations={"ticket": "OPS-1"})
    assert GettableSilence.of(annotated, now).to_json()["annotations"] == {"ticket": "OPS-1"}


def test_postable_silence_as_amtool_sends_it() -> None:
    # amtool silence add alertname=Foo 'env=~"prod|stage"' -d 2h -c deploy (go-swagger body)
    body = (
        '{"comment":"deploy","createdBy":"alice","endsAt":"2026-03-01T14:00:00.000Z",'
        '"matchers":[{"isEqual":true,"isRegex":false,"name":"alertname","value":"Foo"},'
        '{"isEqual":true,"isRegex":true,"name":"env","value":"prod|stage"}],'
        '"startsAt":"2026-03-01T12:00:00.000+01:00"}'
    )
    draft = PostableSilence.model_validate_json(body).to_draft()
    assert draft.id is None
    assert draft.matchers == parse_matchers('alertname="Foo", env=~"prod|stage"')
    assert draft.starts_at == datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    assert draft.ends_at == datetime(2026, 3, 1, 14, 0, tzinfo=UTC)
    assert (draft.created_by, draft.comment) == ("alice", "deploy")
    out = set_silence(draft, None, datetime(2026, 3, 1, 11, 30, tzinfo=UTC), Ids())
    assert PostSilenceResponse(silence_id=out.silence.id).to_json() == {"silenceID": out.silence.id}


def test_postable_round_trip_for_updates() -> None:
    silence = sil(-M, H, id="abc", comment="x")
    body = PostableSilence.of(silence).to_json()
    assert body["id"] == "abc" and "annotations" not in body
    assert PostableSilence.model_validate(body).to_draft() == draft_of(silence)


VALID_BODY: dict[str, object] = {
    "matchers": [{"name": "a", "value": "b", "isRegex": False}],
    "startsAt": "2026-03-01T12:00:00Z",
    "endsAt": "2026-03-01T13:00:00Z",
    "createdBy": "a",
    "comment": "",
}

# (changes to a valid body, the field the error names)
MALFORMED_CASES: list[tuple[dict[str, object], str]] = [
    ({"matchers": []}, "matchers"),  # minItems: 1
    ({"startsAt": None}, "startsAt"),
    ({"startsAt": "2026-03-01T12:00:00"}, "startsAt"),  # no time zone
    ({"matchers": [{"name": "a", "value": "b", "isRegex": "yes"}]}, "isRegex"),
    ({"createdBy": None}, "createdBy"),
]


@pytest.mark.parametrize(("changes", "why"), MALFORMED_CASES)
def test_postable_silence_refuses_malformed_bodies(changes: dict[str, object], why: str) -> None:
    PostableSilence.model_validate(VALID_BODY)  # the base is valid
    body = {k: v for k, v in {**VALID_BODY, **changes}.items() if v is not None}
    with pytest.raises(ValidationError, match=why):
        PostableSilence.model_validate(body)


def test_postable_silence_with_a_bad_regex_says_so() -> None:
    body = PostableSilence.model_validate(
        {
            "matchers": [{"name": "a", "value": "(", "isRegex": True}],
            "startsAt": "2026-03-01T12:00:00Z",
            "endsAt": "2026-03-01T13:00:00Z",
            "createdBy": "a",
            "comment": "",
        }
    )
    with pytest.raises(MatcherError, match="invalid regular expression '\\(': missing \\)"):
        body.to_draft()


def test_the_end_instant_no_longer_mutes_but_can_still_be_extended() -> None:
    # Expiring at NOW unmutes at NOW (the engine can notify in the same step) ...
    ended = expire(sil(-H, H), NOW)
    assert not ended.mutes({"a": "b"}, NOW)
    assert GettableSilence.of(ended, NOW).status.state is SilenceState.EXPIRED
    # ... while AM's Set still treats the end instant as active: extended in place, same id.
    out = set_silence(draft_of(ended, ends_at=NOW + H), ended, NOW, Ids())
    assert out.expired is None and out.silence.id == ended.id


def test_stored_form_round_trips() -> None:
    # The engine logs silences as JSON: what it writes it must read back, equal.
    silence = sil(-M, H, matchers=parse_matchers('a="b", c=~"d|e"'), comment="x").with_(
        annotations={"ticket": "OPS-1"}
    )
    assert Silence.model_validate_json(silence.model_dump_json()) == silence
    assert Silence.model_validate(silence.model_dump()) == silence
