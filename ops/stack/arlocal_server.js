#!/usr/bin/env node
// Local Arweave gateway for ECE: arlocal bound to one interface, with automatic mining.
//
// Why this file instead of `npx arlocal PORT`:
//  * arlocal's CLI calls `app.listen(port)` and so listens on every interface; a dev
//    gateway that mints free tokens must not be reachable from the network, so we
//    replace Koa's listen with one bound to --host (127.0.0.1 by default).
//  * `--dbpath :memory:` is broken in arlocal 1.1.66, and its CLI resolves --dbpath
//    against the current directory; here --dbpath is a directory we own
//    (<data_dir>/arweave/db) and the process runs *inside* <data_dir>/arweave because
//    arlocal appends an access log to the relative file `./logs`.
//  * arlocal only confirms transactions when someone calls GET /mine. Real Arweave
//    confirms on its own, so code written against it (status() polling) would hang
//    locally. We mine every --mine-interval-ms when something is pending
//    (0 disables it; tests and the Python client can still call /mine).
//
// Usage: node ops/stack/arlocal_server.js --port 1984 --dbpath /abs/dir
//          [--host 127.0.0.1] [--mine-interval-ms 1000] [--no-persist] [--quiet]
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 1984, dbpath: '', mineIntervalMs: 1000, persist: true, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--host') opts.host = next();
    else if (arg === '--port') opts.port = Number(next());
    else if (arg === '--dbpath') opts.dbpath = next();
    else if (arg === '--mine-interval-ms') opts.mineIntervalMs = Number(next());
    else if (arg === '--no-persist') opts.persist = false;
    else if (arg === '--quiet') opts.quiet = true;
    else throw new Error(`unknown argument ${arg}`);
  }
  if (!Number.isInteger(opts.port) || opts.port <= 0 || opts.port > 65535) throw new Error('--port must be 1..65535');
  if (!opts.dbpath || opts.dbpath === ':memory:') throw new Error('--dbpath must be a directory');
  if (!Number.isFinite(opts.mineIntervalMs) || opts.mineIntervalMs < 0) throw new Error('--mine-interval-ms must be >= 0');
  opts.dbpath = path.resolve(opts.dbpath);
  return opts;
}

function get(opts, route) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: opts.host, port: opts.port, path: route, timeout: 5000 }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function startMiner(opts, connection) {
  if (opts.mineIntervalMs === 0) return null;
  let busy = false;
  return setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      // Ask sqlite directly (not GET /tx/pending) so an idle gateway writes no log lines.
      const pending = await connection('transactions').where({ block: '' }).first('id');
      if (pending) await get(opts, '/mine');
    } catch (err) {
      console.error(`[arlocal_server] automine failed: ${err.message}`);
    } finally {
      busy = false;
    }
  }, opts.mineIntervalMs);
}

// arlocal's /mine reads and bumps the chain height without any locking, so two
// concurrent calls (the automine and a test's explicit /mine) could make two blocks
// at the same height. Run every /mine request one after the other.
function serializeMining() {
  let queue = Promise.resolve();
  return (ctx, next) => {
    if (!ctx.path.startsWith('/mine')) return next();
    const run = queue.then(() => next());
    queue = run.catch(() => {});
    return run;
  };
}

// Every arlocal write is its own sqlite transaction; with the default rollback journal
// each waits for an fsync, and one POST /tx makes several. WAL + synchronous=NORMAL
// stays consistent if this process crashes (only an OS crash can lose the last
// writes): right for a dev gateway, and it makes POST /tx about 3x faster. Set on
// every pooled connection (synchronous is per connection), by replacing arlocal's
// connect() before app.js calls it.
function useFastSqlite() {
  const connectModule = require('arlocal/bin/db/connect');
  const { knex } = require('knex');
  connectModule.connect = (dbPath) => knex({
    client: 'sqlite3',
    connection: { filename: path.join(dbPath, 'db.sqlite') },
    useNullAsDefault: true,
    pool: {
      afterCreate: (conn, done) => {
        conn.run('PRAGMA journal_mode=WAL', (err) => {
          if (err) return done(err, conn);
          conn.run('PRAGMA synchronous=NORMAL', (err2) => done(err2, conn));
        });
      },
    },
  });
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`[arlocal_server] ${err.message}`);
    process.exit(2);
  }
  useFastSqlite();
  const ArLocal = require('arlocal/bin/app').default;
  const home = path.dirname(opts.dbpath);
  fs.mkdirSync(home, { recursive: true });
  process.chdir(home); // arlocal writes ./logs relative to the working directory

  const arlocal = new ArLocal(opts.port, !opts.quiet, opts.dbpath, opts.persist, 0);
  const koa = arlocal.app;
  koa.listen = (port, callback) => {
    koa.middleware.unshift(serializeMining());
    const server = http.createServer(koa.callback());
    server.on('error', (err) => {
      console.error(`[arlocal_server] cannot listen on ${opts.host}:${port}: ${err.message}`);
      process.exit(1);
    });
    return server.listen(port, opts.host, callback);
  };
  await arlocal.start();
  console.log(`[arlocal_server] listening on http://${opts.host}:${opts.port} db=${opts.dbpath} ` +
    `persist=${opts.persist} mine-interval-ms=${opts.mineIntervalMs}`);
  const miner = startMiner(opts, arlocal.connection);

  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    console.log(`[arlocal_server] ${signal}: stopping`);
    if (miner) clearInterval(miner);
    // Not arlocal.stop(): in 1.1.66 it DROPS every table when persist is on (its
    // `down` migration tests the flag the wrong way round), which would leave a
    // db.sqlite without tables that the next start does not recreate.
    const server = arlocal.getServer();
    const finish = () => {
      arlocal.connection.destroy()
        .catch(() => {})
        .finally(() => {
          if (!opts.persist) fs.rmSync(opts.dbpath, { recursive: true, force: true });
          process.exit(0);
        });
    };
    if (server) {
      server.close(finish);
      if (server.closeIdleConnections) server.closeIdleConnections();
    } else {
      finish();
    }
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err) => {
  console.error(`[arlocal_server] failed: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
