// The baseline for relay/bench/fanout.mjs: a minimal hibernating Durable Object that
// rebroadcasts every message to every other socket of the room. No protocol, no storage,
// no checks: the floor a relay cannot go under on the same runtime.
import { DurableObject } from "cloudflare:workers";

export class Echo extends DurableObject {
  async fetch(request) {
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1]);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  webSocketMessage(ws, message) {
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
