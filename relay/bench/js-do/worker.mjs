// Two baselines for relay/bench/fanout.mjs (run.sh starts this worker twice):
//
//   STORE unset or "0"  the echo: a minimal hibernating Durable Object that rebroadcasts
//                       every message to every other socket of the room. No protocol, no
//                       storage, no checks: the floor a relay cannot go under on the same
//                       runtime.
//   STORE = "1"         the storing echo: the same, but each binary message is first
//                       INSERTed into the object's SQLite database (ctx.storage.sql), as
//                       the relay must do before it broadcasts. The output gate then holds
//                       the broadcast until that write is committed, so storing echo ÷
//                       echo is the price of durability alone, and relay ÷ storing echo
//                       is what the relay's own code adds on top of it.
import { DurableObject } from "cloudflare:workers";

export class Echo extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.store = env.STORE === "1";
    if (this.store) {
      ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)");
    }
  }

  async fetch(request) {
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1]);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  webSocketMessage(ws, message) {
    if (this.store && typeof message !== "string") {
      this.ctx.storage.sql.exec("INSERT INTO events (body) VALUES (?)", message);
    }
    for (const other of this.ctx.getWebSockets()) {
      if (other !== ws) other.send(message);
    }
  }

  webSocketClose(ws, code) {
    ws.close(1000, "bye");
  }

  webSocketError() {}
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const m = url.pathname.match(/^\/room\/([^/]+)\/ws$/);
    if (!m || request.headers.get("Upgrade") !== "websocket") {
      return new Response("not found", { status: 404 });
    }
    return env.ECHO.get(env.ECHO.idFromName(m[1])).fetch(request);
  },
};
