// The few sealsync wire pieces the relay benchmarks need (PROTOCOL.md; the reference is
// sealsync_core::wire and sealsync_core::member). Envelopes carry a well-formed header and
// random bytes: the relay never decrypts.
import { createPrivateKey, createPublicKey, hkdfSync, randomBytes, sign } from "node:crypto";

// Wire version 2 (sealsync_core::wire::VERSION); envelopes are still version 1.
export const WIRE_VERSION = 2;
// The shortest ciphertext an envelope carries (a 64-byte padded plaintext and its tag).
export const MIN_CIPHERTEXT = 80;
// Frame types.
export const T = {
  HELLO: 0x01, PUBLISH: 0x02, SYNC: 0x03,
  WELCOME: 0x81, ACK: 0x82, EVENT: 0x83, CAUGHT_UP: 0x85, ERROR: 0x88, REFUSED: 0x8b, CHALLENGE: 0x8d,
};

// A PKCS#8 DER wrapper for a raw 32-byte Ed25519 seed (RFC 8410).
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

// Membership (sealsync_core::member): the room key derives an Ed25519 key pair, seed =
// HKDF-SHA256(ikm = room key, salt = "sealsync/v1", info = "sealsync/v2/member", 32 bytes);
// HELLO carries its public half (the member key) and its signature over
// "sealsync/v2/hello" ‖ u16 len(room id) ‖ room id (NFC, UTF-8) ‖ challenge ‖ member key.
export function memberKeyPair(roomKey) {
  const seed = Buffer.from(hkdfSync("sha256", roomKey, "sealsync/v1", "sealsync/v2/member", 32));
  const privateKey = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: "der",
    type: "pkcs8",
  });
  // The raw public key is the last 32 bytes of its SPKI DER encoding.
  const publicKey = createPublicKey(privateKey).export({ format: "der", type: "spki" }).subarray(-32);
  return { privateKey, publicKey };
}

export function proveMembership({ privateKey, publicKey }, room, challenge) {
  const id = Buffer.from(room.normalize("NFC"), "utf8");
  const len = Buffer.alloc(2);
  len.writeUInt16BE(id.length);
  const message = Buffer.concat([Buffer.from("sealsync/v2/hello", "utf8"), len, id, challenge, publicKey]);
  return sign(null, message, privateKey);
}

// HELLO: after_seq u64, member_key [32], proof [64], channel_count u8 (1), tag [16].
export function helloFrame(member, room, challenge, channel, afterSeq = 0n) {
  const b = Buffer.alloc(2 + 8 + 32 + 64 + 1 + 16);
  b[0] = WIRE_VERSION; b[1] = T.HELLO;
  b.writeBigUInt64BE(BigInt(afterSeq), 2);
  member.publicKey.copy(b, 10);
  proveMembership(member, room, challenge).copy(b, 42);
  b[106] = 1; channel.copy(b, 107);
  return b;
}

// A PUBLISH frame with a well-formed envelope header and `ciphertext` random bytes (at least
// the shortest a sealed envelope has).
export function publishFrame(channel, session, counter, ciphertext) {
  const env = Buffer.alloc(90 + Math.max(ciphertext, MIN_CIPHERTEXT));
  env[0] = 1; env[1] = 1; // version, kind event; key_epoch 0
  channel.copy(env, 6); session.copy(env, 22);
  env.writeBigUInt64BE(BigInt(counter), 38);
  randomBytes(env.length - 46).copy(env, 46);
  return Buffer.concat([Buffer.from([WIRE_VERSION, T.PUBLISH]), env]);
}

// SYNC: after_seq u64, token u64.
export function syncFrame(afterSeq, token) {
  const b = Buffer.alloc(18);
  b[0] = WIRE_VERSION; b[1] = T.SYNC;
  b.writeBigUInt64BE(BigInt(afterSeq), 2);
  b.writeBigUInt64BE(BigInt(token), 10);
  return b;
}

export function relayError(data) {
  const code = data.length >= 4 ? data.readUInt16BE(2) : -1;
  const len = data.length >= 7 ? data.readUInt16BE(5) : 0;
  return `relay ERROR code ${code}: ${data.subarray(7, 7 + len).toString("utf8")}`;
}

// REFUSED: session [16], counter u64, code u16, retry_after_ms u32, message_len u16, message.
export function relayRefused(data) {
  const code = data.length >= 28 ? data.readUInt16BE(26) : -1;
  const len = data.length >= 34 ? data.readUInt16BE(32) : 0;
  return `relay REFUSED code ${code}: ${data.subarray(34, 34 + len).toString("utf8")}`;
}
