#!/usr/bin/env node
// A development OpenID Connect provider for ECE: npm oidc-provider 9.13.3 on one interface.
//
// Why it exists: the API's "sign in with ..." flow (api/oauth) must be exercised end to
// end, authorization code + PKCE + state + nonce + ID token checked against the JWKS,
// without a Google account or the internet. This is a real, certified OpenID provider
// library with its development login and consent forms, an in-memory store and a
// signing key generated at every start. It is for development and tests only.
//
// Accounts: the development login form accepts any login and ignores the password.
// The login becomes the subject (`sub`); the email is the login when it contains an
// `@`, else `<login>@oidc.example.com`. Logins starting with `unverified` carry
// `email_verified: false`. The seeded account `alice` is "Alice Example",
// alice@example.com.
//
// Clients: the JSON list in the environment variable OIDC_CLIENTS (secrets stay out
// of the process list), each {client_id, client_secret, redirect_uris,
// id_token_ttl?, token_delay_ms?}. `id_token_ttl` (seconds, default 3600) and
// `token_delay_ms` (the token endpoint answers that much later) let a test client
// receive an ID token that has already expired on arrival, as from a provider whose
// clock is behind.
//
// Usage: OIDC_CLIENTS='[...]' node ops/oidc/provider.mjs --port 9400 [--host 127.0.0.1]
//          [--issuer http://127.0.0.1:9400]
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

const SEEDED = {
  alice: { name: 'Alice Example', email: 'alice@example.com', email_verified: true },
};

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 9400, issuer: '' };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      i += 1;
      return argv[i];
    };
    if (arg === '--host') opts.host = next();
    else if (arg === '--port') opts.port = Number(next());
    else if (arg === '--issuer') opts.issuer = next();
    else throw new Error(`unknown argument ${arg}`);
  }
  if (!Number.isInteger(opts.port) || opts.port <= 0 || opts.port > 65535) throw new Error('--port must be 1..65535');
  opts.issuer = (opts.issuer || `http://${opts.host}:${opts.port}`).replace(/\/+$/, '');
  return opts;
}

function parseClients(raw) {
  const clients = JSON.parse(raw || '[]');
  if (!Array.isArray(clients) || clients.length === 0) throw new Error('OIDC_CLIENTS must be a non-empty JSON list');
  for (const c of clients) {
    if (!c.client_id || !c.client_secret || !Array.isArray(c.redirect_uris) || c.redirect_uris.length === 0) {
      throw new Error('each client needs client_id, client_secret and redirect_uris');
    }
  }
  return clients;
}

function account(id) {
  const seeded = SEEDED[id];
  const email = seeded?.email ?? (id.includes('@') ? id.toLowerCase() : `${id.toLowerCase()}@oidc.example.com`);
  const claims = {
    sub: id,
    email,
    email_verified: seeded?.email_verified ?? !id.startsWith('unverified'),
    name: seeded?.name ?? id,
    preferred_username: id.split('@')[0],
  };
  return { accountId: id, claims: async () => claims };
}

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };
}

function configuration(clients) {
  const byId = new Map(clients.map((c) => [c.client_id, c]));
  return {
    clients: clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      redirect_uris: c.redirect_uris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    // Every client must send a PKCE S256 challenge, confidential ones included.
    pkce: { required: () => true },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    scopes: ['openid', 'email', 'profile'],
    // The ID token carries the scopes' claims (email), as Google's does; the relying
    // party needs no userinfo call.
    conformIdTokenClaims: false,
    findAccount: async (_ctx, id) => account(id),
    jwks: { keys: [signingKey()] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    features: { devInteractions: { enabled: true } },
    ttl: {
      IdToken: (_ctx, _token, client) => byId.get(client.clientId)?.id_token_ttl ?? 3600,
      AccessToken: 600,
      AuthorizationCode: 60,
      Grant: 3600,
      Interaction: 600,
      Session: 3600,
    },
  };
}

// Holds the token endpoint's answer for clients with `token_delay_ms`.
function tokenDelay(clients) {
  const delays = new Map(clients.filter((c) => c.token_delay_ms).map((c) => [c.client_id, c.token_delay_ms]));
  return async (ctx, next) => {
    await next();
    const clientId = ctx.oidc?.client?.clientId;
    if (ctx.path === '/token' && delays.has(clientId)) {
      await new Promise((resolve) => { setTimeout(resolve, delays.get(clientId)); });
    }
  };
}

function main() {
  let opts;
  let clients;
  try {
    opts = parseArgs(process.argv.slice(2));
    clients = parseClients(process.env.OIDC_CLIENTS);
  } catch (err) {
    console.error(`[oidc] ${err.message}`);
    process.exit(2);
  }
  const provider = new Provider(opts.issuer, configuration(clients));
  provider.use(tokenDelay(clients));
  provider.on('server_error', (_ctx, err) => console.error(`[oidc] server_error: ${err.stack || err}`));
  provider.on('grant.error', (_ctx, err) => console.error(`[oidc] grant.error: ${err.message} ${err.error_description || ''}`));
  const server = http.createServer(provider.callback());
  server.on('error', (err) => {
    console.error(`[oidc] cannot listen on ${opts.host}:${opts.port}: ${err.message}`);
    process.exit(1);
  });
  server.listen(opts.port, opts.host, () => {
    console.log(`[oidc] issuer ${opts.issuer} listening on ${opts.host}:${opts.port}, clients ${clients.map((c) => c.client_id).join(', ')}`);
  });
  const stop = (signal) => {
    console.log(`[oidc] ${signal}: stopping`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main();
