// Web Locks helpers for the outbox: a live tab holds one lock per session, so another tab
// of the same room can tell a live session's outbox from one a closed tab left behind.

/** Requests the lock `name` and holds it until `release()` is called. */
export function holdLock(name) {
  const locks = globalThis.navigator && globalThis.navigator.locks;
  if (!locks) return undefined;
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  const granted = new Promise((resolve) => {
    locks.request(name, () => { resolve(true); return held; }).catch(() => resolve(false));
  });
  return { granted, release: () => release() };
}

/** Names of held or requested locks starting with `prefix`, or undefined without Web Locks. */
export async function lockNames(prefix) {
  const locks = globalThis.navigator && globalThis.navigator.locks;
  if (!locks) return undefined;
  const state = await locks.query();
  const all = [...(state.held || []), ...(state.pending || [])];
  return all.map((l) => l.name).filter((n) => typeof n === "string" && n.startsWith(prefix));
}
