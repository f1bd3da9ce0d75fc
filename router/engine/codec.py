"""The stored form of a group's state: what the engine holds in memory and the backends store.

A frame of `GroupState.to_bytes()` (short field names, defaults left out) with the group's next
deadline in front, so that a restore arms timers without parsing JSON, and the group key (stored
beside it anyway: dict key, changelog record key, SQLite key) left out: every occurrence of it
as a JSON string (`k`, the alerts' `group_key`, incident views) is a NUL byte, which JSON text
never holds, so the substitution is exact whatever the key. Optionally deflated with a preset
dictionary of the state's JSON vocabulary (small records compress about 3x, a plain zlib stream
only 2x):

  b"{..."                               to_bytes() as is (older stores; still read)
  0x01 | float64 LE deadline | JSON*    FRAME_PLAIN (NaN: no timer armed; * key as NUL)
  0x02 | float64 LE deadline | deflate  FRAME_DEFLATE: raw deflate of JSON*, `ZDICT_V1`
  0x05 | float64 LE deadline | uint32 LE n | n bytes as 0x01 | gone       FRAME_PLAIN_GONE
  0x06 | float64 LE deadline | uint32 LE n | n bytes as 0x02 | deflate    FRAME_DEFLATE_GONE

The last two are for a group with compacted resolved alerts (`GroupState.gone`, kept for
`resolved_retention`, so it grows with time at constant load): the JSON leaves `g` out and it
follows on its own as `orjson` (`{"<alert key>":[time, *changes], ...}`; raw deflate without
dictionary in 0x06), not validated by pydantic. It changes only when alerts are compacted or
forgotten, so `Engine` keeps the last section of a group with the mapping it encodes and
neither encodes nor decodes it again while it stays the same (issue 18: it had become most of
what a busy group's state cost to decode and encode after half an hour).

An incident's record (`state.IncidentRecord`, stored beside the groups) is its `to_bytes()`
JSON behind one tag byte, deflated the same way or not (`pack_record`):

  0x03 | JSON                           RECORD_PLAIN
  0x04 | deflate                        RECORD_DEFLATE: raw deflate of the JSON, `ZDICT_V1`

Its timeline grows with the incident (up to `MAX_TIMELINE` alert entries, and every human
one), so it is stored in chunks (`router.engine.incidents.record`): sealed ones of a fixed
number of entries, each a record holding only them in the form above and written once, and a
head with the alerts, their details and the open tail of the timeline, rewritten as it
changes (`pack_head`); the head says how many sealed chunks come before its tail:

  0x07 | uint32 LE sealed | JSON        RECORD_PLAIN_HEAD
  0x08 | uint32 LE sealed | deflate     RECORD_DEFLATE_HEAD

A RECORD_PLAIN or RECORD_DEFLATE record under the head's key (an older store) is a head with
no sealed chunk.

ZDICT_V1 must never change (frames written with it must stay readable): a new dictionary
takes a new tag. The short field names live here and in the aliases of `router.engine.state`
only.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping, Sequence

import orjson

from router.engine.state import INCIDENT_TIMERS, GroupState, IncidentRecord

FRAME_PLAIN = 1
FRAME_DEFLATE = 2
FRAME_PLAIN_GONE = 5
FRAME_DEFLATE_GONE = 6
RECORD_PLAIN = 3
RECORD_DEFLATE = 4
RECORD_PLAIN_HEAD = 7
RECORD_DEFLATE_HEAD = 8
_HEAD = struct.Struct("<Bd")
_LEN = struct.Struct("<I")
_GONE = (FRAME_PLAIN_GONE, FRAME_DEFLATE_GONE)
_WBITS = -15
_MEM_LEVEL = 4
# Field names and common values, the most frequent last (deflate finds near ones cheaper).
ZDICT_V1 = (
    b'"pn":"pm":"dx":"lc":"lt":"ps":"pk":["sp":true,"ep":"resolved_at":"acknowledged_at":'
    b'"escalation_level":"postmortem_done":true,"root_cause":"mitigation":"commander":'
    b'"sla_breaches":["ack","resolve"],"pages":[{"at":"level":1,"targets":[],"key":"by":"router"'
    b'}],"page_keys":[],"updates":[],"status":"investigating","identified","monitoring",'
    b'"kind":"alert_resolved","text":" resolved"},{"at":"kind":"paged","severity_change",'
    b'"sla_breach","acknowledged","escalated","status_update","postmortem",'
    b'"value":"generator_url":"http://","dashboard_url":"https://","ends_at":"'
    b'"group_wait":"group_interval":"repeat_interval":"fl":1,"f":"d":"o":"x":"u":'
    b'"i":[{"v":{"id":"INC-","group_key":"","title":"","severity":"SEV1","channel":"#inc-",'
    b'"impact":"","service":"","team":"","alerts":["alertmanager:"],"opened_at":"",'
    b'"timeline":[{"at":"","kind":"opened","actor":"router","text":"opened by alerts: (SEV1)"},'
    b'{"at":"","kind":"alert_fired","actor":"alertmanager","text":" firing: "},'
    b'{"at":"","kind":"notified","actor":"router","text":"trigger sent to "}],'
    b'"details":{"dedup_key":"","receivers":[""],"started_at":"","alert_info":{"alertmanager:'
    b'":{"name":"","service":null,"started_at":"","ended_at":null}}}},"dk":"","rc":[""],'
    b'"ka":"kr":}],"ie":0}'
    b'{"k":"","a":{"alertmanager:":{"a":{"source":"alertmanager","fingerprint":"",'
    b'"status":"firing","name":"","labels":{"alertname":"","severity":"critical","warning",'
    b'"env":"prod","namespace":"","service":"","pod":"","instance":"","job":"","team":""},'
    b'"annotations":{"description":"","summary":"","runbook_url":"https://"},'
    b'"starts_at":"","received_at":"","severity":"SEV3","team":"","service":"",'
    b'"runbook_url":"https://","receivers":[""],"group_key":"","rule":""},"t":,"n":true,'
    b'"h":[]}},"e":1,"et":,"q":1,"ns":"firing","nv":"SEV3","nt":,"rc":[""],"w":,"r":'
)


def pack(state: GroupState, level: int = 0) -> bytes:
    """The stored form of `state` (stored under `state.key`): deflated at zlib `level` 1-9, 0
    keeps the JSON plain."""
    return pack_as(state, state.key, level)


def pack_as(state: GroupState, key: str, level: int = 0, gone: bytes | None = None) -> bytes:
    """The stored form of `state` under `key`; `gone`: `gone_section(state.gone, level)` if
    the caller has it already."""
    if not state.gone:
        return frame(state.to_bytes(), state.next_deadline(), key, level)
    inner = frame(state.to_bytes(gone=False), state.next_deadline(), key, level)
    tag = FRAME_DEFLATE_GONE if inner[0] == FRAME_DEFLATE else FRAME_PLAIN_GONE
    section = gone if gone is not None else gone_section(state.gone, level)
    return b"".join((bytes((tag,)), inner[1:_HEAD.size], _LEN.pack(len(inner) - _HEAD.size),
                     inner[_HEAD.size:], section))


def gone_section(gone: Mapping[str, tuple[float, ...]], level: int = 0) -> bytes:
    """How a stored form at zlib `level` holds a group's compacted resolved alerts."""
    data = orjson.dumps(gone)
    if level <= 0:
        return data
    packer = zlib.compressobj(min(level, 9), zlib.DEFLATED, _WBITS, _MEM_LEVEL)
    return packer.compress(data) + packer.flush()


def gone_of(data: bytes) -> bytes | None:
    """The `gone` section of a stored form (None: a form without one)."""
    if not data or data[0] not in _GONE:
        return None
    (n,) = _LEN.unpack_from(data, _HEAD.size)
    return data[_HEAD.size + _LEN.size + n:]


def frame(data: bytes, deadline: float | None, key: str, level: int = 0) -> bytes:
    """The stored form of the `to_bytes()` JSON of group `key` whose next deadline is
    `deadline`."""
    when = math.nan if deadline is None else deadline
    body = data.replace(orjson.dumps(key), b"\x00")
    if level <= 0:
        return _HEAD.pack(FRAME_PLAIN, when) + body
    small = len(body) <= _SMALL_BODY
    packer = _packer(level, _SMALL_WBITS if small else _WBITS).copy()
    return _HEAD.pack(FRAME_DEFLATE, when) + packer.compress(body) + packer.flush()


# A state whose JSON fits in a small window with the dictionary (most groups: one alert is
# ~1 KB) is deflated with that window. The stream is the same, byte for byte (no match
# reaches further back than the dictionary's start either way), but the copy of the primed
# compressor, a third of the cost of deflating such a state, copies 37 KB instead of 135 KB.
_SMALL_WBITS = -13
_SMALL_BODY = (1 << 13) - 262 - len(ZDICT_V1)  # zlib's window less MIN_LOOKAHEAD
_PACKERS: dict[tuple[int, int], zlib._Compress] = {}


def _packer(level: int, wbits: int = _WBITS) -> zlib._Compress:
    """A compressor primed with the dictionary: a copy of it skips hashing the dictionary."""
    packer = _PACKERS.get((level, wbits))
    if packer is None:
        packer = _PACKERS[level, wbits] = zlib.compressobj(
            min(level, 9), zlib.DEFLATED, wbits, _MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, ZDICT_V1)
    return packer


def unpacked(data: bytes | bytearray | memoryview, key: str) -> bytes:
    """The `to_bytes()` JSON inside a stored form (any of them) of group `key`."""
    data = bytes(data)
    tag = data[0] if data else 0
    if tag in _GONE:
        body, gone = _split(data, key)
        return body[:-1] + b',"g":' + _gone_json(tag, gone) + b"}"
    if tag == FRAME_DEFLATE:
        body = zlib.decompressobj(_WBITS, ZDICT_V1).decompress(data[_HEAD.size:])
    elif tag == FRAME_PLAIN:
        body = data[_HEAD.size:]
    else:
        return data
    return body.replace(b"\x00", orjson.dumps(key))


def unpack(data: bytes | bytearray | memoryview, key: str,
           gone: Mapping[str, tuple[float, ...]] | None = None) -> GroupState:
    """`pack` reversed, for the group `key` it is stored under (plain JSON is read too);
    `gone`: what its `gone_of` section holds, if the caller has it already."""
    if data and data[0] in _GONE:
        body, section = _split(bytes(data), key)
        state = GroupState.from_bytes(body)
        if gone is None:
            gone = {k: tuple(v) for k, v in orjson.loads(_gone_json(data[0], section)).items()}
        return state.with_(gone=gone)
    return GroupState.from_bytes(unpacked(data, key))


def _gone_json(tag: int, section: bytes) -> bytes:
    if tag == FRAME_DEFLATE_GONE:
        return zlib.decompressobj(_WBITS).decompress(section)
    return section


def _split(data: bytes, key: str) -> tuple[bytes, bytes]:
    """The JSON (without `g`) and the `gone` section of a FRAME_*_GONE form."""
    (n,) = _LEN.unpack_from(data, _HEAD.size)
    start = _HEAD.size + _LEN.size
    inner = bytes((data[0] - 4,)) + data[1:_HEAD.size] + data[start:start + n]
    return unpacked(inner, key), data[start + n:]


def packed_deadline(data: bytes | bytearray | memoryview) -> float | None:
    """The next deadline of a stored form, from its header (plain JSON: parsed)."""
    tag = data[0] if data else 0
    if tag in (FRAME_DEFLATE, FRAME_PLAIN, *_GONE):
        when: float = _HEAD.unpack_from(data)[1]
        return None if when != when else when  # NaN: none
    return _deadline_of_json(bytes(data))


def pack_record(record: IncidentRecord, level: int = 0) -> bytes:
    """The stored form of an incident's record (or of a sealed chunk of its timeline):
    deflated at zlib `level` 1-9, 0 plain."""
    body = record.to_bytes()
    if level <= 0:
        return bytes((RECORD_PLAIN,)) + body
    packer = _packer(level).copy()
    return bytes((RECORD_DEFLATE,)) + packer.compress(body) + packer.flush()


def pack_head(record: IncidentRecord, sealed: int, level: int = 0) -> bytes:
    """The head of a record stored in chunks: `record` holds the timeline after the `sealed`
    chunks stored apart."""
    body = pack_record(record, level)
    tag = RECORD_DEFLATE_HEAD if body[0] == RECORD_DEFLATE else RECORD_PLAIN_HEAD
    return bytes((tag,)) + _LEN.pack(sealed) + body[1:]


def head_chunks(data: bytes | bytearray | memoryview) -> int:
    """How many sealed chunks a record's head says come before its tail (0: an older record,
    whole)."""
    if data and data[0] in (RECORD_PLAIN_HEAD, RECORD_DEFLATE_HEAD):
        n: int = _LEN.unpack_from(data, 1)[0]
        return n
    return 0


def unpack_record(data: bytes | bytearray | memoryview,
                  chunks: Sequence[bytes | bytearray | memoryview] = ()) -> IncidentRecord:
    """`pack_record` or `pack_head` reversed; `chunks`: the stored forms of the head's sealed
    chunks, in order (as many as `head_chunks` says)."""
    data = bytes(data)
    tag = data[0] if data else 0
    if tag in (RECORD_PLAIN_HEAD, RECORD_DEFLATE_HEAD):
        if len(chunks) != head_chunks(data):
            raise ValueError(f"an incident record of {head_chunks(data)} sealed timeline "
                             f"chunks read with {len(chunks)}")
        body = bytes((tag - 4,)) + data[1 + _LEN.size:]
    elif chunks:
        raise ValueError("a whole incident record read with timeline chunks")
    else:
        body = data
    head = _unpack_one(body)
    if not chunks:
        return head
    timeline = [e for chunk in chunks for e in _unpack_one(bytes(chunk)).timeline]
    return head.with_(timeline=(*timeline, *head.timeline))


def _unpack_one(data: bytes) -> IncidentRecord:
    tag = data[0] if data else 0
    if tag == RECORD_DEFLATE:
        return IncidentRecord.from_bytes(zlib.decompressobj(_WBITS, ZDICT_V1).decompress(data[1:]))
    if tag == RECORD_PLAIN:
        return IncidentRecord.from_bytes(data[1:])
    raise ValueError(f"not an incident record (tag {tag})")


_TIMERS = ("w", "u", "r", "f", "x", "qu", "hb")


def _deadline_of_json(data: bytes) -> float | None:
    # Cheaper than a full model validation (plain JSON from an older store).
    raw = orjson.loads(data)
    if not isinstance(raw, dict):
        raise ValueError("a group state must be a JSON object")
    values = [raw[k] for k in _TIMERS if raw.get(k) is not None]
    for inc in raw.get("i") or ():
        values.extend(inc[k] for k in INCIDENT_TIMERS if inc.get(k) is not None)
    return min(values) if values else None
