//! The TypeScript definitions of the package, written once.
//!
//! Every exported item is marked `skip_typescript` where it is defined, and declared here
//! with its real types instead of the generic `any` wasm-bindgen would infer.

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen(typescript_custom_section)]
const TS_SECTION: &'static str = TS_DEFINITIONS;

/// The definitions (also read by the tests below).
#[allow(
    dead_code,
    reason = "the custom section above reads it in const evaluation (wasm only), which the \
              lint does not count"
)]
const TS_DEFINITIONS: &str = r#"
/**
 * A stable, machine-readable code: branch on `err.code` (and on `code` of `warning` and
 * `rejected` events), never on the message. The exact set the SDK can produce: a relay
 * code this version does not know arrives as `"UNKNOWN"`.
 */
export type ErrorCode =
  // from the core (thrown by calls, or reported)
  | "DECRYPT_FAILED" | "MALFORMED_PLAINTEXT" | "SESSION_EXHAUSTED" | "BODY_TOO_LARGE"
  | "INVALID_ROOM_ID" | "INVALID_SECRET" | "EMPTY_PASSWORD" | "ROTATION_REFUSED"
  | "WIRE_VERSION" | "UNKNOWN_FRAME" | "FRAME_TOO_LARGE" | "MALFORMED_FRAME" | "WRONG_KIND"
  | "INVALID_OPERATION" | "INVALID_SNAPSHOT" | "KDF_FAILED" | "OUTBOX_FULL" | "READ_ONLY"
  | "INVALID_MEMBER" | "REPLAY" | "HISTORY_GAP" | "HISTORY_RESET" | "CONNECTION_REFUSED"
  // from the browser SDK
  | "INVALID_OPTIONS" | "INVALID_ARGUMENT" | "ROOM_CLOSED" | "STORAGE_FAILED"
  | "KDF_WORKER_FAILED" | "NO_RANDOMNESS" | "BROWSER_API" | "TOKEN_FAILED"
  | "INVALID_VALUE" | "NOT_INITIALIZED" | "INIT_FAILED"
  // from the relay, in `warning` and `rejected` events (`READ_ONLY`, `WRONG_KIND` above)
  | "BAD_FRAME" | "WRONG_VERIFIER" | "FORBIDDEN" | "UNSUPPORTED_VERSION" | "TOO_LARGE"
  | "RATE_LIMITED" | "ROOM_FULL" | "HISTORY_FULL" | "NOT_JOINED" | "BANNED"
  | "GUEST_PENDING" | "DUPLICATE_MISMATCH" | "ROTATED" | "NOT_CAUGHT_UP" | "UNKNOWN";

/**
 * The class of every error the SDK throws or rejects with (`err instanceof SealsyncError`),
 * errors from the key-derivation worker included, and `init()` failing to load the wasm
 * (`INIT_FAILED`, the original error as `cause`). What the function given to
 * `room.transact` throws is rethrown as it is.
 */
export class SealsyncError extends Error {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown });
  name: "SealsyncError";
  code: ErrorCode;
}

/** A JSON value, as stored in entity fields. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** What JSON holds besides arrays and objects. */
export type JsonPrimitive = null | boolean | number | string;

/**
 * `T` checked field by field against what JSON can hold, so that objects typed by an
 * interface are accepted. A field whose type JSON cannot hold (`Date`, `bigint`, `symbol`, a
 * function, an object with methods, `undefined` inside an array) becomes `never`, and the
 * call does not compile. An optional field (`undefined`) is accepted: it is left out, as
 * JSON leaves it out.
 */
export type JsonFields<T> = { [K in keyof T]: JsonField<T[K]> };
/** One field's value checked against JSON (see `JsonFields`). */
export type JsonField<V> = V extends JsonPrimitive | undefined
  ? V
  : V extends bigint | symbol | Function | Date
    ? never
    : V extends readonly (infer E)[]
      ? readonly JsonItem<E>[]
      : V extends object
        ? JsonFields<V>
        : never;
/** A value inside an array, or a whole value (`broadcast`): `undefined` is refused. */
export type JsonItem<V> = V extends undefined ? never : JsonField<V>;

/** The fields every entity read has: its id, and `sortOrder`/claim fields when set. */
export interface EntityMeta {
  readonly id: string;
  readonly sortOrder?: string;
  readonly claimedBy?: string | null;
  readonly claimedByName?: string | null;
  readonly claimedByAvatar?: string | null;
}

/**
 * An entity as `room.get` returns it (frozen, deeply): `T` describes your fields
 * (`room.get<Task>("tasks")`); by default any JSON field.
 */
export type Entity<T extends object = { readonly [field: string]: Json | undefined }> = Readonly<T> &
  EntityMeta;

/** Fields as events report them (a string `sortOrder` sets the sort key). */
export type Fields = { [field: string]: Json };

/**
 * An outbox store for `Room.join({ storage })`. It only ever sees sealed envelopes
 * (ciphertext), never a key or plaintext. Calls of one room never overlap: each waits for
 * the previous one to settle. A rejection becomes a `STORAGE_FAILED` warning (the room
 * keeps working; what is unsent stays in memory).
 */
export interface OutboxStorage {
  /** Every record kept for `room` (one per session that had unsent changes). */
  load(room: string): Promise<Array<{ session: string; envelopes: Uint8Array[] }>>;
  /**
   * Keeps `envelopes` as `session`'s record of `room`, replacing the previous one (an empty
   * list deletes the record), then deletes the records of the `forget` sessions.
   */
  save(room: string, session: string, envelopes: Uint8Array[], forget: string[]): Promise<void>;
  /**
   * The sessions of `room` whose owner is still running (their records are not adopted),
   * or `null` when unknown. Without it, Web Locks answer where there are any; otherwise
   * every other session's record is adopted and re-sent (the relay drops duplicates).
   */
  liveSessions?(room: string): Promise<string[] | null>;
}

/** Options of `Room.join`: a password (Argon2id in a worker) or a share-link secret. */
export type JoinOptions = {
  /** The relay, `ws://` or `wss://` (e.g. `ws://127.0.0.1:8787`). */
  url: string;
  /** The room id: 1–128 bytes of UTF-8 after NFC, no control characters, no `/`. */
  room: string;
  /**
   * The ephemeral channel (default `"main"`): `broadcast` values reach only members of the
   * same channel. Stored changes belong to the whole room, whatever the channel.
   */
  channel?: string;
  /**
   * For a relay with `AUTH_MODE = "jwt"`: the token your backend signed for this user and
   * room, or a function returning a fresh one (or a promise of one), called before every
   * connection attempt.
   */
  token?: string | (() => string | Promise<string>);
  /**
   * Keep unsent changes across reloads (default `true`): in IndexedDB, or in `storage`; and,
   * in IndexedDB, the room's local copy, so a later `join` shows the room at once, offline
   * too, and asks the relay only for what came after it.
   */
  persist?: boolean;
  /**
   * Where unsent changes are kept instead of IndexedDB (e.g. `fileStorage(dir)` of
   * `sealsync/node`). Exclusive with `persist: false`.
   */
  storage?: OutboxStorage;
  /**
   * Ask the browser to keep this site's storage under storage pressure
   * (`navigator.storage.persist()`, once per join; default `false`). The browser decides;
   * `navigator.storage.persisted()` tells what it decided.
   */
  requestPersistence?: boolean;
  /** Progress before the room exists: key derivation. */
  onProgress?: (progress: JoinProgress) => void;
  /**
   * A `warning` listener attached before anything can be reported (it also gets the
   * warnings of the join itself, like `KDF_WORKER_FAILED`). Same as `room.on("warning")`,
   * which may also be attached later: warnings reported while no listener was attached are
   * kept (the newest 32) and handed to the next listener attached.
   */
  onWarning?: (warning: Warning) => void;
  /**
   * Starts the worker that derives a password's key, for a build tool that does not bundle
   * the package's own (`new Worker(new URL("./kdf-worker.js", import.meta.url))` in its
   * entry): return a module `Worker` running `sealsync/kdf-worker`. Without it the
   * package's worker is used. If the worker fails, the key is derived on the main thread
   * and a `KDF_WORKER_FAILED` warning is reported.
   */
  kdfWorker?: () => Worker;
  /**
   * Logs every frame sent (`sealsync →`) and received (`sealsync ←`) with `console.debug`:
   * its name, sequence numbers, counters, sizes and envelope headers, never a body, key,
   * proof or token. Default `false`.
   */
  debug?: boolean;
  /**
   * Take part in who is online (default `true`): announce this session and its `profile`
   * to the other members (sealed; the relay learns nothing new) and list them in
   * `room.members`. `false`: neither.
   */
  members?: boolean;
  /** This member's profile in who is online (any JSON, at most 4,096 bytes); see `setProfile`. */
  profile?: Json;
} & ({ password: string; secret?: undefined } | { secret: string; password?: undefined });

/** What `onProgress` receives while `Room.join` runs. */
export type JoinProgress =
  | { state: "deriving-key" }
  | { state: "key-ready"; /** milliseconds the derivation took */ ms: number; /** false when it had to run on the main thread */ inWorker: boolean };

/**
 * The connection status (`room.status`, `status` events). `wrong-password`, `forbidden` and
 * `closed` are final.
 */
export type Status =
  /**
   * `room.status` from `join` resolving until connecting starts, in the next task (no
   * `status` event announces it): changes already apply locally.
   */
  | { state: "idle" }
  /** A socket is being opened; `attempt` counts failures since the last healthy connection (0 first). */
  | { state: "connecting"; attempt: number }
  /** Connected, catching up on the room's history. */
  | { state: "syncing" }
  /**
   * Connected as a guest waiting for the room's owner to let you in (a `jwt` token with
   * `guest: true` or `role: "pending_guest"`): the relay sends no history and no change
   * until the backend admits you (then `syncing`, `live`); local changes are kept and go
   * out once admitted. Turned away: `forbidden`.
   */
  | { state: "pending" }
  /** Caught up: changes flow both ways. */
  | { state: "live" }
  /** Waiting before the next attempt. */
  | { state: "reconnecting"; /** milliseconds until the next attempt */ inMs: number; attempt: number }
  /** The browser reports no network; the next attempt waits for it. */
  | { state: "offline" }
  /** Final: the room exists with another password or secret (`rekey` tries another). */
  | { state: "wrong-password" }
  /**
   * Final: a member moved the room to a new password or secret (`rotate`); this tab's is
   * no longer the room's. `rekey` with the new one goes on, keeping the state and unsent
   * changes.
   */
  | { state: "rotated" }
  /** Final: the relay refused this client; a `CONNECTION_REFUSED` warning, or a `BANNED`/`FORBIDDEN` warning with the relay's message (a ban, or a pending guest's `deny`), says why. */
  | { state: "forbidden" }
  /** Final: `"LEFT"` after `leave()`, `"WIRE_VERSION"` on a protocol mismatch. */
  | { state: "closed"; code: string };

/** One visible change to the state. */
export interface Change {
  type: "created" | "updated" | "deleted" | "reordered" | "claimed";
  collection: string;
  id: string;
  /** created: the whole entity; updated: the changed fields; reordered: `sortOrder`;
   *  claimed: the three claim fields; deleted: `{}`. */
  fields: Fields;
  /** The change came from this tab's own call. */
  fromSelf: boolean;
}

/** `{ code, message }`: something was dropped or refused; nothing the user did is lost. */
export interface Warning {
  code: ErrorCode;
  message: string;
}

/** A local change as the operation the SDK sent (what a `rejected` event names). */
export type Operation =
  | { type: "created"; collection: string; id: string; fields: Fields }
  | { type: "updated"; collection: string; id: string; fields: Fields }
  | { type: "deleted"; collection: string; id: string }
  | { type: "reordered"; collection: string; items: ReorderItem[] }
  | {
      type: "claimed";
      collection: string;
      id: string;
      claimedBy: string | null;
      claimedByName: string | null;
      claimedByAvatar: string | null;
    };

/**
 * Local changes the relay refused for good (`TOO_LARGE`, `READ_ONLY`, `BAD_FRAME`,
 * `WRONG_KIND`, `UNKNOWN`): they left the outbox and were rolled back here (the reverting
 * `change` events, `fromSelf: false`, fired just before).
 */
export interface Rejected {
  code: ErrorCode;
  message: string;
  /** The refused operations, in the order they were made. */
  ops: Operation[];
}

/** The events of `room.on` and what their listeners receive. */
export interface RoomEvents {
  change: Change;
  status: Status;
  /** sockets in the room, this one included */
  presence: number;
  /** who is online (`room.members`), whenever that changes */
  members: Member[];
  /** local changes (operations) the relay has not acknowledged yet (0: everything is saved) */
  pending: number;
  /** where the user's changes are (`room.sync`), whenever that changes */
  sync: SyncState;
  /** a message pushed by the application's backend (parsed JSON). Not encrypted. */
  notify: Json;
  /** a value another member of the same channel sent with `broadcast` */
  ephemeral: Json;
  warning: Warning;
  /** changes the relay refused for good, already rolled back (see `Rejected`) */
  rejected: Rejected;
}

/**
 * A member online (`room.members`, the `members` event): a session (a tab or a process;
 * one person may have several) and the profile it announced. Members are heard from every
 * 30 s; one not heard from for 75 s is dropped, one that leaves is dropped at once.
 */
export interface Member {
  /** The session id (hex), as in envelope headers. */
  session: string;
  /** What it passed to `setProfile` (or `profile` in `join`); `null` if nothing. */
  profile: Json;
  /** This room's own entry (first in the list, while live). */
  isSelf: boolean;
}

/** Where the user's changes are (`room.sync`, the `sync` event). */
export interface SyncState {
  /** Local changes (operations) the relay has not acknowledged. */
  pending: number;
  /**
   * Every local change survives a reload of this page: it is stored on the relay, or
   * written to IndexedDB (or the `storage` given to `join`). `false` with `persist: false`
   * while changes are pending.
   */
  savedLocally: boolean;
  /** Every local change is stored on the relay (`pending === 0`). */
  savedOnRelay: boolean;
  /** `Date.now()` when the room last stopped being live (or joined, before it first was); `null` while live. */
  offlineSince: number | null;
}

/** `{ id, sortOrder }` for `reorder`. */
export interface ReorderItem {
  id: string;
  sortOrder: string;
}

/** The claim fields for `claim`. */
export interface Claim {
  claimedBy: string;
  claimedByName?: string | null;
  claimedByAvatar?: string | null;
}

/** What `Room.parseShareLink` reads. */
export interface ShareLink {
  url?: string;
  room: string;
  secret: string;
}

/** A joined room. */
export class Room {
  private constructor();
  /** Frees the wasm memory of a left room. Optional; `leave()` first. */
  free(): void;
  /**
   * Derives the key (in a worker, for a password), restores unsent changes from IndexedDB
   * and starts connecting. Rejects with a `SealsyncError`.
   */
  static join(options: JoinOptions): Promise<Room>;
  /** A sort key strictly between two others (`null` for an open end). */
  static keyBetween(before: string | null | undefined, after: string | null | undefined): string;
  /** A new random room secret for link-only rooms (43 characters of base64url). */
  static generateSecret(): string;
  /** Reads a share link or its fragment; `null` when it names no room and secret. */
  static parseShareLink(link: string): ShareLink | null;
  /**
   * Deletes everything this browser keeps for `room` in IndexedDB (its local copy and every
   * session's unsent changes), e.g. on sign-out. Leave the room in every tab first.
   */
  static forget(room: string): Promise<void>;

  /**
   * Subscribes; returns the function that unsubscribes. The first `warning` listener
   * attached after warnings were reported with none attached receives them (the newest 32,
   * in order) in a microtask after `on` returns.
   */
  on<K extends keyof RoomEvents>(type: K, listener: (event: RoomEvents[K]) => void): () => void;
  /**
   * Creates an entity; returns its id (`fields.id` when given, else random). Applies at once.
   * Throws `INVALID_VALUE` (naming the field) for a value JSON cannot hold.
   */
  create<T extends object>(collection: string, fields: T & JsonFields<T>): string;
  /** Sets some fields of an entity. Throws `INVALID_VALUE` like `create`. */
  update<T extends object>(collection: string, id: string, fields: T & JsonFields<T>): void;
  /** Deletes an entity for good. */
  delete(collection: string, id: string): void;
  /** New sort keys for some entities. */
  reorder(collection: string, items: ReorderItem[]): void;
  /** Claims an entity, or releases it with `null`. */
  claim(collection: string, id: string, claim: Claim | null): void;
  /**
   * Runs `fn` (synchronously) as one transaction: its changes apply here at once, are sent
   * as one envelope and apply all at once on every replica. Returns what `fn` returned. A
   * nested `transact` joins the outer one. If `fn` throws, every change it made is rolled
   * back (reverting `change` events fire) and the exception is rethrown. Throws
   * `BODY_TOO_LARGE` (rolled back) when the changes together exceed one envelope, and
   * `INVALID_ARGUMENT` when `fn` returns a promise.
   */
  transact<T>(fn: () => T): T;
  /** Sends a value to the others on the same channel, sealed, never stored. */
  broadcast<T>(value: T & JsonItem<T>): void;
  /**
   * Sets this member's profile in who is online (`{ name, color, avatar }` or any JSON,
   * at most 4,096 bytes), sealed for the other members and announced at once when live.
   * Throws `INVALID_MEMBER` when it is too long.
   */
  setProfile<T>(profile: T & JsonItem<T>): void;
  /**
   * The visible entities of a collection, by sort key then id. Frozen (deeply) and stable:
   * the same array until a change touches the collection, and the same entity object until
   * that entity changes (for `useSyncExternalStore`, `React.memo`).
   */
  get<T extends object = { readonly [field: string]: Json | undefined }>(collection: string): readonly Entity<T>[];
  /** Every collection seen so far (each array as `get` returns it; the object is new). */
  snapshot(): { [collection: string]: readonly Entity[] };
  /** The room fingerprint, to compare out of band. */
  fingerprint(): string;
  /** A link to join without the password (the secret is in the URL fragment). */
  shareLink(baseUrl?: string): string;
  /**
   * Moves the room to a new password or secret: this tab's state becomes the room's
   * snapshot under the new key, the history under the old one is dropped, and every other
   * connection ends with the status `rotated`. Resolves once the relay did it; this tab
   * goes on under the new key. With `handOver: true`, the members online (taking part in
   * who is online) receive the new key sealed under the old one and go on under it, without
   * `rotated`: never use it to remove someone. Otherwise nobody gets the new key from the
   * SDK: give it to those who stay (they call `rekey`). Rejects with `ROTATION_REFUSED`,
   * `READ_ONLY` or the relay's code (`NOT_CAUGHT_UP` when the room kept changing), and
   * `ROOM_CLOSED` when the connection stopped first.
   */
  rotate(key: ({ password: string } | { secret: string }) & { handOver?: boolean }): Promise<void>;
  /**
   * After the status `rotated` (or `wrong-password`): goes on with the new password or
   * secret, without a reload; local state and unsent changes stay. Rejects with
   * `ROTATION_REFUSED` in any other status.
   */
  rekey(key: { password: string } | { secret: string }): Promise<void>;
  /** Closes the connection; unsent changes stay in IndexedDB. Resolves once saved. */
  leave(): Promise<void>;
  /** The current connection status. */
  readonly status: Status;
  /** The room id, NFC-normalised. */
  readonly roomId: string;
  /** Local changes (operations) not yet acknowledged by the relay. */
  readonly pendingChanges: number;
  /**
   * Where unsent changes and the room's local copy are kept: `"persistent"` (IndexedDB, or
   * the `storage` given to `join`) or `"memory"` (`persist: false`, or storage that failed,
   * reported once with a `STORAGE_FAILED` warning).
   */
  readonly storage: "persistent" | "memory";
  /** Where the user's changes are; the `sync` event says when this changes. */
  readonly sync: SyncState;
  /**
   * The number of sockets in the room (this one included) the last `presence` event
   * reported; `null` before the first. Only meaningful while live.
   */
  readonly presence: number | null;
  /**
   * Who is online: this member first while live (`isSelf`), then the others heard from,
   * by session id. Empty with `members: false`.
   */
  readonly members: readonly Member[];
}

/**
 * Argon2id (19 MiB, t = 2) of a room password: the 32-byte room key. Blocks for tens of
 * milliseconds: `Room.join` runs it in a worker for you.
 */
export function deriveRoomKey(room: string, password: string): Uint8Array;
"#;

#[cfg(test)]
mod tests {
    use sealsync_core::wire::RelayErrorCode;

    use super::TS_DEFINITIONS;

    /// The text of `export type ErrorCode = …;`.
    fn error_code_union() -> &'static str {
        let start = TS_DEFINITIONS
            .find("export type ErrorCode =")
            .expect("the ErrorCode union");
        let rest = &TS_DEFINITIONS[start..];
        &rest[..rest.find(';').expect("the union's end")]
    }

    #[test]
    fn every_core_error_code_is_in_the_error_code_union() {
        let union = error_code_union();
        for code in sealsync_core::Error::CODES {
            assert!(union.contains(&format!("\"{code}\"")), "{code} missing");
        }
    }

    /// The codes the SDK's Rust side produces (`crate::error`).
    const SDK_CODES: [&str; 9] = [
        crate::error::INVALID_OPTIONS,
        crate::error::INVALID_ARGUMENT,
        crate::error::ROOM_CLOSED,
        crate::error::STORAGE_FAILED,
        crate::error::KDF_WORKER_FAILED,
        crate::error::NO_RANDOMNESS,
        crate::error::TOKEN_FAILED,
        crate::error::BROWSER_API,
        crate::error::INVALID_VALUE,
    ];

    #[test]
    fn every_relay_and_sdk_code_is_in_the_error_code_union() {
        let union = error_code_union();
        // Every relay code this build can name, and "UNKNOWN" for the others.
        let mut relay: Vec<&str> = (0..=u16::MAX)
            .map(|n| RelayErrorCode::from(n).name())
            .collect();
        relay.sort_unstable();
        relay.dedup();
        let client = sealsync_core::client::WARNING_CODES.iter().copied();
        for code in relay.into_iter().chain(SDK_CODES).chain(client) {
            assert!(union.contains(&format!("\"{code}\"")), "{code} missing");
        }
    }

    /// Every code of the union is one the SDK can produce: the core's, the relay's, the
    /// SDK's (Rust and the package entry), the client's warnings. Nothing else.
    #[test]
    fn the_error_code_union_is_exact() {
        let union = error_code_union();
        let listed: std::collections::BTreeSet<&str> =
            union.split('"').skip(1).step_by(2).collect();
        let mut known: std::collections::BTreeSet<&str> = (0..=u16::MAX)
            .map(|n| RelayErrorCode::from(n).name())
            .collect();
        known.extend(sealsync_core::Error::CODES.iter().copied());
        known.extend(sealsync_core::client::WARNING_CODES.iter().copied());
        known.extend(SDK_CODES);
        let entry = include_str!("../js/package/index.js");
        for code in crate::error::JS_CODES {
            assert!(
                entry.contains(&format!("\"{code}\"")),
                "index.js throws no {code}"
            );
        }
        known.extend(crate::error::JS_CODES);
        assert_eq!(
            listed, known,
            "ErrorCode differs from the codes the SDK produces"
        );
        for code in [
            "CONNECTION_REFUSED",
            "HISTORY_FULL",
            "READ_ONLY",
            "GUEST_PENDING",
        ] {
            assert!(listed.contains(code), "{code} missing");
        }
    }
}
