// What both examples share: joining the room named by the environment, and waiting until the
// relay has every local change.
//
//   SEALSYNC_URL       the relay, e.g. ws://127.0.0.1:8787
//   SEALSYNC_ROOM      the room id
//   SEALSYNC_PASSWORD  the room password (or SEALSYNC_SECRET, a share-link secret)
//   SEALSYNC_STORE     optional: a directory for unsent changes (default: kept in memory)
import { Room, fileStorage } from "sealsync/node";

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
}

/** Joins the room of the environment; `onProgress` reports the key derivation. */
export function joinFromEnv(extra = {}) {
  const credential = process.env.SEALSYNC_SECRET
    ? { secret: process.env.SEALSYNC_SECRET }
    : { password: env("SEALSYNC_PASSWORD") };
  return Room.join({
    url: env("SEALSYNC_URL"),
    room: env("SEALSYNC_ROOM"),
    ...credential,
    storage: process.env.SEALSYNC_STORE ? fileStorage(process.env.SEALSYNC_STORE) : undefined,
    onWarning: (w) => console.error(`warning ${w.code}: ${w.message}`),
    ...extra,
  });
}

const FINAL = ["wrong-password", "forbidden", "closed"];

/**
 * Resolves once the relay acknowledged every local change (`pendingChanges` is 0); rejects
 * when the room reaches a final status first (a wrong password, a refused token, …).
 */
export function allSent(room) {
  return new Promise((resolve, reject) => {
    const offs = [];
    const done = (f) => { offs.forEach((off) => off()); f(); };
    const check = () => {
      if (FINAL.includes(room.status.state)) {
        done(() => reject(new Error(`the room is ${room.status.state}${room.status.code ? ` (${room.status.code})` : ""}`)));
      } else if (room.pendingChanges === 0) {
        done(resolve);
      }
    };
    offs.push(room.on("pending", check), room.on("status", check));
    check();
  });
}
