// The official TypeScript SDK client against a running clari-mcp: lists the tools and calls all
// 14, including a get_forecast whose export is still running, then again until it is ready. The
// SDK validates every structuredContent against the tool's outputSchema and throws on a mismatch;
// Ajv's warnings (such as "unknown format") are collected and fail the run.
//
// Over Streamable HTTP (MCP_URL and API_KEY), or, with MCP_STDIO_COMMAND set, over stdio: the SDK
// starts `MCP_STDIO_COMMAND stdio --data-dir MCP_STDIO_DATA_DIR` with CLARI_API_KEY and
// CLARI_MCP_CLARI_BASE_URL from this environment, as Claude Desktop would.
import { isDeepStrictEqual } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const { MCP_URL, API_KEY, SANDBOX_URL, MCP_STDIO_COMMAND, MCP_STDIO_DATA_DIR } = process.env;
const STDIO = Boolean(MCP_STDIO_COMMAND);
if (!SANDBOX_URL || (STDIO ? !MCP_STDIO_DATA_DIR || !process.env.CLARI_API_KEY : !MCP_URL || !API_KEY)) {
  console.error('SANDBOX_URL, and MCP_URL and API_KEY (or MCP_STDIO_COMMAND, MCP_STDIO_DATA_DIR and CLARI_API_KEY) must be set');
  process.exit(2);
}
const MODE = STDIO ? 'stdio' : 'http';

const warnings = [];
for (const level of ['warn', 'error']) {
  const original = console[level].bind(console);
  console[level] = (...args) => {
    const line = args.map(String).join(' ');
    if (/unknown format|schema/i.test(line)) warnings.push(line);
    original(...args);
  };
}

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e && e.message ? e.message : e}`);
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message);
}

async function knobs(patch) {
  const origin = new URL(SANDBOX_URL).origin;
  const r = await fetch(`${origin}/_sandbox/knobs`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(patch),
  });
  assert(r.ok, `sandbox knobs: HTTP ${r.status}`);
}

const client = new Client({ name: 'clari-mcp-sdk-test', version: '1.0.0' });
const transport = STDIO
  ? new StdioClientTransport({
    command: MCP_STDIO_COMMAND,
    args: ['stdio', '--data-dir', MCP_STDIO_DATA_DIR],
    env: {
      PATH: process.env.PATH,
      CLARI_API_KEY: process.env.CLARI_API_KEY,
      CLARI_MCP_CLARI_BASE_URL: SANDBOX_URL,
      CLARI_MCP_EXPORT_POLL_MS: '200',
      RUST_LOG: 'warn',
    },
    stderr: 'inherit',
  })
  : new StreamableHTTPClientTransport(new URL(MCP_URL), {
    requestInit: { headers: { Authorization: `Bearer ${API_KEY}` } },
  });
await client.connect(transport);

let tools = [];
await check('listTools returns 14 tools with output schemas', async () => {
  tools = (await client.listTools()).tools;
  assert(tools.length === 14, `${tools.length} tools`);
  for (const t of tools) assert(t.outputSchema, `${t.name} has no outputSchema`);
});

async function call(name, args) {
  const r = await client.callTool({ name, arguments: args });
  assert(!r.isError, `${name} answered an error: ${JSON.stringify(r.content)}`);
  assert(r.structuredContent, `${name} has no structuredContent`);
  const text = r.content.map((c) => c.text || '').join('\n');
  const data = JSON.parse(text.split('\n')[1]);
  // The same object (key order may differ between the two serializations).
  assert(isDeepStrictEqual(data, r.structuredContent), `${name}: text and structure differ`);
  return r.structuredContent;
}

// A still-running export first: the answer must validate, then a later call is ready.
await knobs({ job_latency_ms: 4000 });
await check('get_forecast while the export is still running', async () => {
  const s = await call('get_forecast', { wait_seconds: 1 });
  assert(['running', 'queued'].includes(s.status), `status ${s.status}`);
});
await check('get_forecast again returns ready data', async () => {
  const s = await call('get_forecast', { wait_seconds: 30 });
  assert(s.status === 'ready', `status ${s.status}`);
  assert(typeof s.total.commit === 'number', 'no commit');
});
await knobs({ job_latency_ms: 300 });

const day = (offset) => new Date(Date.now() + offset * 86400000).toISOString().slice(0, 10);
let opportunityId;
let jobId;
const plan = [
  ['list_forecast_submissions', { since: day(-30), wait_seconds: 30 }],
  ['list_time_periods', { wait_seconds: 30 }],
  ['list_users', { limit: 5, wait_seconds: 30 }],
  ['list_opportunities', { wait_seconds: 30 }],
  ['list_accounts', { wait_seconds: 30 }],
  ['get_pipeline_changes', { since: day(-30), changes: ['close_date', 'forecast'], wait_seconds: 30 }],
  ['search_deals', { min_amount: 100000, sort: 'risk', wait_seconds: 30 }],
  ['list_audit_events', { limit: 5 }],
  ['list_export_jobs', {}],
  ['get_admin_limits', {}],
];
for (const [name, args] of plan) {
  await check(name, async () => {
    const s = await call(name, args);
    if (name === 'list_opportunities') opportunityId = s.opportunities[0].opportunity_id;
    if (name === 'list_export_jobs') jobId = s.jobs[0].job_id;
    if ('status' in s) assert(s.status === 'ready', `${name}: status ${s.status}`);
  });
}
await check('get_deal_risk', async () => {
  const s = await call('get_deal_risk', { opportunity_ids: [opportunityId], include_closed: true });
  assert(s.opportunities.length === 1, 'one opportunity');
});
await check('get_opportunity', async () => {
  const s = await call('get_opportunity', { opportunity_id: opportunityId });
  assert(s.opportunity_id === opportunityId, 'the same opportunity');
});
await check('get_export_job', async () => {
  const s = await call('get_export_job', { job_id: jobId });
  assert(s.job.job_id === jobId, 'the same job');
});
await check('a bad argument is a tool error naming it', async () => {
  const r = await client.callTool({ name: 'get_forecast', arguments: { time_period: 'Q5' } });
  assert(r.isError && r.content[0].text.includes('time_period'), JSON.stringify(r));
});
await check('no schema warnings from the SDK', async () => {
  assert(warnings.length === 0, warnings.join(' | '));
});

await client.close();
console.log(`typescript sdk (${MODE}): ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
