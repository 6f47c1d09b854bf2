// `sealsync/react`: React hooks over the package's entry. React is a peer dependency of
// this file only (`import "sealsync"` never loads it). Copied into pkg/ by
// scripts/finish-pkg.mjs from js/package/react.js; types in react.d.ts.
import { useEffect, useRef, useState, useSyncExternalStore } from "react";
import init, { Room } from "./index.js";

let ready; // one init() per page, started by the first effect that needs it

function initOnce(moduleOrPath) {
  if (!ready) {
    ready = init(moduleOrPath === undefined ? undefined : { module_or_path: moduleOrPath });
    ready.catch(() => { ready = undefined; }); // a failed load may be retried
  }
  return ready;
}

const IDLE = Object.freeze({ room: null, error: null });
const EMPTY = Object.freeze([]);
const FUNCTION_OPTIONS = ["token", "onProgress", "onWarning", "kdfWorker"];

/**
 * Joins a room once per set of options and leaves it on unmount (or when an option changes,
 * before joining again). Runs `init()` inside the effect, so only in the browser.
 * StrictMode's mount, unmount, mount leaves the first room and keeps the second.
 * Value options (`url`, `room`, `password`, `secret`, `channel`, `persist`, `members`,
 * `debug`, `requestPersistence`, a string `token`, `wasm`) are the effect's dependencies;
 * function options (`token`, `onProgress`, `onWarning`, `kdfWorker`) are called as given by
 * the latest render, so inline functions do not join again (adding or removing one does).
 * `profile` and `storage` are taken as the render that joins gives them (change a profile
 * with `room.setProfile`).
 */
export function useRoom(options) {
  const [state, setState] = useState(IDLE);
  const latest = useRef(options);
  latest.current = options;
  const { url, room, password, secret, channel, persist, members, debug, requestPersistence, token, wasm } = options;
  const stringToken = typeof token === "string" ? token : undefined;
  // Which function options are given (adding or removing one joins again; a new function
  // in their place does not).
  const given = FUNCTION_OPTIONS.filter((name) => typeof options[name] === "function").join();
  useEffect(() => {
    let active = true;
    let joined = null;
    setState((s) => (s === IDLE ? s : IDLE));
    const fromLatest = (name) => (...args) => latest.current[name]?.(...args);
    const { profile, storage } = latest.current;
    const joinOptions = { url, room, password, secret, channel, persist, members, debug, requestPersistence, profile, storage };
    for (const name of FUNCTION_OPTIONS) {
      if (typeof latest.current[name] === "function") joinOptions[name] = fromLatest(name);
    }
    if (stringToken !== undefined) joinOptions.token = stringToken;
    for (const key of Object.keys(joinOptions)) if (joinOptions[key] === undefined) delete joinOptions[key];
    initOnce(wasm)
      .then(() => Room.join(joinOptions))
      .then(
        (r) => {
          if (active) {
            joined = r;
            setState({ room: r, error: null });
          } else {
            r.leave();
          }
        },
        (error) => { if (active) setState({ room: null, error }); },
      );
    return () => {
      active = false;
      joined?.leave();
    };
  }, [url, room, password, secret, channel, persist, members, debug, requestPersistence, stringToken, given, wasm]);
  return state;
}

function subscribeTo(room, type, accept) {
  return (notify) => (room ? room.on(type, (e) => { if (accept(e)) notify(); }) : () => {});
}

/**
 * The entities of a collection, re-rendering on its changes only. Returns what
 * `room.get(name)` returns: the same frozen array until the collection changes, and the
 * same entity objects until they change (so `React.memo` items skip re-rendering). An empty
 * array while `room` is `null` or after it was left.
 */
export function useCollection(room, name) {
  const [subscribe, read] = useMemoPair(room, name, () => [
    subscribeTo(room, "change", (e) => e.collection === name),
    () => {
      if (!room) return EMPTY;
      try {
        return room.get(name);
      } catch (e) {
        if (e && e.code === "ROOM_CLOSED") return EMPTY;
        throw e;
      }
    },
  ]);
  return useSyncExternalStore(subscribe, read, () => EMPTY);
}

/** `room.status`, re-rendering on every `status` event; `null` while `room` is `null`. */
export function useStatus(room) {
  const [subscribe, read] = useMemoPair(room, "status", () => {
    let last = null;
    let lastKey;
    return [
      subscribeTo(room, "status", () => true),
      () => {
        if (!room) return null;
        const status = room.status; // a new object on every read: keep one per value
        const key = JSON.stringify(status);
        if (key !== lastKey) {
          last = status;
          lastKey = key;
        }
        return last;
      },
    ];
  });
  return useSyncExternalStore(subscribe, read, () => null);
}

/** The number of sockets in the room (`room.presence`); `null` before the relay said. */
export function usePresence(room) {
  const [subscribe, read] = useMemoPair(room, "presence", () => [
    subscribeTo(room, "presence", () => true),
    () => (room ? room.presence : null),
  ]);
  return useSyncExternalStore(subscribe, read, () => null);
}

/** Who is online (`room.members`): the same array until the list changes; `[]` while `room` is `null`. */
export function useMembers(room) {
  const [subscribe, read] = useMemoPair(room, "members", () => {
    let last = NO_MEMBERS;
    let lastKey = "[]";
    return [
      subscribeTo(room, "members", () => true),
      () => {
        if (!room) return NO_MEMBERS;
        let members;
        try {
          members = room.members; // a new array on every read: keep one per value
        } catch {
          return NO_MEMBERS; // left
        }
        const key = JSON.stringify(members);
        if (key !== lastKey) {
          last = Object.freeze(members);
          lastKey = key;
        }
        return last;
      },
    ];
  });
  return useSyncExternalStore(subscribe, read, () => NO_MEMBERS);
}

const NO_MEMBERS = Object.freeze([]);

/** `make()` once per (room, key): stable subscribe/read functions for useSyncExternalStore. */
function useMemoPair(room, key, make) {
  const ref = useRef(null);
  if (!ref.current || ref.current.room !== room || ref.current.key !== key) {
    ref.current = { room, key, pair: make() };
  }
  return ref.current.pair;
}
