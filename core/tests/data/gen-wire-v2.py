#!/usr/bin/env python3
"""Writes wire-v2.json: one example (or more) of every frame of PROTOCOL.md, wire version 2,
with its bytes, and golden event bodies (the JSON inside an event envelope).

An implementation of the byte tables independent of the Rust codec: core/tests/golden.rs
checks that the Rust encoder produces these bytes and the decoder reads these values.
Run once per wire version. A changed golden file means a wire change: bump VERSION.

The HELLO example carries a real membership proof (PROTOCOL.md, "Membership proof"):
HKDF-SHA256 from hmac/hashlib and Ed25519 from the reference code of RFC 8032, section 6
(below, checked against the RFC's test vectors on every run), so the proof is a golden
value too (Ed25519 signatures are deterministic).

    python3 core/tests/data/gen-wire-v2.py   # standard library only
"""
import hashlib
import hmac
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


# Ed25519, the reference implementation of RFC 8032, section 6 (slow, not constant-time:
# for test vectors only).
P = 2**255 - 19
Q = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def sha512(s): return hashlib.sha512(s).digest()


def point_add(a, b):
    A, B = (a[1] - a[0]) * (b[1] - b[0]) % P, (a[1] + a[0]) * (b[1] + b[0]) % P
    C, Dd = 2 * a[3] * b[3] * D % P, 2 * a[2] * b[2] % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F, G * H, F * G, E * H)


def point_mul(s, p):
    q = (0, 1, 1, 0)  # the neutral element
    while s > 0:
        if s & 1:
            q = point_add(q, p)
        p = point_add(p, p)
        s >>= 1
    return q


def point_equal(a, b):
    if (a[0] * b[2] - b[0] * a[2]) % P != 0:
        return False
    return (a[1] * b[2] - b[1] * a[2]) % P == 0


def recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


G_Y = 4 * pow(5, P - 2, P) % P
G_X = recover_x(G_Y, 0)
G = (G_X, G_Y, 1, G_X * G_Y % P)


def point_compress(p):
    zinv = pow(p[2], P - 2, P)
    x, y = p[0] * zinv % P, p[1] * zinv % P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def point_decompress(s):
    if len(s) != 32:
        raise ValueError("invalid input length for decompression")
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


def secret_expand(secret):
    assert len(secret) == 32
    h = sha512(secret)
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def secret_to_public(secret):
    a, _ = secret_expand(secret)
    return point_compress(point_mul(a, G))


def sha512_modq(s): return int.from_bytes(sha512(s), "little") % Q


def ed25519_sign(secret, msg):
    a, prefix = secret_expand(secret)
    A = point_compress(point_mul(a, G))
    r = sha512_modq(prefix + msg)
    Rs = point_compress(point_mul(r, G))
    h = sha512_modq(Rs + A + msg)
    s = (r + h * a) % Q
    return Rs + int.to_bytes(s, 32, "little")


def ed25519_verify(public, msg, signature):
    if len(public) != 32 or len(signature) != 64:
        return False
    A = point_decompress(public)
    if A is None:
        return False
    R = point_decompress(signature[:32])
    if R is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= Q:
        return False
    h = sha512_modq(signature[:32] + public + msg)
    return point_equal(point_mul(s, G), point_add(R, point_mul(h, A)))


# RFC 8032, section 7.1, TEST 1 to 3: (secret key, public key, message, signature).
for sk, pk, m, sig in [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]:
    sk, pk, m, sig = (bytes.fromhex(x) for x in (sk, pk, m, sig))
    assert secret_to_public(sk) == pk, "RFC 8032 public key"
    assert ed25519_sign(sk, m) == sig, "RFC 8032 signature"
    assert ed25519_verify(pk, m, sig) and not ed25519_verify(pk, m + b"x", sig)


def hkdf(ikm, salt, info, n=32):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out, i = out + t, i + 1
    return out[:n]


def member_proof(room_key, room, challenge):
    """(member_key, proof) of PROTOCOL.md, "Membership proof"; `room` is already NFC."""
    seed = hkdf(room_key, b"sealsync/v1", b"sealsync/v2/member")
    member_key = secret_to_public(seed)
    r = room.encode()
    message = b"sealsync/v2/hello" + u16(len(r)) + r + challenge + member_key
    proof = ed25519_sign(seed, message)
    assert ed25519_verify(member_key, message, proof)
    return member_key, proof


def rotation_proof(room_key, room, challenge, key_epoch, new_room_key):
    """(new member_key, proof) of PROTOCOL.md, "Key rotation": the current member key signs."""
    seed = hkdf(room_key, b"sealsync/v1", b"sealsync/v2/member")
    current = secret_to_public(seed)
    new = secret_to_public(hkdf(new_room_key, b"sealsync/v1", b"sealsync/v2/member"))
    r = room.encode()
    message = b"sealsync/v2/rotate" + u16(len(r)) + r + challenge + u32(key_epoch) + current + new
    proof = ed25519_sign(seed, message)
    assert ed25519_verify(current, message, proof)
    return new, proof


# A room whose id is longer in UTF-8 bytes (10) than in characters (9), its room key (the
# room secret AAECAwQF…HR8), and the challenge the relay sent this socket: the golden HELLO
# carries that challenge's proof.
signed = {"room": "équipe-42", "room_key": bytes(range(32)), "challenge": bytes(range(0xC0, 0xE0))}
member_key, proof = member_proof(signed["room_key"], signed["room"], signed["challenge"])
# The same member rotates the room to the key bytes(0x20..0x40) at epoch 1 on that socket.
rotation = {"key_epoch": 1, "new_room_key": bytes(range(0x20, 0x40))}
new_member_key, rotation_sig = rotation_proof(signed["room_key"], signed["room"], signed["challenge"],
                                              1, rotation["new_room_key"])
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




def hello(after_seq, key, sig, channels):
    return ("HELLO", {"after_seq": after_seq, "member_key": key.hex(), "proof": sig.hex(),
                      "channels": [t.hex() for t in channels]},
            frame(0x01, u64(after_seq) + key + sig + u8(len(channels)) + b"".join(channels)))


# The codec carries any 32 + 64 bytes: only the relay verifies the proof. The second HELLO
# (junk key and proof, the most channels, the largest after_seq a relay accepts) is a
# well-formed frame that a relay refuses.
all_tags = [bytes([0x30 + i]) * 16 for i in range(16)]
client = [
    hello(42, member_key, proof, tags),
    hello(2**53 - 1, bytes([0xEE] * 32), bytes(range(64)), all_tags),
    ("PUBLISH", {"envelope": ev.hex()}, frame(0x02, ev)),
    ("SYNC", {"after_seq": 0x0102030405060708, "token": 0xF1E2D3C4B5A69788},
     frame(0x03, u64(0x0102030405060708) + u64(0xF1E2D3C4B5A69788))),
    ("SNAPSHOT_PUT", {"upto_seq": 1000, "envelope": snap.hex()}, frame(0x04, u64(1000) + snap)),
    ("EPHEMERAL", {"envelope": eph.hex()}, frame(0x05, eph)),
    ("ROTATE", {"key_epoch": 1, "member_key": new_member_key.hex(), "proof": rotation_sig.hex(),
                "upto_seq": 1000, "envelope": snap.hex()},
     frame(0x06, u32(1) + new_member_key + rotation_sig + u64(1000) + snap)),
]
relay = [
    # A writer that matched the member key, with a relay's default limits; a pending guest
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
    ("CAUGHT_UP", {"head_seq": 17, "token": 0x8000000000000001},
     frame(0x85, u64(17) + u64(0x8000000000000001))),
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
    # DUPLICATE_MISMATCH: this (session, counter) is stored with other bytes.
    refused(8, 14, 0, "counter 8 is stored with other bytes"),
    ("ACCESS", {"access": 0}, frame(0x8C, u8(0))),
    ("ACCESS", {"access": 1}, frame(0x8C, u8(1))),
    ("ACCESS", {"access": 2}, frame(0x8C, u8(2))),
    # The challenge the golden HELLO signs, and one of all zero bytes.
    ("CHALLENGE", {"challenge": signed["challenge"].hex()}, frame(0x8D, signed["challenge"])),
    ("CHALLENGE", {"challenge": bytes(32).hex()}, frame(0x8D, bytes(32))),
    ("KEY_EPOCH", {"key_epoch": 1}, frame(0x8E, u32(1))),
    ("KEY_EPOCH", {"key_epoch": 0xFFFFFFFF}, frame(0x8E, u32(0xFFFFFFFF))),
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
    # What the first HELLO's proof signs: the member key is derived from `room_key`, the
    # proof is over `room` (NFC, UTF-8) and `challenge` (a CHALLENGE frame's below).
    "hello_proof": {"room": signed["room"], "room_key": signed["room_key"].hex(),
                    "challenge": signed["challenge"].hex(), "member_key": member_key.hex(),
                    "proof": proof.hex()},
    # The ROTATE's proof: the member key above signs the move to `new_room_key`'s member key.
    "rotation_proof": {"key_epoch": rotation["key_epoch"],
                       "new_room_key": rotation["new_room_key"].hex(),
                       "new_member_key": new_member_key.hex(), "proof": rotation_sig.hex()},
    "relay": [{"frame": n, "fields": f, "hex": b.hex()} for n, f, b in relay],
    "event_bodies": event_bodies,
}
out = Path(__file__).with_name("wire-v2.json")
out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
print(f"wrote {out}")
