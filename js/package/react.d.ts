// Types of `sealsync/react` (js/package/react.js). React is an optional peer dependency.
import type { Entity, JoinOptions, Json, Member, Room, SealsyncError, Status } from "./sealsync.js";

/**
 * `Room.join`'s options, plus `wasm`: what `init()` loads the wasm from, for a build tool
 * that does not emit `sealsync_bg.wasm` itself (esbuild, Rollup; see README-sdk.md).
 */
export type UseRoomOptions = JoinOptions & { wasm?: string | URL | Response | WebAssembly.Module };

/** What `useRoom` returns: the room once joined, or why it could not be joined. */
export type UseRoomResult =
  | { room: null; error: null }
  | { room: Room; error: null }
  /** `init()` or `Room.join` failed: a `SealsyncError`, or what loading the wasm threw. */
  | { room: null; error: SealsyncError | Error };

/**
 * Joins a room (after `init()`, inside an effect: browser only) and leaves it on unmount or
 * before joining again when a value option changes (`url`, `room`, `password`, `secret`,
 * `channel`, `persist`, `members`, `debug`, `requestPersistence`, a string `token`, `wasm`).
 * `profile` and `storage` are taken as the joining render gives them (change a profile with
 * `room.setProfile`). Function options are called as the latest
 * render gave them: inline functions do not join again. StrictMode-safe.
 */
export function useRoom(options: UseRoomOptions): UseRoomResult;

/**
 * The entities of `name`, re-rendering only on changes to that collection. The same frozen
 * array until the collection changes, the same entity objects until they change. Empty
 * while `room` is `null` or after it was left.
 */
export function useCollection<T extends object = { readonly [field: string]: Json | undefined }>(
  room: Room | null,
  name: string,
): readonly Entity<T>[];

/** `room.status`, re-rendering on `status` events; `null` while `room` is `null`. */
export function useStatus(room: Room | null): Status | null;

/** Sockets in the room, this one included (`room.presence`); `null` before the relay said. */
export function usePresence(room: Room | null): number | null;

/**
 * Who is online (`room.members`: this member first while live, then the others), re-rendering
 * on `members` events. The same frozen array until the list changes; empty while `room` is
 * `null` or after it was left.
 */
export function useMembers(room: Room | null): readonly Member[];
