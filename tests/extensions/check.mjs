// The MCP authorization extensions against a live `clari-mcp demo`, driven by the official
// TypeScript MCP client (@modelcontextprotocol/client, pinned in package-lock.json) as a host
// built on it would: its ClientCredentialsProvider (client_secret_basic), PrivateKeyJwtProvider
// (private_key_jwt, RFC 7523), CrossAppAccessProvider (ID-JAG, the enterprise-managed
// authorization extension) and DpopSession (RFC 9449). Each flow discovers the server (RFC 9728,
// RFC 8414), gets a token and calls a tool whose result the client validates against its output
// schema.
//
// The company IdP is oidc-provider (a certified OpenID Provider) on loopback, publishing a key
// made here. A person first signs in once through single sign-on (the redirects and the
// provider's own sign-in and consent forms, followed here without a browser), which links their
// identity to a membership; oidc-provider does not issue ID-JAGs (the token exchange of the
// ID-JAG draft), so the assertion callback signs one for that person with the provider's key
// using `jose`, as the provider would.
//
// Environment: ISSUER, MCP_URL, ADMIN_KEY (an admin API key of the demo organisation), EMAIL
// (its admin: the organisation's SSO connection owns that address's domain).
import Provider from 'oidc-provider';
import * as jose from 'jose';
import {
  Client,
  ClientCredentialsProvider,
  CrossAppAccessProvider,
  DpopSession,
  PrivateKeyJwtProvider,
  StreamableHTTPClientTransport,
} from '@modelcontextprotocol/client';
import { createServer } from 'node:net';

const { ISSUER, MCP_URL, ADMIN_KEY, EMAIL } = process.env;
let failures = 0;
const ok = (what) => console.log(`ok   ${what}`);
const fail = (what, e) => {
  failures += 1;
  console.log(`FAIL ${what}: ${e?.stack ?? e}`);
};

async function api(method, path, body) {
  const r = await fetch(`${ISSUER}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Connects with `authProvider`, lists tools and calls list_users; returns the provider's tokens. */
async function connectAndCall(name, authProvider) {
  const client = new Client({ name: `extensions-${name}`, version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), { authProvider });
  await client.connect(transport);
  const tools = await client.listTools();
  if (!tools.tools.some((t) => t.name === 'list_users')) throw new Error('list_users is not listed');
  const result = await client.callTool({ name: 'list_users', arguments: { limit: 5 } });
  if (result.isError) throw new Error(`list_users failed: ${JSON.stringify(result.content)}`);
  if (!result.structuredContent) throw new Error('no structured content');
  await client.close();
  return authProvider.tokens();
}

/** The provider with a DPoP session: tokens come back bound and each call carries a proof. */
function withDpopSession(provider, session) {
  provider.dpop = () => session;
  return provider;
}

// --- the company IdP --------------------------------------------------------------------------

const { privateKey: idpKey } = await jose.generateKeyPair('RS256', { extractable: true });
const idpJwk = { ...(await jose.exportJWK(idpKey)), kid: 'idp-signing-1', alg: 'RS256', use: 'sig' };
const idpPort = await freePort();
const idpIssuer = `http://127.0.0.1:${idpPort}`;
const domain = EMAIL.split('@')[1];
const person = 'sso-person';
const idp = new Provider(idpIssuer, {
  clients: [{
    client_id: 'clari-mcp',
    client_secret: 'a secret for this test only',
    redirect_uris: [`${ISSUER}/sso/callback`],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  conformIdTokenClaims: false,
  jwks: { keys: [idpJwk] },
  cookies: { keys: ['a cookie key for this test only'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@${domain}`, email_verified: true };
      },
    };
  },
});
const idpServer = idp.listen(idpPort, '127.0.0.1');
await new Promise((resolve) => idpServer.once('listening', resolve));
await api('PUT', '/api/v1/sso', {
  issuer: idpIssuer,
  client_id: 'clari-mcp',
  client_secret: 'a secret for this test only',
  domains: [domain],
});
ok(`the organisation trusts ${idpIssuer} (its SSO connection; oidc-provider)`);

/** Requests with a cookie jar per origin, redirects followed by hand (as a browser does). */
const jars = new Map();
async function visit(url, init = {}) {
  for (let hops = 0; hops < 20; hops += 1) {
    const origin = new URL(url).origin;
    const jar = jars.get(origin) ?? new Map();
    jars.set(origin, jar);
    const headers = { ...(init.headers ?? {}) };
    if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const r = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const c of r.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const at = pair.indexOf('=');
      const name = pair.slice(0, at).trim();
      const value = pair.slice(at + 1).trim();
      if (!value || /expires=thu, 01 jan 1970/i.test(c)) jar.delete(name);
      else jar.set(name, value);
    }
    if (![301, 302, 303, 307, 308].includes(r.status)) return { r, url };
    url = new URL(r.headers.get('location'), url).href;
    init = {};
  }
  throw new Error('too many redirects');
}

/** Submits the page's first form: its hidden fields plus `fields`. */
async function submit(page, url, fields) {
  const form = page.match(/<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/);
  if (!form) throw new Error(`no form at ${url}: ${page.replace(/<style[\s\S]*?<\/style>/, "").replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").slice(0, 400)}`);
  const body = new URLSearchParams();
  for (const m of form[2].matchAll(/<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)) {
    body.set(m[1], m[2]);
  }
  for (const [k, v] of Object.entries(fields)) body.set(k, v);
  return visit(new URL(form[1], url).href, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: body.toString(),
  });
}

// The person signs in once with single sign-on: the provider's sign-in, then its consent.
{
  let { r, url } = await visit(`${ISSUER}/sso/start?email=${encodeURIComponent(`${person}@${domain}`)}`);
  for (let step = 0; step < 4 && new URL(url).origin === idpIssuer; step += 1) {
    const page = await r.text();
    const fields = page.includes('name="login"') ? { login: person, password: 'any: the test pages take any' } : {};
    ({ r, url } = await submit(page, url, fields));
  }
  if (new URL(url).origin !== new URL(ISSUER).origin || r.status >= 400) {
    throw new Error(`single sign-on ended at ${url} with ${r.status}: ${(await r.text()).slice(0, 300)}`);
  }
  const members = await api('GET', '/api/v1/members');
  if (!members.items.some((m) => m.email === `${person}@${domain}`)) throw new Error('the person is not a member');
  ok(`${person}@${domain} signed in once with single sign-on (oidc-provider's forms): a member, identity linked`);
}

// --- client credentials: client_secret_basic --------------------------------------------------

try {
  const c = await api('POST', '/api/v1/service-clients', {
    name: 'Weekly report (secret)',
    scopes: ['users:read', 'forecasts:read'],
    token_endpoint_auth_method: 'client_secret_basic',
  });
  const provider = new ClientCredentialsProvider({
    clientId: c.client_id,
    clientSecret: c.client_secret,
    expectedIssuer: ISSUER,
  });
  const tokens = await connectAndCall('client-secret', provider);
  if (tokens.token_type.toLowerCase() !== 'bearer') throw new Error(`token_type ${tokens.token_type}`);
  ok('ClientCredentialsProvider (client_secret_basic): token, tools/list, tools/call');
} catch (e) {
  fail('ClientCredentialsProvider (client_secret_basic)', e);
}

// --- client credentials: private_key_jwt ------------------------------------------------------

try {
  const { publicKey, privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: 'ci-1', alg: 'ES256', use: 'sig' };
  const c = await api('POST', '/api/v1/service-clients', {
    name: 'CI job (private_key_jwt)',
    scopes: ['users:read'],
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: { keys: [jwk] },
  });
  const provider = new PrivateKeyJwtProvider({
    clientId: c.client_id,
    privateKey: { ...(await jose.exportJWK(privateKey)), kid: 'ci-1' },
    algorithm: 'ES256',
    expectedIssuer: ISSUER,
  });
  await connectAndCall('private-key-jwt', provider);
  ok('PrivateKeyJwtProvider (private_key_jwt, RFC 7523): token, tools/list, tools/call');

  // The same client with DPoP: the token is bound to the session's key.
  const session = await DpopSession.create();
  const bound = withDpopSession(
    new PrivateKeyJwtProvider({
      clientId: c.client_id,
      privateKey: { ...(await jose.exportJWK(privateKey)), kid: 'ci-1' },
      algorithm: 'ES256',
      expectedIssuer: ISSUER,
    }),
    session,
  );
  const tokens = await connectAndCall('private-key-jwt-dpop', bound);
  if (tokens.token_type !== 'DPoP') throw new Error(`token_type ${tokens.token_type}, not DPoP`);
  const claims = jose.decodeJwt(tokens.access_token);
  if (claims.cnf?.jkt !== session.thumbprint) throw new Error('cnf.jkt is not the session key');
  // A DPoP-bound token sent as a bearer token is refused.
  const asBearer = await fetch(MCP_URL, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${tokens.access_token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
  });
  if (asBearer.status !== 401) throw new Error(`a bound token as Bearer answered ${asBearer.status}`);
  ok('DpopSession (RFC 9449): nonce round trips, token_type DPoP, cnf.jkt, a proof per call; as Bearer: 401');
} catch (e) {
  fail('PrivateKeyJwtProvider and DPoP', e);
}

// --- enterprise-managed authorization: ID-JAG -------------------------------------------------

try {
  const reg = await fetch(`${ISSUER}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'Enterprise agent',
      grant_types: ['urn:ietf:params:oauth:grant-type:jwt-bearer'],
      token_endpoint_auth_method: 'client_secret_basic',
    }),
  });
  if (reg.status !== 201) throw new Error(`registration: ${reg.status} ${await reg.text()}`);
  const client = await reg.json();
  const signingKey = await jose.importJWK(idpJwk, 'RS256');
  let assertions = 0;
  const provider = new CrossAppAccessProvider({
    clientId: client.client_id,
    clientSecret: client.client_secret,
    expectedIssuer: ISSUER,
    // What the IdP's token exchange (RFC 8693, requested_token_type id-jag) would answer.
    assertion: async (ctx) => {
      assertions += 1;
      return new jose.SignJWT({
        client_id: client.client_id,
        resource: ctx.resourceUrl,
        scope: 'users:read forecasts:read',
      })
        .setProtectedHeader({ alg: 'RS256', typ: 'oauth-id-jag+jwt', kid: idpJwk.kid })
        .setIssuer(idpIssuer)
        .setSubject(person)
        .setAudience(ctx.authorizationServerUrl)
        .setJti(crypto.randomUUID())
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(signingKey);
    },
  });
  const tokens = await connectAndCall('id-jag', provider);
  if (assertions < 1) throw new Error('the assertion callback was never called');
  if (tokens.refresh_token) throw new Error('an ID-JAG exchange must not return a refresh token');
  const grants = await api('GET', '/api/v1/grants');
  if (!grants.items.some((g) => g.client_id === client.client_id)) throw new Error('the grant is not listed');
  ok('CrossAppAccessProvider (ID-JAG): jwt-bearer exchange, no consent page, grant listed, tools/call');
} catch (e) {
  fail('CrossAppAccessProvider (ID-JAG)', e);
}

idpServer.close();
if (failures) {
  console.log(`${failures} flow(s) failed`);
  process.exit(1);
}
console.log('authorization extensions: every flow passed');
process.exit(0);
