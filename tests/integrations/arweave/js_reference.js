#!/usr/bin/env node
// Reference answers from arweave-js (node_modules/arweave, the library arlocal uses),
// so tests/integrations/arweave compares the Python client with an independent implementation.
//
// stdin: a JSON list of requests; stdout: a JSON list of answers, same order.
// Binary values travel as unpadded base64url. Requests:
//   {"op": "deep_hash", "input": <nested lists of base64url strings>}
//   {"op": "chunks", "data": b64}  -> data_root, chunks [[min, max, dataHash]], proofs [[offset, proof]]
//   {"op": "generate_jwk"}          -> a fresh RSA-4096 JWK (test-time only; never stored)
//   {"op": "address", "jwk": {...}}
//   {"op": "sign", "jwk": {...}, "data": b64, "tags": [[name, value]], "last_tx": s, "reward": s}
//   {"op": "signature_data", "tx": {...}}
//   {"op": "verify", "tx": {...}}   -> true/false (an id/signature mismatch is false too)
'use strict';

const Arweave = require('arweave');
const deepHash = require('arweave/node/lib/deepHash').default;
const merkle = require('arweave/node/lib/merkle');
const Transaction = require('arweave/node/lib/transaction').default;
const { b64UrlToBuffer, bufferTob64Url } = require('arweave/node/lib/utils');

// Never contacted: every request below is offline (last_tx and reward are given).
const arweave = Arweave.init({ host: '127.0.0.1', port: 1, protocol: 'http' });

function decodeTree(node) {
  return Array.isArray(node) ? node.map(decodeTree) : b64UrlToBuffer(node);
}

async function answer(req) {
  switch (req.op) {
    case 'deep_hash':
      return bufferTob64Url(await deepHash(decodeTree(req.input)));
    case 'chunks': {
      const result = await merkle.generateTransactionChunks(b64UrlToBuffer(req.data));
      return {
        data_root: bufferTob64Url(result.data_root),
        chunks: result.chunks.map((c) => [c.minByteRange, c.maxByteRange, bufferTob64Url(c.dataHash)]),
        proofs: result.proofs.map((p) => [p.offset, bufferTob64Url(p.proof)]),
      };
    }
    case 'generate_jwk':
      return arweave.wallets.generate();
    case 'address':
      return arweave.wallets.jwkToAddress(req.jwk);
    case 'sign': {
      const tx = await arweave.createTransaction(
        { data: b64UrlToBuffer(req.data), last_tx: req.last_tx, reward: req.reward }, req.jwk);
      for (const [name, value] of req.tags) tx.addTag(name, value);
      await arweave.transactions.sign(tx, req.jwk);
      return tx.toJSON();
    }
    case 'signature_data':
      return bufferTob64Url(await new Transaction(req.tx).getSignatureData());
    case 'verify':
      try {
        return await arweave.transactions.verify(new Transaction(req.tx));
      } catch (err) {
        return false;
      }
    default:
      throw new Error(`unknown op ${req.op}`);
  }
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const requests = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const answers = [];
  for (const req of requests) answers.push(await answer(req));
  process.stdout.write(JSON.stringify(answers));
}

// arweave-js console.warn()s on every failed verify; silence it so stderr stays for real errors.
console.warn = () => {};
main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
