#!/usr/bin/env python3
"""Writes the bad-input corpus of wire version 2: bad-*.bin plus expected.tsv (file, the error code
ClientFrame::decode must give, the code RelayFrame::decode must give).

Run once; the files are committed and checked by core/tests/corpus.rs. Fuzz crashers are
added by hand (copy the file here as bad-fuzz-<what>.bin and add a line to expected.tsv).
"""
import struct
from pathlib import Path

M, V, U, K, T = "MALFORMED_FRAME", "WIRE_VERSION", "UNKNOWN_FRAME", "WRONG_KIND", "FRAME_TOO_LARGE"


def u8(v): return struct.pack(">B", v)
def u16(v): return struct.pack(">H", v)
def u32(v): return struct.pack(">I", v)
def u64(v): return struct.pack(">Q", v)
def f(t, body=b"", version=2): return bytes([version, t]) + body


# PROTOCOL.md, "Envelope": at least 90 + 64 + 16 bytes.
MIN_ENVELOPE = 170


def env(kind=1, length=MIN_ENVELOPE, version=1):
    return bytes([version, kind]) + bytes(i % 256 for i in range(length - 2))


tag = bytes([0x11] * 16)
# HELLO v2: after_seq, member_key [32], proof [64], then channel_count and the tags.
member_key, proof = bytes([0x4B] * 32), bytes([0x50] * 64)
hello_head = u64(0) + member_key + proof
assert len(hello_head) == 104
# The layout before the membership proof: after_seq, verifier [32], channel_count, tags.
verifier_head = u64(0) + bytes([0x56] * 32)
# WELCOME v2: relay_time, head_seq, snapshot_seq, presence, verifier_state, access, then
# max_frame_bytes, rate_burst, rate_per_second (u32), max_history_events, max_history_bytes
# (u64).
welcome_head = u64(1) + u64(2) + u64(0) + u32(1)
welcome_limits = u32(1 << 20) + u32(120) + u32(60) + u64(100_000) + u64(1 << 27)
welcome = welcome_head + u8(1) + u8(0) + welcome_limits
assert len(welcome) == 58
ack = bytes(16) + u64(1) + u64(2) + u64(3)
# REFUSED: session_id, counter, code, retry_after_ms, then message_len and message.
refused_head = bytes(16) + u64(1) + u16(6) + u32(1000)

cases = [
    # frame header
    ("empty", b"", M, M),
    ("only-version", b"\x02", M, M),
    ("version-0", f(0x03, u64(1), version=0), V, V),
    ("version-3", f(0x81, welcome, version=3), V, V),
    ("unknown-type", f(0x7F, u64(0)), U, U),
    ("type-zero", f(0x00), U, U),
    ("type-after-relay-range", f(0x8F, u64(0)), U, U),
    # well-formed frames of wire version 1, which this version no longer speaks
    ("v1-hello", f(0x01, verifier_head + b"\x01" + tag, version=1), V, V),
    ("v1-publish", f(0x02, env(1, 106), version=1), V, V),
    ("v1-welcome", f(0x81, welcome_head + u8(1), version=1), V, V),
    ("v1-error", f(0x88, u16(7) + b"\x01" + u16(2) + b"hi", version=1), V, V),
    # client -> relay (unknown to the relay decoder)
    ("hello-truncated-after-seq", f(0x01, u64(0)[:5]), M, U),
    ("hello-truncated-member-key", f(0x01, u64(0) + member_key[:20]), M, U),
    ("hello-truncated-proof", f(0x01, u64(0) + member_key + proof[:40]), M, U),
    ("hello-proof-63", f(0x01, u64(0) + member_key + proof[:63]), M, U),
    ("hello-no-channel-count", f(0x01, hello_head), M, U),
    ("hello-channel-count-0", f(0x01, hello_head + b"\x00"), M, U),
    ("hello-channel-count-17", f(0x01, hello_head + b"\x11" + tag * 17), M, U),
    ("hello-channel-count-255", f(0x01, hello_head + b"\xff" + tag * 2), M, U),
    ("hello-truncated-tag", f(0x01, hello_head + b"\x02" + tag + tag[:8]), M, U),
    ("hello-trailing", f(0x01, hello_head + b"\x01" + tag + b"\x00"), M, U),
    # The layout with a verifier and no proof, under this version byte: with one tag it
    # ends inside the proof; with 16, the proof takes the count byte and 63 bytes of tags,
    # and the next tag byte (0x11) reads as a channel_count of 17.
    ("hello-verifier-layout", f(0x01, verifier_head + b"\x01" + tag), M, U),
    ("hello-verifier-layout-16", f(0x01, verifier_head + b"\x10" + tag * 16), M, U),
    ("publish-no-envelope", f(0x02), M, U),
    ("publish-short-envelope", f(0x02, env(1, MIN_ENVELOPE - 1)), M, U),
    ("publish-v1-sized-envelope", f(0x02, env(1, 106)), M, U),
    ("publish-wrong-kind", f(0x02, env(2)), K, U),
    ("publish-envelope-version-2", f(0x02, env(1, version=2)), V, U),
    ("sync-truncated", f(0x03, u64(7) + u64(9)[:7]), M, U),
    ("sync-without-token", f(0x03, u64(7)), M, U),
    ("sync-trailing", f(0x03, u64(7) + u64(9) + b"\x00"), M, U),
    ("snapshot-put-truncated-seq", f(0x04, b"\x00\x01"), M, U),
    ("snapshot-put-wrong-kind", f(0x04, u64(9) + env(1)), K, U),
    ("ephemeral-key-wrap-kind", f(0x05, env(4)), K, U),
    # ROTATE: key_epoch u32, member_key [32], proof [64], upto_seq u64, snapshot envelope.
    ("rotate-truncated-epoch", f(0x06, u32(1)[:3]), M, U),
    ("rotate-truncated-proof", f(0x06, u32(1) + member_key + proof[:50]), M, U),
    ("rotate-no-envelope", f(0x06, u32(1) + member_key + proof + u64(9)), M, U),
    ("rotate-wrong-kind", f(0x06, u32(1) + member_key + proof + u64(9) + env(1)), K, U),
    # relay -> client (unknown to the client decoder)
    ("welcome-truncated", f(0x81, welcome[:20]), U, M),
    ("welcome-v1-layout", f(0x81, welcome_head + u8(1)), U, M),
    ("welcome-truncated-limits", f(0x81, welcome[:-1]), U, M),
    ("welcome-verifier-state-2", f(0x81, welcome_head + u8(2) + u8(0) + welcome_limits), U, M),
    ("welcome-access-3", f(0x81, welcome_head + u8(1) + u8(3) + welcome_limits), U, M),
    ("welcome-trailing", f(0x81, welcome + b"\x00"), U, M),
    ("ack-truncated-session", f(0x82, bytes(15)), U, M),
    ("ack-duplicate-2", f(0x82, ack + b"\x02"), U, M),
    ("ack-trailing", f(0x82, ack + b"\x00\x00"), U, M),
    ("event-no-envelope", f(0x83, u64(1) + u64(2)), U, M),
    ("event-truncated-relay-time", f(0x83, u64(1) + b"\x00\x00"), U, M),
    ("event-short-envelope", f(0x83, u64(1) + u64(2) + env(1, MIN_ENVELOPE - 1)), U, M),
    ("event-wrong-kind", f(0x83, u64(1) + u64(2) + env(3)), U, K),
    ("event-envelope-version-0", f(0x83, u64(1) + u64(2) + env(1, version=0)), U, V),
    ("snapshot-short-envelope", f(0x84, u64(1) + env(2, 90)), U, M),
    ("snapshot-wrong-kind", f(0x84, u64(1) + env(1)), U, K),
    ("caught-up-truncated", f(0x85, b"\x00" * 4), U, M),
    ("caught-up-without-token", f(0x85, u64(3)), U, M),
    ("relay-ephemeral-wrong-kind", f(0x86, env(1)), U, K),
    ("presence-trailing", f(0x87, u32(2) + b"\x00"), U, M),
    ("error-truncated-code", f(0x88, b"\x00"), U, M),
    ("error-fatal-2", f(0x88, u16(1) + b"\x02" + u16(0)), U, M),
    ("error-message-len-1025", f(0x88, u16(1) + b"\x00" + u16(1025) + b"x" * 1025), U, M),
    ("error-message-len-past-end", f(0x88, u16(1) + b"\x00" + u16(1000) + b"short"), U, M),
    ("error-invalid-utf8", f(0x88, u16(1) + b"\x00" + u16(3) + b"a\xffb"), U, M),
    ("error-trailing", f(0x88, u16(1) + b"\x00" + u16(1) + b"ab"), U, M),
    ("notify-json-len-4g", f(0x89, u32(0xFFFFFFFF) + b"{}"), U, M),
    ("notify-invalid-utf8", f(0x89, u32(2) + b"\xc3\x28"), U, M),
    ("notify-trailing", f(0x89, u32(2) + b"{}}"), U, M),
    ("snapshot-stored-trailing", f(0x8A, u64(3) + b"\x00"), U, M),
    ("refused-empty", f(0x8B), U, M),
    ("refused-truncated-session", f(0x8B, bytes(15)), U, M),
    ("refused-truncated-retry-after", f(0x8B, refused_head[:-1]), U, M),
    ("refused-no-message-len", f(0x8B, refused_head), U, M),
    ("refused-message-len-1025", f(0x8B, refused_head + u16(1025) + b"x" * 1025), U, M),
    ("refused-message-len-past-end", f(0x8B, refused_head + u16(10) + b"short"), U, M),
    ("refused-invalid-utf8", f(0x8B, refused_head + u16(2) + b"\xc3\x28"), U, M),
    ("refused-trailing", f(0x8B, refused_head + u16(2) + b"ok!"), U, M),
    ("access-empty", f(0x8C), U, M),
    ("access-3", f(0x8C, u8(3)), U, M),
    ("access-255", f(0x8C, u8(255)), U, M),
    ("access-trailing", f(0x8C, u8(0) + b"\x00"), U, M),
    ("challenge-empty", f(0x8D), U, M),
    ("challenge-31", f(0x8D, bytes(range(31))), U, M),
    ("challenge-33", f(0x8D, bytes(range(33))), U, M),
    ("key-epoch-truncated", f(0x8E, u32(1)[:2]), U, M),
    ("key-epoch-trailing", f(0x8E, u32(1) + b"\x00"), U, M),
]

here = Path(__file__).parent
table = here / "expected.tsv"
# Fuzz crashers (bad-fuzz-*) were added by hand: keep their files and lines.
kept = [l for l in table.read_text().splitlines() if l.startswith("bad-fuzz-")] if table.exists() else []
# Files of cases that no longer exist (an older wire version's) go.
for old in here.glob("bad-*.bin"):
    if not old.name.startswith("bad-fuzz-"):
        old.unlink()
lines = ["# file\tClientFrame::decode\tRelayFrame::decode  (written by generate.py)"]
for name, data, client, relay in cases:
    (here / f"bad-{name}.bin").write_bytes(data)
    lines.append(f"bad-{name}.bin\t{client}\t{relay}")
lines += kept
table.write_text("\n".join(lines) + "\n")
print(f"wrote {len(cases)} files")
