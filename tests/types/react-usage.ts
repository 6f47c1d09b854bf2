// Type-level test of pkg/react.d.ts (`sealsync/react`); tests/bundlers/run.sh runs it like usage.ts:
//   tsc --noEmit --strict --target es2022 --module esnext --moduleResolution bundler \
//       --lib es2022,dom tests/types/react-usage.ts
import { useCollection, useMembers, usePresence, useRoom, useStatus } from "../../pkg/react.js";
import type { ErrorCode, Status } from "../../pkg/sealsync.js";

interface Task { title: string; done?: boolean }
const { room, error } = useRoom({ url: "ws://x", room: "r", password: "p", onWarning: (w) => console.log(w.code), wasm: "/sealsync_bg.wasm" });
if (error && "code" in error) { const code: ErrorCode = (error as { code: ErrorCode }).code; console.log(code); }
const tasks = useCollection<Task>(room, "tasks");
const title: string | undefined = tasks[0]?.title;
const status: Status | null = useStatus(room);
const presence: number | null = usePresence(room);
const online: readonly { session: string; isSelf: boolean }[] = useMembers(room);
// @ts-expect-error the member list is read-only
useMembers(room).push(online[0]);
console.log(title, status, presence);
if (room) room.create("tasks", { title: "x" } satisfies Task);
// @ts-expect-error password and secret are exclusive
useRoom({ url: "ws://x", room: "r", password: "p", secret: "s" });
// @ts-expect-error the snapshot is read-only
tasks.push(tasks[0]);
