// The official TypeScript MCP SDK serving the benchmark's get_forecast (bench/run.sh): stateless
// Streamable HTTP with JSON responses, as the SDK documents it (a server and transport per
// request), behind a bearer check of the API key against the same SQLite file (better-sqlite3).
//
//   node server.mjs PORT RESULT.json DATABASE.sqlite
import http from "node:http";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import Database from "better-sqlite3";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";

const [port, resultFile, dbFile] = process.argv.slice(2);
const result = JSON.parse(readFileSync(resultFile, "utf8"));
const db = new Database(dbFile, { readonly: true, fileMustExist: true });
const findKey = db.prepare(
  "SELECT organization_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
);

function authorized(req) {
  const h = req.headers.authorization ?? "";
  if (!h.startsWith("Bearer ")) return false;
  const hash = createHash("sha256").update(h.slice(7)).digest("hex");
  return findKey.get(hash) !== undefined;
}

function newServer() {
  const server = new McpServer({ name: "bench-peer-ts", version: "1.0.0" });
  server.registerTool("get_forecast", { description: "Forecast" }, async () => ({
    content: result.content,
    structuredContent: result.structuredContent,
  }));
  return server;
}

const httpServer = http.createServer(async (req, res) => {
  if (req.method !== "POST" || req.url !== "/mcp") {
    res.writeHead(404).end();
    return;
  }
  if (!authorized(req)) {
    res.writeHead(401, { "content-type": "application/json" }).end('{"error":"invalid_token"}');
    return;
  }
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const server = newServer();
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: true,
  });
  res.on("close", () => {
    transport.close();
    server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res, body);
});
httpServer.on("connection", (s) => s.setNoDelay(true));
httpServer.listen(Number(port), "127.0.0.1");
