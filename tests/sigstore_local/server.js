#!/usr/bin/env node
// Offline Sigstore for omsign's tests: Fulcio, Rekor v1 and a timestamp authority from
// Sigstore's own @sigstore/mock, served over plain HTTP on 127.0.0.1.
//
// Usage: node server.js [PORT [TUF_DIR]]   (PORT 0 or absent = a free port chosen by the OS)
//
// With TUF_DIR, files in it are served read-only under /tuf/ (a TUF repository holding the
// trusted root, written by the Python side after it has read the trust material below; the
// sigstore-js CLI only takes trust from TUF).
//
// Once listening it prints ONE JSON line on stdout: {"port", "url", "ca", "tlog", "ctlog", "tsa"}
// with the trust material (DER as base64, plus PEM for the CA root) from which the Python side
// writes a ClientTrustConfig. It exits when stdin closes, so it never outlives the test run that
// spawned it, and on SIGTERM/SIGINT. Request logs go to stderr.
//
// sigstore-python speaks slightly different dialects than the mock expects; the adapters below
// translate them (see /work/shared/notes/local-services.md):
//   Fulcio: OIDC token in `Authorization: Bearer`, CSR as base64(PEM)  -> JSON credentials + PEM
//   TSA:    a DER RFC 3161 TimeStampReq                                 -> the mock's JSON request
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const pathLib = require('path');
const asn1js = require('asn1js');
const {
  fulcioHandler,
  initializeCA,
  initializeCTLog,
  initializeTLog,
  initializeTSA,
  rekorHandler,
  tsaHandler,
} = require('@sigstore/mock');

const HOST = '127.0.0.1';
const MAX_BODY = 1024 * 1024;

function log(message) {
  process.stderr.write(`[sigstore-local] ${message}\n`);
}

function newKeyPair() {
  return crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

function derToPem(der, label) {
  const b64 = Buffer.from(der).toString('base64').match(/.{1,64}/g).join('\n');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

// ---------------------------------------------------------------- Fulcio body adapter

function adaptFulcioBody(body, headers) {
  const json = JSON.parse(body.toString('utf8'));
  if (!json.credentials) {
    const auth = headers.authorization || '';
    const match = /^Bearer\s+(.+)$/i.exec(auth);
    if (!match) {
      throw new Error('no OIDC token: neither credentials.oidcIdentityToken nor a Bearer header');
    }
    json.credentials = { oidcIdentityToken: match[1].trim() };
  }
  const csr = json.certificateSigningRequest;
  if (typeof csr === 'string' && !csr.includes('-----BEGIN')) {
    // sigstore-python sends base64(PEM); the mock parses PEM.
    json.certificateSigningRequest = Buffer.from(csr, 'base64').toString('utf8');
  }
  return JSON.stringify(json);
}

// ---------------------------------------------------------------- Rekor body adapter

// The mock logs the proposed entry verbatim. Real Rekor stores a *canonicalized* entry, which
// for dsse v0.0.1 differs from what clients propose (rekor pkg/types/dsse/v0.0.1/entry.go):
// the envelope is dropped and replaced by its hash, the payload hash and the list of
// {signature, verifier} pairs that verify. Verifiers (sigstore-python, sigstore-js) compare
// bundles against that stored form, so do what Rekor does before handing the entry over.
function pae(payloadType, payload) {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'utf8'),
    type,
    Buffer.from(` ${payload.length} `, 'utf8'),
    payload,
  ]);
}

function verifierKey(b64Pem) {
  const pem = Buffer.from(b64Pem, 'base64').toString('utf8');
  if (pem.includes('BEGIN CERTIFICATE')) {
    return new crypto.X509Certificate(pem).publicKey;
  }
  return crypto.createPublicKey(pem);
}

function canonicalizeDsse(entry) {
  const content = entry.spec && entry.spec.proposedContent;
  if (!content || typeof content.envelope !== 'string' || !Array.isArray(content.verifiers)) {
    throw new Error('dsse entry needs spec.proposedContent.envelope and verifiers');
  }
  const envelope = JSON.parse(content.envelope);
  const payload = Buffer.from(envelope.payload || '', 'base64');
  const message = pae(envelope.payloadType || '', payload);
  const signatures = [];
  for (const sig of envelope.signatures || []) {
    for (const verifier of content.verifiers) {
      const ok = crypto.verify('sha256', message, verifierKey(verifier), Buffer.from(sig.sig, 'base64'));
      if (ok) {
        signatures.push({ signature: sig.sig, verifier });
        break;
      }
    }
  }
  if (signatures.length === 0 || signatures.length !== (envelope.signatures || []).length) {
    throw new Error('dsse envelope signature does not verify against the given verifiers');
  }
  const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex');
  return {
    apiVersion: entry.apiVersion,
    kind: entry.kind,
    spec: {
      envelopeHash: { algorithm: 'sha256', value: sha256(Buffer.from(content.envelope, 'utf8')) },
      payloadHash: { algorithm: 'sha256', value: sha256(payload) },
      signatures,
    },
  };
}

function adaptRekorBody(body) {
  const entry = JSON.parse(body.toString('utf8'));
  if (entry.kind === 'dsse' && entry.apiVersion === '0.0.1') {
    return JSON.stringify(canonicalizeDsse(entry));
  }
  return JSON.stringify(entry);
}

// ---------------------------------------------------------------- TSA request adapter

const HASH_NAMES = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

// TimeStampReq ::= SEQUENCE { version INTEGER, messageImprint MessageImprint,
//   reqPolicy OID OPTIONAL, nonce INTEGER OPTIONAL, certReq BOOLEAN DEFAULT FALSE,
//   extensions [0] IMPLICIT Extensions OPTIONAL }            (RFC 3161 section 2.4.1)
function parseTimeStampReq(der) {
  const parsed = asn1js.fromBER(new Uint8Array(der));
  if (parsed.offset === -1 || !(parsed.result instanceof asn1js.Sequence)) {
    throw new Error('timestamp request is not a DER SEQUENCE');
  }
  const items = parsed.result.valueBlock.value;
  const imprint = items[1];
  if (!(imprint instanceof asn1js.Sequence) || imprint.valueBlock.value.length !== 2) {
    throw new Error('timestamp request has no messageImprint');
  }
  const [algorithm, hashed] = imprint.valueBlock.value;
  const oid = algorithm.valueBlock.value[0].valueBlock.toString();
  if (!HASH_NAMES[oid]) {
    throw new Error(`unsupported hash algorithm ${oid}`);
  }
  const request = {
    artifactHash: Buffer.from(hashed.valueBlock.valueHexView).toString('base64'),
    hashAlgorithm: HASH_NAMES[oid],
    certificates: false,
  };
  let nonce;
  for (const item of items.slice(2)) {
    if (item instanceof asn1js.ObjectIdentifier) {
      request.tsaPolicyOID = item.valueBlock.toString();
    } else if (item instanceof asn1js.Integer) {
      nonce = item.toBigInt();
    } else if (item instanceof asn1js.Boolean) {
      request.certificates = item.valueBlock.value;
    }
  }
  return { json: JSON.stringify(request), nonce };
}

// The mock encodes the nonce from a JS number, which cannot hold the 64-bit nonces that
// rfc3161-client sends. Re-encode it from the exact BigInt so the reply echoes the request's
// nonce, as RFC 3161 demands. (`tstInfo` is the mock's own per-request hook, version-pinned.)
function echoExactNonce(tsa) {
  if (typeof tsa.tstInfo !== 'function') {
    log('warning: @sigstore/mock TSA has no tstInfo(); nonces > 2^53 are not echoed exactly');
    return (nonce) => nonce;
  }
  let pending;
  const original = tsa.tstInfo.bind(tsa);
  tsa.tstInfo = (req) => {
    const info = original(req);
    if (pending !== undefined) {
      info.nonce = asn1js.Integer.fromBigInt(pending);
    }
    return info;
  };
  // Requests are handled one at a time (see serialize below), so one slot suffices.
  return (nonce) => {
    pending = nonce;
  };
}

// ---------------------------------------------------------------- TUF repository (static)

function serveStatic(root, urlPath) {
  const relative = decodeURIComponent(urlPath.slice('/tuf/'.length));
  const file = pathLib.resolve(root, relative);
  if (!relative || !file.startsWith(pathLib.resolve(root) + pathLib.sep)) {
    return { statusCode: 404, response: 'not found' };
  }
  try {
    const data = fs.readFileSync(file);
    return { statusCode: 200, response: data, contentType: 'application/octet-stream' };
  } catch (e) {
    return { statusCode: 404, response: 'not found' };
  }
}

// ---------------------------------------------------------------- HTTP plumbing

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res, statusCode, body, contentType) {
  const payload = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);
  res.writeHead(statusCode, {
    'Content-Type': contentType || 'text/plain',
    'Content-Length': payload.length,
  });
  res.end(payload);
}

async function main() {
  const requestedPort = Number.parseInt(process.argv[2] || '0', 10);
  const tufDir = process.argv[3];
  if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65535) {
    throw new Error(`bad port ${process.argv[2]}`);
  }

  // Work is serialized: the TSA nonce slot and the mock's state need no concurrency.
  let queue = Promise.resolve();
  const serialize = (fn) => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };

  let routes = null; // filled once the port (needed for the Rekor origin) is known
  const server = http.createServer((req, res) => {
    serialize(async () => {
      const path = new URL(req.url, `http://${HOST}`).pathname;
      try {
        const body = await readBody(req);
        let route = routes && routes[`${req.method} ${path}`];
        if (!route && tufDir && req.method === 'GET' && path.startsWith('/tuf/')) {
          route = async () => serveStatic(tufDir, path);
        }
        if (!route) {
          log(`${req.method} ${path} -> 404`);
          send(res, 404, `no route for ${req.method} ${path}`);
          return;
        }
        const result = await route(body, req.headers);
        log(`${req.method} ${path} -> ${result.statusCode}`);
        if (result.statusCode >= 400 && result.statusCode !== 404) {
          log(`  ${String(result.response).slice(0, 500)}`);
        }
        send(res, result.statusCode, result.response, result.contentType);
      } catch (e) {
        log(`${req.method} ${path} -> 400 ${e.message}`);
        send(res, 400, e.message);
      }
    });
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(requestedPort, HOST, resolve);
  });
  const port = server.address().port;
  const url = `http://${HOST}:${port}`;

  const ctlog = await initializeCTLog(newKeyPair());
  const ca = await initializeCA(newKeyPair(), ctlog);
  const tlog = await initializeTLog(url, newKeyPair());
  const tsa = await initializeTSA(newKeyPair());
  // Whole-second genTime: pkijs drops trailing zeros of the milliseconds (".12Z"), which
  // sigstore-js's time parser rejects ("invalid time") about one time in ten.
  tsa.getCurrentTime = () => {
    const now = new Date();
    now.setMilliseconds(0);
    return now;
  };
  const setNonce = echoExactNonce(tsa);

  const fulcio = fulcioHandler(ca, { strict: true });
  const rekor = rekorHandler(tlog, { strict: true });
  const timestamp = tsaHandler(tsa, { strict: true });
  const rootPem = derToPem(ca.rootCertificate, 'CERTIFICATE');

  routes = {
    [`POST ${fulcio.path}`]: (body, headers) => fulcio.fn(adaptFulcioBody(body, headers)),
    [`POST ${rekor.path}`]: (body) => rekor.fn(adaptRekorBody(body)),
    [`POST ${timestamp.path}`]: (body, headers) => {
      const type = String(headers['content-type'] || '');
      if (type.startsWith('application/json')) {
        setNonce(undefined);
        return timestamp.fn(body.toString('utf8'));
      }
      const { json, nonce } = parseTimeStampReq(body);
      setNonce(nonce);
      return timestamp.fn(json);
    },
    // Fulcio's trust bundle, for clients that ask for the chain.
    'GET /api/v2/trustBundle': async () => ({
      statusCode: 200,
      response: JSON.stringify({ chains: [{ certificates: [rootPem] }] }),
      contentType: 'application/json',
    }),
  };

  const b64 = (der) => Buffer.from(der).toString('base64');
  const material = {
    port,
    url,
    ca: { root_der: b64(ca.rootCertificate), root_pem: rootPem },
    tlog: { public_key_der: b64(tlog.publicKey), base_url: url },
    ctlog: { public_key_der: b64(ctlog.publicKey), log_id: b64(ctlog.logID) },
    tsa: {
      url: `${url}${timestamp.path}`,
      // leaf (the signing certificate) first, then the root, as in trusted_root.json
      cert_chain_der: [b64(tsa.intCertificate), b64(tsa.rootCertificate)],
    },
    paths: { fulcio: fulcio.path, rekor: rekor.path, tsa: timestamp.path },
  };
  // Handlers first, then the ready line: a caller may signal us the moment it reads it.
  const shutdown = (why) => {
    log(`stopping (${why})`);
    server.close();
    process.exit(0);
  };
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('close', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  process.stdout.write(`${JSON.stringify(material)}\n`);
  log(`listening on ${url}`);
}

main().catch((e) => {
  log(`fatal: ${e.stack || e.message}`);
  process.exit(1);
});
