// An independent implementation of the sealsync protocol (PROTOCOL.md, wire version 2),
// written from the spec with node:crypto only: keys, envelopes, event bodies and the
// replicated state's merge. It shares no code with the Rust core; tests/vectors/ checks it
// against core/tests/data/vectors-v2.json, which the core writes.
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  hkdfSync,
  sign,
  timingSafeEqual,
} from 'node:crypto';

const utf8 = (s) => Buffer.from(s, 'utf8');
const concat = (...parts) => Buffer.concat(parts.map((p) => Buffer.from(p)));

function u16(n) {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function u32(n) {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
function u64(n) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

export class ProtocolError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

// ------------------------------------------------------------------------------ keys

export function hkdf(ikm, salt, info, length = 32) {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}

export const hmac = (key, data) => createHmac('sha256', key).update(data).digest();

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

// "Keys": a room secret is 32 bytes as base64url without padding (43 characters). Readers
// ignore surrounding ASCII whitespace and one trailing `=`, and refuse anything else.
export function roomKeyFromSecret(text) {
  const ws = '\t\n\f\r ';
  let start = 0;
  let end = text.length;
  while (start < end && ws.includes(text[start])) start++;
  while (end > start && ws.includes(text[end - 1])) end--;
  let s = text.slice(start, end);
  if (s.endsWith('=')) s = s.slice(0, -1);
  if (s.length !== 43) throw new ProtocolError('INVALID_SECRET', 'not 43 characters');
  let bits = 0n;
  for (const ch of s) {
    const v = B64URL.indexOf(ch);
    if (v < 0) throw new ProtocolError('INVALID_SECRET', `character ${JSON.stringify(ch)}`);
    bits = (bits << 6n) | BigInt(v);
  }
  // 43 × 6 = 258 bits: the last two must be zero.
  if (bits & 3n) throw new ProtocolError('INVALID_SECRET', 'non-zero unused bits');
  bits >>= 2n;
  const key = Buffer.alloc(32);
  for (let i = 31; i >= 0; i--) {
    key[i] = Number(bits & 0xffn);
    bits >>= 8n;
  }
  return key;
}

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

export function deriveRoomKeys(roomKey, room) {
  const salt = utf8('sealsync/v1');
  const label = (name, length = 32) => hkdf(roomKey, salt, utf8(name), length);
  const keys = {
    room: room.normalize('NFC'),
    eventRoot: label('sealsync/v1/event'),
    commitRoot: label('sealsync/v1/commit'),
    channelKey: label('sealsync/v1/channel'),
    fingerprintBytes: label('sealsync/v1/fingerprint', 16),
    memberSeed: label('sealsync/v2/member'),
  };
  keys.memberPrivate = createPrivateKey({
    key: concat(PKCS8_ED25519, keys.memberSeed),
    format: 'der',
    type: 'pkcs8',
  });
  const spki = createPublicKey(keys.memberPrivate).export({ format: 'der', type: 'spki' });
  keys.memberKey = spki.subarray(spki.length - 32);
  return keys;
}

export function fingerprint(keys) {
  const n = BigInt(`0x${keys.fingerprintBytes.toString('hex')}`) % 10n ** 20n;
  return n.toString().padStart(20, '0').match(/.{4}/g).join(' ');
}

// "Membership proof": Ed25519 over "sealsync/v2/hello" ‖ u16 len(room) ‖ room ‖ challenge ‖
// member key.
export function prove(keys, challenge) {
  const room = utf8(keys.room);
  const message = concat(utf8('sealsync/v2/hello'), u16(room.length), room, challenge, keys.memberKey);
  return sign(null, message, keys.memberPrivate);
}

// "Key rotation": the current member key signs "sealsync/v2/rotate" ‖ u16 len(room) ‖ room ‖
// challenge ‖ key_epoch u32 ‖ member key ‖ new member key.
export function proveRotation(keys, challenge, keyEpoch, newMemberKey) {
  const room = utf8(keys.room);
  const epoch = Buffer.alloc(4);
  epoch.writeUInt32BE(keyEpoch);
  const message = concat(utf8('sealsync/v2/rotate'), u16(room.length), room, challenge, epoch, keys.memberKey, newMemberKey);
  return sign(null, message, keys.memberPrivate);
}

export const ROOM_TAG = Buffer.alloc(16);

export const channelTag = (keys, name) => hmac(keys.channelKey, utf8(name)).subarray(0, 16);

export function sessionKeys(keys, session) {
  return {
    enc: hkdf(keys.eventRoot, session, utf8('sealsync/v1/session-enc')),
    commit: hkdf(keys.commitRoot, session, utf8('sealsync/v1/session-commit')),
  };
}

// -------------------------------------------------------------------------- envelopes

export const MAX_BODY_LEN = 1_000_000;
const HEADER_LEN = 90;
const AD_HEADER_LEN = 58;
const INNER_HEADER_LEN = 33;
const MIN_ENVELOPE_LEN = 90 + 64 + 16;

// Padmé: L = max(L, 64), E = ⌊log2 L⌋, S = ⌊log2 E⌋ + 1, mask = 2^(E−S) − 1.
export function padme(innerLen) {
  const len = Math.max(innerLen, 64);
  const e = Math.floor(Math.log2(len));
  const s = Math.floor(Math.log2(e)) + 1;
  const mask = 2 ** (e - s) - 1;
  return Math.floor((len + mask) / (mask + 1)) * (mask + 1);
}

export function associatedData(keys, header58) {
  const room = utf8(keys.room);
  return concat(utf8('sealsync/v1/ad'), u16(room.length), room, header58);
}

// hlc: { wall: bigint|number, counter: number, device: Buffer(16) }
export function seal(keys, { kind, channelTag: tag, session, counter, nonce, hlc, body }) {
  if (body.length > MAX_BODY_LEN) throw new ProtocolError('BODY_TOO_LARGE', `${body.length}`);
  const header = concat([1, kind], u32(0), tag, session, u64(counter), nonce);
  const ad = associatedData(keys, header);
  const sk = sessionKeys(keys, session);
  const commitment = hmac(sk.commit, ad);
  const inner = Buffer.alloc(padme(INNER_HEADER_LEN + body.length));
  concat([1], hlc.device, u64(hlc.wall), u32(hlc.counter), u32(body.length), body).copy(inner);
  const cipher = createCipheriv('aes-256-gcm', sk.enc, nonce);
  cipher.setAAD(ad);
  const ct = concat(cipher.update(inner), cipher.final());
  return { envelope: concat(header, commitment, ct, cipher.getAuthTag()), ad, commitment, inner };
}

export function parseHeader(envelope) {
  if (envelope.length < 1 || envelope[0] !== 1) throw new ProtocolError('WIRE_VERSION', 'envelope version');
  if (envelope.length < MIN_ENVELOPE_LEN) throw new ProtocolError('MALFORMED_FRAME', 'short envelope');
  const kind = envelope[1];
  if (kind < 1 || kind > 4) throw new ProtocolError('WRONG_KIND', `kind ${kind}`);
  return {
    kind,
    keyEpoch: envelope.readUInt32BE(2),
    channelTag: envelope.subarray(6, 22),
    session: envelope.subarray(22, 38),
    counter: envelope.readBigUInt64BE(38),
    nonce: envelope.subarray(46, 58),
    commitment: envelope.subarray(58, 90),
  };
}

export function open(keys, envelope) {
  const header = parseHeader(envelope);
  const ad = associatedData(keys, envelope.subarray(0, AD_HEADER_LEN));
  const sk = sessionKeys(keys, header.session);
  const failed = new ProtocolError('DECRYPT_FAILED', 'the envelope does not open');
  if (!timingSafeEqual(hmac(sk.commit, ad), header.commitment)) throw failed;
  const ct = envelope.subarray(HEADER_LEN, envelope.length - 16);
  let inner;
  try {
    const decipher = createDecipheriv('aes-256-gcm', sk.enc, header.nonce);
    decipher.setAAD(ad);
    decipher.setAuthTag(envelope.subarray(envelope.length - 16));
    inner = concat(decipher.update(ct), decipher.final());
  } catch {
    throw failed;
  }
  const malformed = (why) => new ProtocolError('MALFORMED_PLAINTEXT', why);
  if (inner[0] !== 1) throw malformed('inner version');
  const bodyLen = inner.readUInt32BE(29);
  if (bodyLen > MAX_BODY_LEN) throw malformed('body too long');
  if (inner.length !== padme(INNER_HEADER_LEN + bodyLen)) throw malformed('padded length');
  const body = inner.subarray(INNER_HEADER_LEN, INNER_HEADER_LEN + bodyLen);
  if (inner.subarray(INNER_HEADER_LEN + bodyLen).some((b) => b !== 0)) throw malformed('padding');
  const hlc = { wall: inner.readBigUInt64BE(17), counter: inner.readUInt32BE(25), device: inner.subarray(1, 17) };
  return { header, hlc, body, inner };
}

// ----------------------------------------------------------------------- canonical JSON

// Compares two strings by their UTF-8 bytes (not JavaScript's UTF-16 code units).
export const byBytes = (a, b) => Buffer.compare(utf8(a), utf8(b));

// Compact JSON with every object's keys sorted by their UTF-8 bytes.
export function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort(byBytes);
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

// Members written in the given order (each value canonical).
const ordered = (pairs) => `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;

// --------------------------------------------------------- member frames (who is online)

// A member frame's body (PROTOCOL.md, "Members"): `here` (profile default null, ask default
// false), `left`, or `key` (epoch u32, secret string: "Key rotation"); anything else, or a
// body over 4,096 + 64 bytes, is INVALID_MEMBER.
export function decodeMemberFrame(body) {
  const bad = (why) => new ProtocolError('INVALID_MEMBER', why);
  if (body.length > 4096 + 64) throw bad('over the profile limit');
  let v;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    throw bad('not JSON');
  }
  if (!isObject(v)) throw bad('not an object');
  if (v.type === 'left') return { type: 'left' };
  if (v.type === 'key') {
    if (!Number.isInteger(v.epoch) || v.epoch < 0 || v.epoch > 0xffffffff) throw bad('epoch is not a u32');
    if (typeof v.secret !== 'string') throw bad('secret is not a string');
    return { type: 'key', epoch: v.epoch, secret: v.secret };
  }
  if (v.type !== 'here') throw bad(`unknown type ${JSON.stringify(v.type)}`);
  const ask = v.ask ?? false;
  if (typeof ask !== 'boolean') throw bad('ask is not a boolean');
  return { type: 'here', profile: v.profile ?? null, ask };
}

// The body a sender writes for a member frame.
export function encodeMemberFrame(frame) {
  if (frame.type === 'left') return ordered([['type', '"left"']]);
  if (frame.type === 'key') return ordered([['type', '"key"'], ['epoch', String(frame.epoch)], ['secret', JSON.stringify(frame.secret)]]);
  return ordered([['type', '"here"'], ['profile', canonical(frame.profile)], ['ask', String(frame.ask)]]);
}

// ------------------------------------------------------------------------ operations

const invalid = (why) => new ProtocolError('INVALID_OPERATION', why);
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const byteLen = (s) => utf8(s).length;
const CLAIM_FIELDS = ['claimedBy', 'claimedByName', 'claimedByAvatar'];

function checkString(v, what, max) {
  if (typeof v !== 'string') throw invalid(`${what} is not a string`);
  const n = byteLen(v);
  if (n < 1 || n > max) throw invalid(`${what} must be 1 to ${max} bytes`);
}
const checkCollection = (c) => {
  checkString(c, 'collection', 64);
  if (!/^[A-Za-z0-9_-]+$/.test(c)) throw invalid('collection characters');
};
const checkId = (id) => checkString(id, 'id', 128);
const checkSortKey = (k) => checkString(k, 'sortOrder', 1024);

function checkFields(id, fields) {
  if (!isObject(fields)) throw invalid('fields is not an object');
  const names = Object.keys(fields);
  if (names.length > 256) throw invalid('more than 256 fields');
  for (const name of names) {
    checkString(name, 'field name', 128);
    if (name.startsWith('$')) throw invalid('field name starts with $');
    if (CLAIM_FIELDS.includes(name)) throw invalid('claim field outside `claimed`');
    if (name === 'id' && fields[name] !== id) throw invalid('field id differs from the id');
    if (name === 'sortOrder') checkSortKey(fields[name]);
  }
}

const stringOrNull = (v, what) => {
  if (v !== null && typeof v !== 'string') throw invalid(`${what} is not a string or null`);
};

// An operation from parsed JSON (unknown members ignored), validated; returns the
// normalised operation (only its known members).
export function parseOp(json) {
  if (!isObject(json)) throw invalid('an operation is an object');
  const { type, collection } = json;
  checkCollection(collection);
  switch (type) {
    case 'created':
    case 'updated':
      checkId(json.id);
      checkFields(json.id, json.fields);
      return { type, collection, id: json.id, fields: json.fields };
    case 'deleted':
      checkId(json.id);
      return { type, collection, id: json.id };
    case 'reordered': {
      if (!Array.isArray(json.items)) throw invalid('items is not an array');
      if (json.items.length > 10_000) throw invalid('too many items');
      const seen = new Set();
      const items = json.items.map((item) => {
        if (!isObject(item)) throw invalid('a reorder item is an object');
        checkId(item.id);
        checkSortKey(item.sortOrder);
        if (seen.has(item.id)) throw invalid('an id twice in one reorder');
        seen.add(item.id);
        return { id: item.id, sortOrder: item.sortOrder };
      });
      return { type, collection, items };
    }
    case 'claimed': {
      checkId(json.id);
      if (!('claimedBy' in json)) throw invalid('claimedBy is missing');
      const op = { type, collection, id: json.id };
      for (const f of CLAIM_FIELDS) {
        op[f] = f in json ? json[f] : null;
        stringOrNull(op[f], f);
      }
      return op;
    }
    default:
      throw invalid(`unknown type ${JSON.stringify(type)}`);
  }
}

// An operation as senders write it: compact, members in the order of PROTOCOL.md's table,
// `fields` and nested objects with their keys sorted by UTF-8 bytes.
export function encodeOp(op) {
  const head = [
    ['type', JSON.stringify(op.type)],
    ['collection', JSON.stringify(op.collection)],
  ];
  switch (op.type) {
    case 'created':
    case 'updated':
      return ordered([...head, ['id', JSON.stringify(op.id)], ['fields', canonical(op.fields)]]);
    case 'deleted':
      return ordered([...head, ['id', JSON.stringify(op.id)]]);
    case 'reordered':
      return ordered([
        ...head,
        ['items', `[${op.items.map((i) => ordered([['id', JSON.stringify(i.id)], ['sortOrder', JSON.stringify(i.sortOrder)]])).join(',')}]`],
      ]);
    case 'claimed':
      return ordered([...head, ['id', JSON.stringify(op.id)], ...CLAIM_FIELDS.map((f) => [f, canonical(op[f])])]);
    default:
      throw invalid(`unknown type ${op.type}`);
  }
}

const isU = (v, max) => Number.isInteger(v) && v >= 0 && v <= max;

// "Event bodies": one operation (stamped with the inner header) or a batch.
// Returns [{ hlc: {wall, counter, device}, op }].
export function decodeEventBody(body, hlc) {
  let json;
  try {
    json = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch (e) {
    throw invalid(`not JSON: ${e.message}`);
  }
  if (!isObject(json) || json.type !== 'batch') {
    return [{ hlc: { wall: BigInt(hlc.wall), counter: hlc.counter, device: hlc.device }, op: parseOp(json) }];
  }
  for (const k of Object.keys(json)) if (k !== 'type' && k !== 'ops') throw invalid(`batch member ${k}`);
  if (!Array.isArray(json.ops) || json.ops.length === 0) throw invalid('a batch holds at least one item');
  return json.ops.map((item) => {
    if (!isObject(item)) throw invalid('a batch item is an object');
    for (const k of Object.keys(item)) if (!['wall', 'counter', 'op'].includes(k)) throw invalid(`batch item member ${k}`);
    if (!isU(item.wall, 2 ** 64 - 1)) throw invalid('wall is not a u64');
    if (!isU(item.counter, 2 ** 32 - 1)) throw invalid('counter is not a u32');
    return { hlc: { wall: BigInt(item.wall), counter: item.counter, device: hlc.device }, op: parseOp(item.op) };
  });
}

// The body a sender writes for stamped operations, and the inner header's stamp (the
// highest).
export function encodeEventBody(stamped) {
  let top = stamped[0].hlc;
  for (const s of stamped) if (compareHlc(s.hlc, top) > 0) top = s.hlc;
  if (stamped.length === 1) return { body: encodeOp(stamped[0].op), hlc: top };
  const items = stamped.map((s) => ordered([['wall', String(s.hlc.wall)], ['counter', String(s.hlc.counter)], ['op', encodeOp(s.op)]]));
  return { body: `{"type":"batch","ops":[${items.join(',')}]}`, hlc: top };
}

// ---------------------------------------------------------------------------- stamps

const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

export function compareHlc(a, b) {
  return cmp(BigInt(a.wall), BigInt(b.wall)) || cmp(a.counter, b.counter) || Buffer.compare(Buffer.from(a.device), Buffer.from(b.device));
}

// A merge stamp: (effective wall, raw wall, raw counter, raw device).
export function compareStamp(a, b) {
  return cmp(a.wall, b.wall) || compareHlc(a.raw, b.raw);
}

export const MAX_FORWARD_SKEW_MS = 60_000n;

export function effective(hlc, relayTime) {
  const wall = BigInt(hlc.wall);
  const limit = relayTime === undefined ? wall : BigInt(relayTime) + MAX_FORWARD_SKEW_MS;
  return { wall: wall < limit ? wall : limit, raw: { wall, counter: hlc.counter, device: Buffer.from(hlc.device) } };
}

const stampJson = (s) =>
  ordered([
    ['wall', String(s.wall)],
    ['raw', ordered([['wall', String(s.raw.wall)], ['counter', String(s.raw.counter)], ['device', `[${[...s.raw.device].join(',')}]`]])],
  ]);

function stampFromJson(v) {
  if (!isObject(v) || !isObject(v.raw)) throw new ProtocolError('INVALID_SNAPSHOT', 'stamp');
  const { raw } = v;
  if (!isU(v.wall, 2 ** 64 - 1) || !isU(raw.wall, 2 ** 64 - 1) || !isU(raw.counter, 2 ** 32 - 1)) throw new ProtocolError('INVALID_SNAPSHOT', 'stamp numbers');
  if (!Array.isArray(raw.device) || raw.device.length !== 16 || !raw.device.every((b) => isU(b, 255))) throw new ProtocolError('INVALID_SNAPSHOT', 'device');
  return { wall: BigInt(v.wall), raw: { wall: BigInt(raw.wall), counter: raw.counter, device: Buffer.from(raw.device) } };
}

const later = (a, b) => (a === undefined ? b : b === undefined ? a : compareStamp(a, b) >= 0 ? a : b);

// ---------------------------------------------------------------------- the replica

// Registers: { hlc: stamp, value }. An entity: { created?, deleted?, fields: Map, sortOrder?, claim? }.
const newEntity = () => ({ created: undefined, deleted: undefined, fields: new Map(), sortOrder: undefined, claim: undefined });

// Writes a register when the stamp is strictly higher.
function writeReg(reg, hlc, value) {
  if (reg && compareStamp(reg.hlc, hlc) >= 0) return reg;
  return { hlc, value };
}

export class Replica {
  constructor() {
    this.collections = new Map();
  }

  // Every operation that names an entity gives it a record, even when it writes nothing.
  slot(collection, id) {
    let entities = this.collections.get(collection);
    if (!entities) this.collections.set(collection, (entities = new Map()));
    let e = entities.get(id);
    if (!e) entities.set(id, (e = newEntity()));
    return e;
  }

  writeFields(e, fields, hlc) {
    for (const [name, value] of Object.entries(fields)) {
      if (name === 'id') continue;
      if (name === 'sortOrder') {
        if (typeof value === 'string') e.sortOrder = writeReg(e.sortOrder, hlc, value);
      } else {
        e.fields.set(name, writeReg(e.fields.get(name), hlc, value));
      }
    }
  }

  // Applies one operation at its merge stamp.
  apply({ hlc, op }) {
    switch (op.type) {
      case 'created': {
        const e = this.slot(op.collection, op.id);
        if (e.deleted) return;
        this.writeFields(e, op.fields, hlc);
        e.created = later(e.created, hlc);
        return;
      }
      case 'updated': {
        const e = this.slot(op.collection, op.id);
        if (!e.deleted) this.writeFields(e, op.fields, hlc);
        return;
      }
      case 'deleted': {
        const e = this.slot(op.collection, op.id);
        tombstone(e, later(e.deleted, hlc));
        return;
      }
      case 'reordered':
        for (const item of op.items) {
          const e = this.slot(op.collection, item.id);
          if (!e.deleted) e.sortOrder = writeReg(e.sortOrder, hlc, item.sortOrder);
        }
        return;
      case 'claimed': {
        const e = this.slot(op.collection, op.id);
        if (!e.deleted) {
          e.claim = writeReg(e.claim, hlc, { claimedBy: op.claimedBy, claimedByName: op.claimedByName, claimedByAvatar: op.claimedByAvatar });
        }
        return;
      }
      default:
        throw invalid(op.type);
    }
  }

  // Snapshot format 2, canonical: maps by UTF-8 bytes of their keys; an entity's members in
  // the order created, deleted, fields, sortOrder, claim, each only when set.
  toSnapshot() {
    const reg = (r, value) => ordered([['hlc', stampJson(r.hlc)], ['value', value]]);
    const entity = (e) => {
      const out = [];
      if (e.created) out.push(['created', stampJson(e.created)]);
      if (e.deleted) out.push(['deleted', stampJson(e.deleted)]);
      if (e.fields.size) {
        const names = [...e.fields.keys()].sort(byBytes);
        out.push(['fields', ordered(names.map((n) => [n, reg(e.fields.get(n), canonical(e.fields.get(n).value))]))]);
      }
      if (e.sortOrder) out.push(['sortOrder', reg(e.sortOrder, JSON.stringify(e.sortOrder.value))]);
      if (e.claim) out.push(['claim', reg(e.claim, ordered(CLAIM_FIELDS.map((f) => [f, canonical(e.claim.value[f])])))]);
      return ordered(out);
    };
    const sortedMap = (m, f) => ordered([...m.keys()].sort(byBytes).map((k) => [k, f(m.get(k))]));
    return `{"v":2,"collections":${sortedMap(this.collections, (entities) => sortedMap(entities, entity))}}`;
  }

  static fromSnapshot(text) {
    const bad = (why) => new ProtocolError('INVALID_SNAPSHOT', why);
    let json;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw bad(e.message);
    }
    if (!isObject(json) || Object.keys(json).some((k) => k !== 'v' && k !== 'collections')) throw bad('members');
    if (json.v !== 2) throw bad(`version ${json.v}`);
    if (!isObject(json.collections)) throw bad('collections');
    const replica = new Replica();
    const asInvalid = (f) => {
      try {
        f();
      } catch (e) {
        throw bad(e.message);
      }
    };
    const regOf = (v) => {
      if (!isObject(v) || !('value' in v)) throw bad('register');
      return { hlc: stampFromJson(v.hlc), value: v.value };
    };
    for (const [name, entities] of Object.entries(json.collections)) {
      if (!isObject(entities)) throw bad('entities');
      if (Object.keys(entities).length === 0) continue;
      asInvalid(() => checkCollection(name));
      const map = new Map();
      for (const [id, v] of Object.entries(entities)) {
        asInvalid(() => checkId(id));
        if (!isObject(v) || Object.keys(v).some((k) => !['created', 'deleted', 'fields', 'sortOrder', 'claim'].includes(k))) throw bad('entity members');
        const e = newEntity();
        if (v.created !== undefined) e.created = stampFromJson(v.created);
        if (v.deleted !== undefined) e.deleted = stampFromJson(v.deleted);
        if (v.fields !== undefined) {
          if (!isObject(v.fields)) throw bad('fields');
          for (const [f, r] of Object.entries(v.fields)) {
            asInvalid(() => checkString(f, 'field name', 128));
            if (f.startsWith('$') || f === 'id' || f === 'sortOrder' || CLAIM_FIELDS.includes(f)) throw bad(`reserved field ${f}`);
            e.fields.set(f, regOf(r));
          }
        }
        if (v.sortOrder !== undefined) {
          e.sortOrder = regOf(v.sortOrder);
          if (typeof e.sortOrder.value !== 'string') throw bad('sortOrder');
        }
        if (v.claim !== undefined) {
          const r = regOf(v.claim);
          if (!isObject(r.value) || !('claimedBy' in r.value)) throw bad('claim');
          r.value = Object.fromEntries(CLAIM_FIELDS.map((f) => [f, r.value[f] ?? null]));
          e.claim = r;
        }
        if (e.deleted) tombstone(e, e.deleted);
        map.set(id, e);
      }
      replica.collections.set(name, map);
    }
    return replica;
  }

  // The join of two states: a tombstone on either side wins (the later one); otherwise
  // every register keeps the higher stamp.
  merge(other) {
    for (const [name, entities] of other.collections) {
      for (const [id, theirs] of entities) {
        const e = this.slot(name, id);
        if (e.deleted || theirs.deleted) {
          tombstone(e, later(e.deleted, theirs.deleted));
          continue;
        }
        e.created = later(e.created, theirs.created);
        for (const [f, r] of theirs.fields) e.fields.set(f, writeReg(e.fields.get(f), r.hlc, r.value));
        if (theirs.sortOrder) e.sortOrder = writeReg(e.sortOrder, theirs.sortOrder.hlc, theirs.sortOrder.value);
        if (theirs.claim) e.claim = writeReg(e.claim, theirs.claim.hlc, theirs.claim.value);
      }
    }
  }

  // Visible entities (created, not deleted) as read objects, by sortOrder bytes then id;
  // those without a key last.
  get(collection) {
    const entities = this.collections.get(collection);
    if (!entities) return [];
    const visible = [...entities].filter(([, e]) => e.created && !e.deleted);
    visible.sort(([ia, a], [ib, b]) => {
      if (!a.sortOrder !== !b.sortOrder) return a.sortOrder ? -1 : 1;
      return (a.sortOrder && byBytes(a.sortOrder.value, b.sortOrder.value)) || byBytes(ia, ib);
    });
    return visible.map(([id, e]) => {
      const out = {};
      for (const [f, r] of e.fields) out[f] = r.value;
      if (e.sortOrder) out.sortOrder = e.sortOrder.value;
      if (e.claim) Object.assign(out, e.claim.value);
      out.id = id;
      return out;
    });
  }
}

function tombstone(e, stamp) {
  e.created = undefined;
  e.fields = new Map();
  e.sortOrder = undefined;
  e.claim = undefined;
  e.deleted = stamp;
}
