"""Silences with Alertmanager's semantics, as pure functions over frozen models.

Follows Alertmanager's `silence/silence.go` (validateSilence, Set, canUpdate, expire) and
`api/v2` (the post handler's checks, the JSON shapes of `api/v2/openapi.yaml`, the filter and
the sort order of `GET /api/v2/silences`):

- a silence is *pending* before `starts_at`, *active* from `starts_at` until `ends_at`, then
  *expired*: the half-open interval of AM's `CurrentState`, which its API shows and which we
  also use for muting, so that a silence expired at `now` no longer mutes at `now`. AM's
  `Set`/`canUpdate`/`expire` use its internal `getState`, which still counts the instant
  `ends_at` as active (a silence can be extended at the very instant it ends); those functions
  here do the same (`_edit_state`);
- it needs at least one matcher, and not all of its matchers may match the empty string (a
  silence `env=""` or `env=~".*"` alone would silence every alert), where, as in AM, only `=`
  and `=~` count as matching it;
- `set_silence` is AM's `Set`: a new silence gets a fresh id and starts no earlier than now; an
  edit keeps the id only when it does not rewrite history (`can_update`), otherwise the old
  silence is expired and the edit becomes a new silence;
- `expire` ends an active silence now, and turns a pending one into an expired one that never
  ran (start = end = now), as AM does; an expired one is left as it is.

Nothing here stores or clocks anything: callers pass `now` and the id generator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

from router.model import Frozen
from router.noise.matchers import ApiMatcher, Matcher, Matchers, MatchType, go_quote


class SilenceError(ValueError):
    """A silence Alertmanager would refuse (the API's 400); the message says why."""


class SilenceNotFound(LookupError):
    """An update names a silence id that does not exist (the API's 404)."""


class SilenceState(StrEnum):
    EXPIRED = "expired"
    ACTIVE = "active"
    PENDING = "pending"


def state_at(starts_at: datetime, ends_at: datetime, now: datetime) -> SilenceState:
    """AM's CurrentState: pending before the start, active in [start, end), then expired."""
    if now < starts_at:
        return SilenceState.PENDING
    if now < ends_at:
        return SilenceState.ACTIVE
    return SilenceState.EXPIRED


class Silence(Frozen):
    """A stored silence: mutes the alerts its matchers all match while it is active."""

    id: str
    matchers: Matchers
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    created_by: str
    comment: str
    updated_at: AwareDatetime
    annotations: dict[str, str] = Field(default_factory=dict)

    def state(self, now: datetime) -> SilenceState:
        return state_at(self.starts_at, self.ends_at, now)

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.state(now) is SilenceState.ACTIVE and self.matchers.matches(labels)


class SilenceDraft(Frozen):
    """What a user asks for: a new silence (no id) or an edit of silence `id`. A missing
    `starts_at` means now."""

    id: str | None = None
    matchers: Matchers
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime
    created_by: str
    comment: str
    annotations: dict[str, str] = Field(default_factory=dict)


class SetOutcome(Frozen):
    """The result of `set_silence`: the silence to store, and the previous one expired when the
    edit could not be made in place (store both)."""

    silence: Silence
    expired: Silence | None = None


def silences_for(
    labels: Mapping[str, str], silences: Iterable[Silence], now: datetime
) -> tuple[str, ...]:
    """The ids of the silences active at `now` that mute `labels`, sorted (AM's silencedBy)."""
    return tuple(sorted(s.id for s in silences if s.mutes(labels, now)))


def validate_silence(matchers: Matchers, starts_at: datetime, ends_at: datetime) -> None:
    """AM's validateSilence; SilenceError with its message when the silence is not valid."""
    if len(matchers) == 0:
        raise SilenceError("at least one matcher required")
    for i, m in enumerate(matchers):
        if not m.name:
            raise SilenceError(f"invalid label matcher {i}: invalid label name {go_quote(m.name)}")
    if all(_matches_empty(m) for m in matchers):
        raise SilenceError("at least one matcher must not match the empty string")
    if ends_at < starts_at:
        raise SilenceError("end time must not be before start time")


def _matches_empty(m: Matcher) -> bool:
    # AM counts only the positive forms: `a!="x"` matches "" too, yet does not count here.
    if m.type is MatchType.EQUAL:
        return m.value == ""
    if m.type is MatchType.REGEX:
        return m.matches_value("")
    return False


def check_post(draft: SilenceDraft, now: datetime) -> None:
    """The v2 API's checks before it stores a posted silence (postSilencesHandler)."""
    starts_at = draft.starts_at or now
    if starts_at >= draft.ends_at:
        raise SilenceError("start time must be before end time")
    if draft.ends_at < now:
        raise SilenceError("end time can't be in the past")


def set_silence(
    draft: SilenceDraft,
    existing: Silence | None,
    now: datetime,
    new_id: Callable[[], str],
) -> SetOutcome:
    """AM's Silences.Set. `existing` is the stored silence with `draft.id` (None if there is
    none); SilenceNotFound if the draft names an id that does not exist, SilenceError if it is
    not valid. `new_id` makes the id of a new silence (AM: a random UUID)."""
    starts_at = draft.starts_at or now
    validate_silence(draft.matchers, starts_at, draft.ends_at)
    if draft.id is not None and existing is None:
        raise SilenceNotFound(f"silence {draft.id} not found")
    if existing is not None and existing.id != draft.id:
        raise ValueError(f"existing silence {existing.id} is not the draft's {draft.id}")
    candidate = Silence(
        id=draft.id or "",
        matchers=draft.matchers,
        starts_at=starts_at,
        ends_at=draft.ends_at,
        created_by=draft.created_by,
        comment=draft.comment,
        updated_at=now,
        annotations=draft.annotations,
    )
    if existing is not None and can_update(existing, candidate, now):
        return SetOutcome(silence=candidate)
    created = candidate.with_(id=new_id(), starts_at=max(starts_at, now))
    expired = None
    if existing is not None and _edit_state(existing, now) is not SilenceState.EXPIRED:
        expired = expire(existing, now)  # keeps the history of what was silenced until now
    return SetOutcome(silence=created, expired=expired)


def _edit_state(silence: Silence, now: datetime) -> SilenceState:
    """AM's getState, which Set, canUpdate and expire use: the end instant is still active."""
    if now < silence.starts_at:
        return SilenceState.PENDING
    if now > silence.ends_at:
        return SilenceState.EXPIRED
    return SilenceState.ACTIVE


def can_update(old: Silence, new: Silence, now: datetime) -> bool:
    """AM's canUpdate: whether `old` can become `new` in place without changing what it has
    already silenced. Never when the matchers change (same matchers, same order) or `old` has
    expired; an active one keeps its start (to the second) and may not end in the past; a
    pending one may not be moved to start in the past."""
    if tuple(old.matchers) != tuple(new.matchers):
        return False
    state = _edit_state(old, now)
    if state is SilenceState.ACTIVE:
        same_start = int(old.starts_at.timestamp()) == int(new.starts_at.timestamp())
        return same_start and not new.ends_at < now
    if state is SilenceState.PENDING:
        return not new.starts_at < now
    return False


def expire(silence: Silence, now: datetime) -> Silence:
    """AM's expire: an active silence ends now, a pending one starts and ends now (it never
    ran), an expired one is returned unchanged (expiring is idempotent)."""
    state = _edit_state(silence, now)
    if state is SilenceState.EXPIRED:
        return silence
    if state is SilenceState.ACTIVE:
        return silence.with_(ends_at=now, updated_at=now)
    return silence.with_(starts_at=now, ends_at=now, updated_at=now)


def matches_filter(silence: Silence, filters: Iterable[Matcher]) -> bool:
    """The v2 API's `filter` on silences: every filter matcher must be one of the silence's own
    matchers (same name, type and value): it compares matchers, it does not match labels."""
    own = set(silence.matchers)
    return all(f in own for f in filters)


_STATE_ORDER = {SilenceState.ACTIVE: 1, SilenceState.PENDING: 2, SilenceState.EXPIRED: 3}


def sort_for_api(silences: Iterable[Silence], now: datetime) -> list[Silence]:
    """AM's SortSilences: active ones ending soonest first, then pending ones starting soonest,
    then expired ones, most recently ended first."""

    def key(s: Silence) -> tuple[int, float]:
        state = s.state(now)
        if state is SilenceState.ACTIVE:
            return (_STATE_ORDER[state], s.ends_at.timestamp())
        if state is SilenceState.PENDING:
            return (_STATE_ORDER[state], s.starts_at.timestamp())
        return (_STATE_ORDER[state], -s.ends_at.timestamp())

    return sorted(silences, key=key)


# -- the v2 API's JSON shapes (api/v2/openapi.yaml) ------------------------------------------


def _rfc3339(value: datetime) -> str:
    # As go-openapi's strfmt.DateTime writes it: UTC, milliseconds, "Z".
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


ApiTime = Annotated[AwareDatetime, PlainSerializer(_rfc3339, return_type=str, when_used="json")]


class _Api(BaseModel):
    # go-swagger ignores fields it does not know; so do we (e.g. a newer amtool's additions).
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


class ApiSilenceStatus(_Api):
    state: SilenceState


class GettableSilence(_Api):
    """`gettableSilence`: what `GET /api/v2/silences` and `/api/v2/silence/{id}` return, in
    the bytes Alertmanager 0.25 writes (field order, milliseconds); `annotations`, which newer
    Alertmanagers add, only when there are some."""

    id: str
    status: ApiSilenceStatus
    updated_at: ApiTime = Field(alias="updatedAt")
    annotations: dict[str, str] = Field(default_factory=dict)
    comment: str
    created_by: str = Field(alias="createdBy")
    ends_at: ApiTime = Field(alias="endsAt")
    matchers: list[ApiMatcher]
    starts_at: ApiTime = Field(alias="startsAt")

    @classmethod
    def of(cls, silence: Silence, now: datetime) -> GettableSilence:
        return cls(
            id=silence.id,
            status=ApiSilenceStatus(state=silence.state(now)),
            updated_at=silence.updated_at,
            annotations=silence.annotations,
            comment=silence.comment,
            created_by=silence.created_by,
            ends_at=silence.ends_at,
            matchers=[m.to_api() for m in silence.matchers],
            starts_at=silence.starts_at,
        )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(
            mode="json", by_alias=True, exclude={"annotations"} if not self.annotations else None
        )


class PostableSilence(_Api):
    """`postableSilence`: the body of `POST /api/v2/silences` (an `id` edits that silence)."""

    id: str | None = None
    matchers: list[ApiMatcher] = Field(min_length=1)
    starts_at: ApiTime = Field(alias="startsAt")
    ends_at: ApiTime = Field(alias="endsAt")
    created_by: str = Field(alias="createdBy")
    comment: str
    annotations: dict[str, str] | None = None

    def to_draft(self) -> SilenceDraft:
        """The draft this body asks for; MatcherError (a ValueError) if a regex is invalid."""
        return SilenceDraft(
            id=self.id or None,
            matchers=Matchers.from_api(self.matchers),
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            created_by=self.created_by,
            comment=self.comment,
            annotations=self.annotations or {},
        )

    @classmethod
    def of(cls, silence: Silence) -> PostableSilence:
        """The body that re-posts `silence` (as amtool's `silence update` and import do)."""
        return cls(
            id=silence.id,
            matchers=[m.to_api() for m in silence.matchers],
            starts_at=silence.starts_at,
            ends_at=silence.ends_at,
            created_by=silence.created_by,
            comment=silence.comment,
            annotations=silence.annotations or None,
        )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class PostSilenceResponse(_Api):
    """The 200 body of `POST /api/v2/silences`: `{"silenceID": "..."}`."""

    silence_id: str = Field(alias="silenceID")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


def gettable_silences(silences: Sequence[Silence], now: datetime) -> list[dict[str, Any]]:
    """The body of `GET /api/v2/silences` for `silences` (already filtered), in AM's order."""
    return [GettableSilence.of(s, now).to_json() for s in sort_for_api(silences, now)]
