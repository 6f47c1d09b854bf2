// Checks the independent Node implementation (sealsync.mjs, from PROTOCOL.md) against the
// protocol vectors the Rust core writes (core/tests/data/vectors-v2.json): keys, envelopes
// (sealed byte for byte and opened), event bodies, and the merge scenario's final state.
//
//   node --test tests/vectors/          (tests/vectors/run.sh; ./run test)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import {
  Replica,
  ROOM_TAG,
  canonical,
  channelTag,
  compareHlc,
  decodeEventBody,
  decodeMemberFrame,
  deriveRoomKeys,
  encodeMemberFrame,
  effective,
  encodeEventBody,
  fingerprint,
  open,
  padme,
  parseHeader,
  prove,
  roomKeyFromSecret,
  proveRotation,
  seal,
  sessionKeys,
} from './sealsync.mjs';

const FILE = new URL('../../core/tests/data/vectors-v2.json', import.meta.url);
const text = readFileSync(FILE, 'utf8');
if (text.trim() === '') throw new Error(`${FILE.pathname} is empty`);
const V = JSON.parse(text);

const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (s) => Buffer.from(s, 'hex');
const keys = deriveRoomKeys(roomKeyFromSecret(V.secret), V.room);
const hlcOf = (h) => ({ wall: BigInt(h.wall), counter: h.counter, device: unhex(h.device) });
// As the vector file writes an HLC: a wall above 2^53 − 1 as a decimal string.
const hlcJson = (h) => ({
  wall: BigInt(h.wall) > BigInt(Number.MAX_SAFE_INTEGER) ? String(h.wall) : Number(h.wall),
  counter: h.counter,
  device: hex(h.device),
});
// The vector's stamp (device as 16 numbers) in this implementation's form.
const stampOf = (s) => ({ wall: BigInt(s.wall), raw: { wall: BigInt(s.raw.wall), counter: s.raw.counter, device: Buffer.from(s.raw.device) } });
const stampJson = (s) => ({ wall: Number(s.wall), raw: { wall: Number(s.raw.wall), counter: s.raw.counter, device: [...s.raw.device] } });

test('the vector file is the one this implementation reads', () => {
  assert.equal(V.versions.wire, 2);
  assert.equal(V.versions.envelope, 1);
  assert.equal(V.versions.snapshot, 2);
  for (const section of ['envelopes', 'invalid_bodies', 'accepted_bodies', 'secret_parsing', 'padme']) {
    assert.ok(V[section].length > 0, `${section} is empty`);
  }
  assert.ok(V.merge.events.length > 0, 'merge.events is empty');
});

test('keys: room key, subkeys, fingerprint, member key and proof, channel tags', () => {
  const k = V.keys;
  assert.equal(hex(roomKeyFromSecret(V.secret)), k.room_key);
  assert.equal(hex(keys.eventRoot), k.event_root);
  assert.equal(hex(keys.commitRoot), k.commit_root);
  assert.equal(hex(keys.channelKey), k.channel_key);
  assert.equal(hex(keys.fingerprintBytes), k.fingerprint_bytes);
  assert.equal(fingerprint(keys), k.fingerprint);
  assert.equal(hex(keys.memberSeed), k.member_seed);
  assert.equal(hex(keys.memberKey), k.member_key);
  assert.equal(hex(prove(keys, unhex(k.challenge))), k.proof);
  const r = k.rotation;
  assert.equal(hex(proveRotation(keys, unhex(k.challenge), r.key_epoch, unhex(r.new_member_key))), r.proof);
  assert.equal(hex(deriveRoomKeys(roomKeyFromSecret('AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8'), V.room).memberKey), r.new_member_key);
  for (const [name, tag] of Object.entries(k.channel_tags)) {
    assert.equal(hex(channelTag(keys, name)), tag, `channel ${JSON.stringify(name)}`);
  }
  for (const s of V.session_keys) {
    const sk = sessionKeys(keys, unhex(s.session));
    assert.equal(hex(sk.enc), s.enc, `session-enc of ${s.session}`);
    assert.equal(hex(sk.commit), s.commit, `session-commit of ${s.session}`);
  }
});

test('room secrets: what readers accept and refuse', () => {
  for (const c of V.secret_parsing) {
    let got = null;
    try {
      got = hex(roomKeyFromSecret(c.text));
    } catch (e) {
      if (e.code !== 'INVALID_SECRET') throw e;
    }
    assert.equal(got, c.room_key, `secret ${JSON.stringify(c.text)}`);
  }
});

test('Padmé lengths', () => {
  for (const [inner, padded] of V.padme) assert.equal(padme(inner), padded, `padme(${inner})`);
});

function sealCase(c) {
  return seal(keys, {
    kind: c.kind,
    channelTag: c.channel === null ? ROOM_TAG : channelTag(keys, c.channel),
    session: unhex(c.session),
    counter: BigInt(c.counter),
    nonce: unhex(c.nonce),
    hlc: hlcOf(c.hlc),
    body: unhex(c.body_hex),
  });
}

function checkEnvelope(c) {
  assert.equal(hex(c.channel === null ? ROOM_TAG : channelTag(keys, c.channel)), c.channel_tag, 'channel tag');
  const sealed = sealCase(c);
  assert.equal(hex(sealed.ad), c.associated_data, 'associated data');
  assert.equal(hex(sealed.commitment), c.commitment, 'commitment');
  assert.equal(sealed.inner.length, c.padded_len, 'padded length');
  assert.equal(hex(sealed.inner), c.inner_plaintext, 'inner plaintext');
  assert.equal(hex(sealed.envelope), c.envelope, 'envelope bytes');

  const opened = open(keys, unhex(c.envelope));
  assert.equal(opened.header.kind, c.kind);
  assert.equal(hex(opened.header.session), c.session);
  assert.equal(opened.header.counter, BigInt(c.counter));
  assert.equal(hex(opened.header.channelTag), c.channel_tag);
  assert.deepEqual(hlcJson(opened.hlc), c.hlc, 'inner HLC');
  assert.equal(hex(opened.body), c.body_hex, 'body');

  // Any flipped bit, and another room, fail to open.
  for (const at of [1, 30, 45, 60, 95, unhex(c.envelope).length - 1]) {
    const bad = unhex(c.envelope);
    bad[at] ^= 1;
    assert.throws(() => open(keys, bad), /DECRYPT_FAILED|WRONG_KIND/, `bit flipped at ${at}`);
  }
  const elsewhere = deriveRoomKeys(roomKeyFromSecret(V.secret), `${V.room}-2`);
  assert.throws(() => open(elsewhere, unhex(c.envelope)), /DECRYPT_FAILED/);
  return opened;
}

for (const c of V.envelopes) {
  test(`envelope: ${c.name}`, () => {
    const opened = checkEnvelope(c);
    if (c.kind === 1) {
      const ops = decodeEventBody(opened.body, opened.hlc);
      assert.deepEqual(
        ops.map((s) => ({ hlc: hlcJson(s.hlc), op: JSON.parse(canonical(s.op)) })),
        c.ops,
        'decoded operations',
      );
      // A sender writes exactly these bytes for these operations, under the highest stamp.
      const { body, hlc } = encodeEventBody(ops);
      assert.equal(body, c.body, 'the body a sender writes');
      assert.equal(compareHlc(hlc, opened.hlc), 0, 'the header stamp is the highest');
    }
    if (c.kind === 2) {
      const replica = Replica.fromSnapshot(opened.body.toString('utf8'));
      assert.equal(replica.toSnapshot(), c.body, 'snapshot body read and written back');
    }
    if (c.kind === 3 && c.channel_tag === '0'.repeat(32)) {
      // On the room tag: a member frame (who is online).
      const frame = decodeMemberFrame(opened.body);
      assert.deepEqual(frame, c.member, 'the member frame a receiver reads');
      assert.equal(encodeMemberFrame(frame), c.body, 'the body a sender writes');
    }
  });
}

test('envelope headers: version, length and kind are checked in that order', () => {
  const good = unhex(V.envelopes[0].envelope);
  const v2 = Buffer.from(good);
  v2[0] = 2;
  assert.throws(() => parseHeader(v2.subarray(0, 10)), /WIRE_VERSION/);
  assert.throws(() => parseHeader(good.subarray(0, 169)), /MALFORMED_FRAME/);
  const kind = Buffer.from(good);
  kind[1] = 5;
  assert.throws(() => parseHeader(kind), /WRONG_KIND/);
  // The key epoch is in the associated data: another epoch fails like any altered byte.
  const epoch = Buffer.from(good);
  epoch[5] = 1;
  assert.throws(() => open(keys, epoch), /DECRYPT_FAILED/);
});

test('event bodies a receiver refuses', () => {
  const hlc = { wall: 0n, counter: 0, device: Buffer.alloc(16) };
  for (const c of V.invalid_bodies) {
    assert.throws(() => decodeEventBody(Buffer.from(c.body), hlc), /INVALID_OPERATION/, `${c.why}: ${c.body}`);
  }
});

test('event bodies a receiver accepts', () => {
  for (const c of V.accepted_bodies) {
    const hlc = hlcOf(c.ops[0].hlc);
    hlc.counter = 0;
    hlc.wall = 1_700_000_000_000n;
    const ops = decodeEventBody(Buffer.from(c.body), hlc);
    assert.deepEqual(
      ops.map((s) => ({ hlc: hlcJson(s.hlc), op: JSON.parse(canonical(s.op)) })),
      c.ops,
      `${c.why}: ${c.body}`,
    );
  }
});

// ------------------------------------------------------------------ merge scenario

// Opens and decodes every event as a receiver does: each operation at its effective stamp.
function eventOps() {
  const bySeq = new Map();
  for (const e of V.merge.events) {
    const opened = open(keys, unhex(e.envelope));
    assert.equal(opened.header.kind, 1);
    assert.equal(hex(opened.header.channelTag), hex(ROOM_TAG), 'events carry the room tag');
    assert.equal(opened.body.toString('utf8'), e.body);
    const ops = decodeEventBody(opened.body, opened.hlc).map((s) => ({ hlc: effective(s.hlc, e.relay_time), op: s.op }));
    bySeq.set(e.seq, ops);
  }
  return bySeq;
}

test('merge scenario: every event seals, opens and decodes to its stamped operations', () => {
  const bySeq = eventOps();
  for (const e of V.merge.events) {
    const sealed = seal(keys, {
      kind: 1,
      channelTag: ROOM_TAG,
      session: unhex(e.session),
      counter: BigInt(e.counter),
      nonce: unhex(e.nonce),
      hlc: hlcOf(e.hlc),
      body: Buffer.from(e.body),
    });
    assert.equal(hex(sealed.envelope), e.envelope, `seq ${e.seq}: envelope bytes`);
    const ops = bySeq.get(e.seq);
    assert.deepEqual(
      ops.map((s) => ({ stamp: stampJson(s.hlc), op: JSON.parse(canonical(s.op)) })),
      e.ops,
      `seq ${e.seq}: operations at their effective stamps`,
    );
    if (e.canonical) {
      const raw = decodeEventBody(Buffer.from(e.body), hlcOf(e.hlc));
      assert.equal(encodeEventBody(raw).body, e.body, `seq ${e.seq}: the body a sender writes`);
    }
    for (const [s, want] of ops.map((o, i) => [o.hlc, stampOf(e.ops[i].stamp)])) {
      assert.deepEqual(s, want);
    }
  }
});

function readsOf(replica) {
  return Object.fromEntries(Object.keys(V.merge.final_reads).map((c) => [c, replica.get(c).map((o) => JSON.parse(canonical(o)))]));
}

for (const order of V.merge.orders) {
  test(`merge scenario: events in ${order.name} order give the final state`, () => {
    const bySeq = eventOps();
    const replica = new Replica();
    for (const seq of order.seqs) for (const op of bySeq.get(seq)) replica.apply(op);
    assert.equal(replica.toSnapshot(), V.merge.final_snapshot, 'snapshot bytes');
    assert.deepEqual(readsOf(replica), V.merge.final_reads, 'reads (visible entities, in order)');
    // Reading the final snapshot back and writing it again changes nothing.
    assert.equal(Replica.fromSnapshot(V.merge.final_snapshot).toSnapshot(), V.merge.final_snapshot);
  });
}

test('merge scenario: a snapshot of a prefix joined with the tail is the final state', () => {
  const s = V.merge.snapshot;
  const opened = checkEnvelope(s.envelope);
  assert.equal(opened.header.kind, 2);
  assert.equal(opened.body.toString('utf8'), s.body);

  const bySeq = eventOps();
  const prefix = new Replica();
  for (let seq = 1; seq <= s.upto_seq; seq++) for (const op of bySeq.get(seq)) prefix.apply(op);
  assert.equal(prefix.toSnapshot(), s.body, 'this implementation snapshots the prefix to the same bytes');

  const replica = new Replica();
  replica.merge(Replica.fromSnapshot(opened.body.toString('utf8')));
  for (const seq of s.then_seqs) for (const op of bySeq.get(seq)) replica.apply(op);
  assert.equal(replica.toSnapshot(), V.merge.final_snapshot);
  assert.deepEqual(readsOf(replica), V.merge.final_reads);

  // The join is commutative and idempotent: the final state joined with the prefix, twice.
  const joined = Replica.fromSnapshot(V.merge.final_snapshot);
  joined.merge(Replica.fromSnapshot(s.body));
  joined.merge(Replica.fromSnapshot(s.body));
  assert.equal(joined.toSnapshot(), V.merge.final_snapshot);
});

test('member frames: a body that is none of here/left is INVALID_MEMBER', () => {
  for (const body of ['{"type":"gone"}', '[1]', 'not json', '{"type":"here","ask":"yes"}']) {
    assert.throws(() => decodeMemberFrame(Buffer.from(body)), /INVALID_MEMBER/, body);
  }
  assert.throws(() => decodeMemberFrame(Buffer.alloc(4096 + 65, 0x20)), /INVALID_MEMBER/);
  assert.deepEqual(decodeMemberFrame(Buffer.from('{"type":"here"}')), { type: 'here', profile: null, ask: false });
});
