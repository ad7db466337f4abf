// A real OpenID Connect provider (the `oidc-provider` package) for accesskeyd's integration
// tests. NOT for production: development interactions, in-memory storage, test-only routes.
//
// Run: OIDC_CONFIG='<json>' node server.mjs
//
// OIDC_CONFIG:
//   {
//     "port": 0,                      // 0 = any free port; the issuer names the one bound
//     "clients": [{ "client_id": "...", "client_secret": "...", "redirect_uris": ["..."] }],
//     "accounts": { "<sub>": { "preferred_username": "...", "email": "...", "name": "...",
//                              "groups": ["..."] } },
//     "ttl": { "AuthorizationCode": 60, ... },   // optional overrides, seconds
//     "exit_with_stdin": true                    // optional: exit when stdin closes
//   }
//
// Issuer: http://127.0.0.1:<port>, listening on 127.0.0.1 only. Prints "ready <issuer>" on
// stdout once it accepts connections; errors go to stderr.
//
// Clients authenticate with client_secret_basic or client_secret_post (oidc-provider treats
// the two as one method); PKCE with S256 is required for every authorization request. Scopes:
// openid, profile (preferred_username, name), email (email, email_verified), groups (groups).
// ID tokens carry the claims of the granted scopes (conformIdTokenClaims: false).
//
// Login goes through oidc-provider's devInteractions: the login form accepts any password and
// signs in the account whose sub equals the login name (an unknown sub fails the flow); the
// consent form grants what was asked.
//
// Test-only routes:
//   GET /test/health  -> 200 {"ok":true,"issuer":...}
//   GET /test/rotate  -> generates a new RS256 signing key, puts it first in the JWKS (new
//                        tokens are signed with it), keeps the old public keys published;
//                        with ?retire=1 the old keys are dropped. 200 {"kid":<new>,"kids":[...]}
//   SIGUSR2           -> same as GET /test/rotate
//   GET /test/username?sub=S&value=V -> from now on the account S has preferred_username V
//                        (as a person who may edit their username at the provider does);
//                        200 {"sub":S,"preferred_username":V}, 404 for an unknown sub
//   GET /test/jwks    -> the public JWKS currently served (same as the jwks_uri)
//   GET /test/token-mode?mode=M -> from now on (also across rotations), the id_token in the
//                        token endpoint's JSON answer is altered; 200 {"mode":M,"previous":...},
//                        400 for an unknown mode. M is one of:
//       normal          untouched (the initial mode)
//       tampered        payload changed (sub and preferred_username get a "tampered-" prefix)
//                       and re-encoded, ORIGINAL header and signature kept: does not verify
//       wrong-audience  aud = "someone-else", other claims (nonce, ...) unchanged, re-signed
//                       with the private key named by the header's kid: verifies
//       lean            only protocol claims (no profile, email or groups), re-signed: the
//                       client must read userinfo
//       expired         exp = now - 2 h, iat = exp - the token's lifetime (so both 2 h or more
//                       in the past), other claims unchanged, re-signed: verifies
//                     Done by a Koa middleware (provider.use) around POST /token.
//
// How rotation works: oidc-provider reads `jwks` once, when a Provider is constructed, and
// signs with the first key fitting the algorithm. So a rotation constructs a new Provider with
// the new key in front and swaps it in behind the same HTTP server. Codes, sessions, grants
// and interactions survive it: they live in this file's memory adapter, one store shared by
// every Provider instance (oidc-provider's built-in one is per instance), and the cookie
// signing keys are fixed for the process.
//
// A login as an unknown sub is answered 400 here (oidc-provider itself would fail later with a
// server_error).

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

function fail(message) {
  process.stderr.write(`oidc-provider test server: ${message}\n`);
  process.exit(2);
}

let config;
try {
  config = JSON.parse(process.env.OIDC_CONFIG ?? '');
} catch (e) {
  fail(`OIDC_CONFIG must be JSON: ${e.message}`);
}
if (typeof config !== 'object' || config === null) fail('OIDC_CONFIG must be a JSON object');
const port = config.port ?? 0;
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad port ${port}`);
const clients = config.clients ?? [];
const accounts = config.accounts ?? {};
if (!Array.isArray(clients)) fail('clients must be an array');
for (const c of clients) {
  if (!c.client_id || !c.client_secret || !Array.isArray(c.redirect_uris) || !c.redirect_uris.length) {
    fail(`client needs client_id, client_secret and redirect_uris: ${JSON.stringify(c)}`);
  }
}

// Cookie signing keys, fixed for the process so that they survive a key rotation.
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];

let keyCounter = 0;
function newSigningKey() {
  keyCounter += 1;
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: `test-key-${keyCounter}-${crypto.randomBytes(4).toString('hex')}`,
    alg: 'RS256',
    use: 'sig',
  };
}

const publicJwk = ({ kty, kid, alg, use, n, e }) => ({ kty, kid, alg, use, n, e });

// Private JWKs, the signing one first.
let signingKeys = [newSigningKey()];

// The storage adapter (oidc-provider's adapter interface), shared by all Provider instances.
// In memory, entries expire with their artifacts; a test process is short-lived.
const store = new Map(); // "<Model>:<id>" -> { payload, expiresAt (ms) }

class SharedMemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  static live(key) {
    const entry = store.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  findBy(property, value) {
    const prefix = `${this.model}:`;
    for (const [key, entry] of store) {
      if (key.startsWith(prefix) && entry.payload[property] === value) {
        return SharedMemoryAdapter.live(key);
      }
    }
    return undefined;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(this.key(id), { payload, expiresAt });
  }

  async find(id) {
    return SharedMemoryAdapter.live(this.key(id));
  }

  async findByUid(uid) {
    return this.findBy('uid', uid);
  }

  async findByUserCode(userCode) {
    return this.findBy('userCode', userCode);
  }

  async consume(id) {
    const payload = SharedMemoryAdapter.live(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const [key, entry] of store) {
      if (entry.payload.grantId === grantId) store.delete(key);
    }
  }
}

async function findAccount(_ctx, sub) {
  if (!Object.hasOwn(accounts, sub)) return undefined;
  const a = accounts[sub];
  return {
    accountId: sub,
    // The provider keeps only the claims of the granted scopes.
    async claims() {
      return {
        sub,
        preferred_username: a.preferred_username,
        name: a.name,
        email: a.email,
        email_verified: a.email_verified ?? (a.email !== undefined ? true : undefined),
        groups: a.groups ?? [],
      };
    },
  };
}

function buildProvider(issuer) {
  const provider = new Provider(issuer, {
    clients: clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      redirect_uris: c.redirect_uris,
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_basic',
    })),
    adapter: SharedMemoryAdapter,
    findAccount,
    jwks: { keys: signingKeys },
    cookies: { keys: cookieKeys },
    scopes: ['openid', 'profile', 'email', 'groups'],
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
    },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      ...(config.ttl ?? {}),
    },
  });
  const log = (event) => (ctx, err) => {
    const e = err ?? ctx;
    process.stderr.write(`oidc-provider ${event}: ${e?.name ?? ''} ${e?.message ?? e} ${e?.error_description ?? ''}\n`);
  };
  for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error']) {
    provider.on(event, log(event));
  }
  provider.use(tokenModeMiddleware);
  return provider;
}

// Test-only ID token tampering at the token endpoint (GET /test/token-mode).
const TOKEN_MODES = new Set(['normal', 'tampered', 'wrong-audience', 'expired', 'lean']);
let tokenMode = 'normal';

const b64json = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const unb64json = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

// Signs `header.payload` (both already base64url) with the private key named by header.kid.
function resign(headerPart, payload) {
  const header = unb64json(headerPart);
  if (header.alg !== 'RS256') throw new Error(`cannot re-sign a ${header.alg} token`);
  const jwk = signingKeys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error(`no private key with kid ${header.kid}`);
  const input = `${headerPart}.${b64json(payload)}`;
  const key = crypto.createPrivateKey({ key: jwk, format: 'jwk' });
  return `${input}.${crypto.sign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

function alterIdToken(idToken, mode) {
  const [headerPart, payloadPart, signaturePart] = idToken.split('.');
  const payload = unb64json(payloadPart);
  switch (mode) {
    case 'tampered': {
      payload.sub = `tampered-${payload.sub}`;
      if (payload.preferred_username !== undefined) {
        payload.preferred_username = `tampered-${payload.preferred_username}`;
      }
      return `${headerPart}.${b64json(payload)}.${signaturePart}`;
    }
    case 'wrong-audience':
      payload.aud = 'someone-else';
      return resign(headerPart, payload);
    case 'expired': {
      const now = Math.floor(Date.now() / 1000);
      const lifetime = payload.exp - payload.iat;
      payload.exp = now - 2 * 3600;
      payload.iat = payload.exp - lifetime;
      return resign(headerPart, payload);
    }
    case 'lean': {
      // Only the protocol claims: the profile must come from userinfo, as with providers
      // that keep ID tokens small.
      const keep = ['iss', 'sub', 'aud', 'exp', 'iat', 'nonce', 'auth_time', 'at_hash', 'azp', 'sid', 'acr', 'amr'];
      const lean = Object.fromEntries(Object.entries(payload).filter(([k]) => keep.includes(k)));
      return resign(headerPart, lean);
    }
    default:
      return idToken;
  }
}

async function tokenModeMiddleware(ctx, next) {
  await next();
  const mode = tokenMode;
  if (mode === 'normal' || ctx.method !== 'POST' || ctx.path !== '/token') return;
  const body = ctx.body;
  if (ctx.status !== 200 || typeof body?.id_token !== 'string') return;
  ctx.body = { ...body, id_token: alterIdToken(body.id_token, mode) };
  process.stderr.write(`oidc-provider: token endpoint answered an id_token altered by token mode ${mode}\n`);
}

let provider;
let handler;
let issuer;

function rotate({ retire = false } = {}) {
  const key = newSigningKey();
  signingKeys = retire ? [key] : [key, ...signingKeys];
  provider = buildProvider(issuer);
  handler = provider.callback();
  const kids = signingKeys.map((k) => k.kid);
  process.stderr.write(`oidc-provider: rotated signing key; now signing with ${key.kid}, publishing ${kids.join(' ')}\n`);
  return { kid: key.kid, kids };
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, issuer);
  if (req.method === 'POST' && url.pathname.startsWith('/interaction/')) {
    // The devInteractions login form: refuse a sub that is not an account. The body is read
    // here, so oidc-provider takes it from req.body (it supports upstream body parsers).
    let body;
    try {
      body = await readBody(req);
    } catch (e) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      return res.end(e.message);
    }
    const form = new URLSearchParams(body);
    const login = form.get('login') ?? '';
    if (form.get('prompt') === 'login' && !Object.hasOwn(accounts, login)) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      return res.end(`login failed: no account with sub ${JSON.stringify(login)} at this test provider\n`);
    }
    req.body = body;
    return handler(req, res);
  }
  if (url.pathname.startsWith('/test/')) {
    if (req.method !== 'GET') return json(res, 405, { error: 'GET only' });
    switch (url.pathname) {
      case '/test/health':
        return json(res, 200, { ok: true, issuer });
      case '/test/rotate':
        return json(res, 200, rotate({ retire: url.searchParams.get('retire') === '1' }));
      case '/test/jwks':
        return json(res, 200, { keys: signingKeys.map(publicJwk) });
      case '/test/username': {
        const sub = url.searchParams.get('sub') ?? '';
        const value = url.searchParams.get('value') ?? '';
        if (!Object.hasOwn(accounts, sub)) return json(res, 404, { error: 'unknown sub', sub });
        accounts[sub].preferred_username = value;
        process.stderr.write(`oidc-provider: ${sub} now has preferred_username ${value}\n`);
        return json(res, 200, { sub, preferred_username: value });
      }
      case '/test/token-mode': {
        const mode = url.searchParams.get('mode');
        if (!TOKEN_MODES.has(mode)) {
          return json(res, 400, { error: `mode must be one of ${[...TOKEN_MODES].join(', ')}`, mode });
        }
        const previous = tokenMode;
        tokenMode = mode;
        process.stderr.write(`oidc-provider: token mode ${previous} -> ${mode}\n`);
        return json(res, 200, { mode, previous });
      }
      default:
        return json(res, 404, { error: 'unknown test route' });
    }
  }
  return handler(req, res);
});

server.on('error', (e) => fail(`cannot listen on 127.0.0.1:${port}: ${e.code ?? ''} ${e.message}`));
server.listen(port, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  provider = buildProvider(issuer);
  handler = provider.callback();
  process.stdout.write(`ready ${issuer}\n`);
});

process.on('SIGUSR2', () => {
  if (issuer) rotate();
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
if (config.exit_with_stdin) {
  // The test process holds our stdin: when it dies (even by SIGKILL) the pipe closes.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
