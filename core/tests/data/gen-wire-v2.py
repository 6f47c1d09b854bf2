#!/usr/bin/env python3
"""Writes wire-v2.json: one example (or more) of every frame of PROTOCOL.md, wire version 2,
with its bytes, and golden event bodies (the JSON inside an event envelope).

An implementation of the byte tables independent of the Rust codec: core/tests/golden.rs
checks that the Rust encoder produces these bytes and the decoder reads these values.
Run once per wire version. A changed golden file means a wire change: bump VERSION.

    python3 core/tests/data/gen-wire-v2.py   # standard library only
"""
import json
import struct
from pathlib import Path

VERSION = 2
# PROTOCOL.md, "Envelope": 90-byte header + 64-byte minimum padded plaintext + 16-byte tag.
MIN_ENVELOPE_LEN = 90 + 64 + 16
MAX_MESSAGE = 1024


def envelope(kind, length, fill):
    # version 1, kind, then a recognisable pattern (the codec treats the rest as opaque).
    assert length >= MIN_ENVELOPE_LEN
    return bytes([1, kind]) + bytes((fill + i) % 256 for i in range(length - 2))


def u8(v): return struct.pack(">B", v)
def u16(v): return struct.pack(">H", v)
def u32(v): return struct.pack(">I", v)
def u64(v): return struct.pack(">Q", v)


def frame(t, body): return bytes([VERSION, t]) + body


def text(s):
    b = s.encode()
    assert len(b) <= MAX_MESSAGE
    return u16(len(b)) + b


verifier = bytes(range(0x20, 0x40))
tags = [bytes([0x10 + i] * 16) for i in range(3)]
session = bytes(range(0xA0, 0xB0))
# The shortest envelope, one of a round length, and one longer than 255 bytes.
ev, snap, eph = envelope(1, MIN_ENVELOPE_LEN, 0), envelope(2, 300, 0x40), envelope(3, 200, 0x80)
msg = "room is full — try later"
note = '{"type":"admitted","user":"ana"}'


def limits(max_frame, burst, rate, events, history_bytes):
    fields = {"max_frame_bytes": max_frame, "rate_burst": burst, "rate_per_second": rate,
              "max_history_events": events, "max_history_bytes": history_bytes}
    return fields, u32(max_frame) + u32(burst) + u32(rate) + u64(events) + u64(history_bytes)


def welcome(relay_time, head, snapshot, presence, verifier_state, access, lim):
    lim_fields, lim_bytes = lim
    fields = {"relay_time": relay_time, "head_seq": head, "snapshot_seq": snapshot,
              "presence": presence, "verifier_state": verifier_state, "access": access,
              "limits": lim_fields}
    body = u64(relay_time) + u64(head) + u64(snapshot) + u32(presence) + u8(verifier_state) \
        + u8(access) + lim_bytes
    assert len(body) == 8 + 8 + 8 + 4 + 1 + 1 + 4 + 4 + 4 + 8 + 8
    return ("WELCOME", fields, frame(0x81, body))


def refused(counter, code, retry_after_ms, message):
    return ("REFUSED",
            {"session_id": session.hex(), "counter": counter, "code": code,
             "retry_after_ms": retry_after_ms, "message": message},
            frame(0x8B, session + u64(counter) + u16(code) + u32(retry_after_ms) + text(message)))


client = [
    ("HELLO", {"after_seq": 42, "verifier": verifier.hex(), "channels": [t.hex() for t in tags]},
     frame(0x01, u64(42) + verifier + u8(len(tags)) + b"".join(tags))),
    ("PUBLISH", {"envelope": ev.hex()}, frame(0x02, ev)),
    ("SYNC", {"after_seq": 0x0102030405060708}, frame(0x03, u64(0x0102030405060708))),
    ("SNAPSHOT_PUT", {"upto_seq": 1000, "envelope": snap.hex()}, frame(0x04, u64(1000) + snap)),
    ("EPHEMERAL", {"envelope": eph.hex()}, frame(0x05, eph)),
]
relay = [
    # A writer that matched the verifier, with a relay's default limits; a pending guest
    # that created the room, with the largest values every field holds.
    welcome(1_795_000_000_000, 17, 10, 3, 1, 0,
            limits(1_048_576, 120, 60, 100_000, 128 * 1024 * 1024)),
    welcome(1_795_000_000_001, 0, 0, 1, 0, 2,
            limits(0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 2**64 - 1, 2**64 - 2)),
    ("ACK", {"session_id": session.hex(), "counter": 5, "seq": 18, "relay_time": 1_795_000_000_123,
             "duplicate": True},
     frame(0x82, session + u64(5) + u64(18) + u64(1_795_000_000_123) + u8(1))),
    ("EVENT", {"seq": 18, "relay_time": 1_795_000_000_123, "envelope": ev.hex()},
     frame(0x83, u64(18) + u64(1_795_000_000_123) + ev)),
    ("SNAPSHOT", {"seq": 10, "envelope": snap.hex()}, frame(0x84, u64(10) + snap)),
    ("CAUGHT_UP", {"head_seq": 17}, frame(0x85, u64(17))),
    ("EPHEMERAL", {"envelope": eph.hex()}, frame(0x86, eph)),
    ("PRESENCE", {"count": 70000}, frame(0x87, u32(70000))),
    ("ERROR", {"code": 7, "fatal": True, "message": msg},
     frame(0x88, u16(7) + u8(1) + text(msg))),
    ("ERROR", {"code": 513, "fatal": False, "message": ""},
     frame(0x88, u16(513) + u8(0) + u16(0))),
    ("NOTIFY", {"json": note}, frame(0x89, u32(len(note.encode())) + note.encode())),
    ("SNAPSHOT_STORED", {"seq": 10}, frame(0x8A, u64(10))),
    # RATE_LIMITED with a hint and a non-ASCII message; TOO_LARGE with no hint and the
    # longest message; a code this version does not know, with an empty message.
    refused(6, 6, 1500, "slow down — 60 frames/s"),
    refused(0xFFFFFFFFFFFFFFFF, 5, 0, "é" * (MAX_MESSAGE // 2)),
    refused(7, 0x1234, 0xFFFFFFFF, ""),
    ("ACCESS", {"access": 0}, frame(0x8C, u8(0))),
    ("ACCESS", {"access": 1}, frame(0x8C, u8(1))),
    ("ACCESS", {"access": 2}, frame(0x8C, u8(2))),
]


# Event bodies (the plaintext body of a kind-1 envelope; PROTOCOL.md, "Event bodies").
# Canonical form: compact JSON, UTF-8 unescaped, keys in the order the protocol lists them
# (an operation: type, collection, then id, fields / items / claim fields; an item: wall,
# counter, op) and the keys of `fields`, and of every object inside a field's value, sorted
# by their UTF-8 bytes.
def dumps(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def fields(value):
    if isinstance(value, dict):
        return {k: fields(v) for k, v in sorted(value.items(), key=lambda kv: kv[0].encode())}
    if isinstance(value, list):
        return [fields(v) for v in value]
    return value


def created(coll, id, f): return {"type": "created", "collection": coll, "id": id, "fields": fields(f)}
def updated(coll, id, f): return {"type": "updated", "collection": coll, "id": id, "fields": fields(f)}
def deleted(coll, id): return {"type": "deleted", "collection": coll, "id": id}


def reordered(coll, items):
    return {"type": "reordered", "collection": coll,
            "items": [{"id": i, "sortOrder": k} for i, k in items]}


def claimed(coll, id, by, name, avatar):
    return {"type": "claimed", "collection": coll, "id": id,
            "claimedBy": by, "claimedByName": name, "claimedByAvatar": avatar}


device = bytes([0xD5] * 16)
wall = 1_795_000_000_000


def stamp(w, c): return {"wall": w, "counter": c, "device": device.hex()}


bare = updated("tasks", "t-1", {"title": "Écrire le plan\n« v2 »", "done": True, "estimate": 3,
                                "tags": ["a", "b\u0001"], "owner": None})
batch_ops = [
    (wall, 0, created("tasks", "t-2", {"title": "Ship", "sortOrder": "V", "meta": {"z": 1, "a": [1, 2]},
                                       "Zeta": False, "id": "t-2", "ñ": "x"})),
    (wall, 1, updated("tasks", "t-2", {"done": True})),
    (wall + 7, 0, reordered("tasks", [("t-2", "Vk"), ("t-1", "W")])),
    (wall + 7, 1, claimed("tasks", "t-2", "u1", "Ana", None)),
    (wall + 7, 2, claimed("tasks", "t-1", None, None, None)),
    (wall + 9, 4294967295, deleted("tasks", "t-3")),
]
batch = {"type": "batch",
         "ops": [{"wall": w, "counter": c, "op": op} for w, c, op in batch_ops]}
# The same batch as another implementation might write it: spaces, other key orders. It
# must decode to the same operations; it is not what this implementation writes.
loose = ('{ "ops" : [ ' + " , ".join(
    '{"op": %s, "counter": %d, "wall": %d}' % (json.dumps(op, ensure_ascii=True), c, w)
    for w, c, op in batch_ops) + ' ], "type": "batch" }')
max_stamp = max((w, c) for w, c, _ in batch_ops)

event_bodies = [
    {"name": "bare operation", "canonical": True, "stamp": stamp(wall, 3),
     "body": dumps(bare), "ops": [{"wall": wall, "counter": 3, "op": bare}]},
    {"name": "batch of every operation type", "canonical": True, "stamp": stamp(*max_stamp),
     "body": dumps(batch),
     "ops": [{"wall": w, "counter": c, "op": op} for w, c, op in batch_ops]},
    {"name": "batch of one", "canonical": False, "stamp": stamp(wall + 1, 0),
     "body": dumps({"type": "batch", "ops": [{"wall": wall, "counter": 5, "op": deleted("c", "x")}]}),
     "ops": [{"wall": wall, "counter": 5, "op": deleted("c", "x")}]},
    {"name": "batch in another writer's layout", "canonical": False, "stamp": stamp(*max_stamp),
     "body": loose,
     "ops": [{"wall": w, "counter": c, "op": op} for w, c, op in batch_ops]},
]

doc = {
    "comment": "Golden frames of wire version 2 (PROTOCOL.md) and golden event bodies. "
               "Generated by gen-wire-v2.py, checked by core/tests/golden.rs. A changed golden "
               "file means a wire change: bump the version.",
    "version": VERSION,
    "client": [{"frame": n, "fields": f, "hex": b.hex()} for n, f, b in client],
    "relay": [{"frame": n, "fields": f, "hex": b.hex()} for n, f, b in relay],
    "event_bodies": event_bodies,
}
out = Path(__file__).with_name("wire-v2.json")
out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
print(f"wrote {out}")
