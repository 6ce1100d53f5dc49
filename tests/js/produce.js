#!/usr/bin/env node
// kafkajs producer driven by tests/integration (tests_clients.py).
//
// Reads one JSON object on stdin:
//   { "brokers": ["127.0.0.1:9092"], "topic": "t", "acks": -1|0|1,
//     "compression": "none"|"gzip"|"snappy", "timeout_ms": 30000,
//     "records": [ { "partition": 0, "key": b64|null, "value": b64|null,
//                    "headers": [[name, b64|null], ...], "timestamp": ms } ],
//     "security": { optional: "protocol", "mechanism", "username", "password",
//                   "ca_file", "cert_file", "key_file", "server_hostname" } }
// Writes one JSON object on stdout:
//   { "ok": true, "results": [ {topicName, partition, errorCode, baseOffset} ] }
//   or { "ok": false, "error": "..." }  (exit status 1)
// kafkajs' own log lines go to stderr.
//
// "security" maps onto kafkajs' ssl (Node's tls.connect options: ca, cert,
// key, servername; certificates always verified) and sasl ({mechanism:
// 'plain'|'scram-sha-256'|'scram-sha-512', username, password}).
'use strict';

const fs = require('fs');
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs');

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on('data', (c) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

function b64(v) {
  return v === null || v === undefined ? null : Buffer.from(v, 'base64');
}

// kafkajs takes headers as an object; repeated names become an array, which
// it writes as consecutive headers in order.
function headersOf(list) {
  const h = {};
  for (const [name, value] of list || []) {
    const v = b64(value);
    if (Object.prototype.hasOwnProperty.call(h, name)) {
      h[name] = Array.isArray(h[name]) ? h[name].concat([v]) : [h[name], v];
    } else {
      h[name] = v;
    }
  }
  return h;
}

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
};

const PROTOCOLS = ['PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'];
const MECHANISMS = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'];

// kafkajs' ssl and sasl settings for the request's "security" ({} without).
function securityConfig(sec) {
  if (!sec) return {};
  const proto = String(sec.protocol || 'PLAINTEXT').toUpperCase();
  if (!PROTOCOLS.includes(proto)) throw new Error('kafkajs: unknown security.protocol ' + sec.protocol);
  const tls = proto === 'SSL' || proto === 'SASL_SSL';
  const out = {};
  if (tls) {
    out.ssl = { rejectUnauthorized: true };
    if (sec.ca_file) out.ssl.ca = [fs.readFileSync(sec.ca_file)];
    if (!!sec.cert_file !== !!sec.key_file) throw new Error('security: cert_file and key_file go together');
    if (sec.cert_file) {
      out.ssl.cert = fs.readFileSync(sec.cert_file);
      out.ssl.key = fs.readFileSync(sec.key_file);
    }
    if (sec.server_hostname) out.ssl.servername = sec.server_hostname;
  } else if (sec.ca_file || sec.cert_file || sec.key_file || sec.server_hostname) {
    throw new Error('security: TLS files or server_hostname with protocol ' + proto);
  }
  if (proto.startsWith('SASL_')) {
    const mech = String(sec.mechanism || '').toUpperCase();
    if (!MECHANISMS.includes(mech)) throw new Error('kafkajs: unsupported sasl mechanism ' + sec.mechanism);
    out.sasl = { mechanism: mech.toLowerCase(), username: sec.username, password: sec.password };
  }
  return out;
}

async function main() {
  const req = JSON.parse(await readStdin());
  if (req.compression === 'snappy') {
    CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy');
  }
  if (!(req.compression in CODECS)) throw new Error('unknown compression ' + req.compression);

  const kafka = new Kafka({
    clientId: 'sluice-it-kafkajs',
    brokers: req.brokers,
    connectionTimeout: 5000,
    requestTimeout: req.timeout_ms || 30000,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
    logLevel: logLevel.WARN,
    logCreator: () => ({ level, log }) => {
      process.stderr.write(`kafkajs ${level} ${log.message} ${JSON.stringify(log)}\n`);
    },
    ...securityConfig(req.security),
  });
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false });
  await producer.connect();
  try {
    const messages = req.records.map((r) => ({
      partition: r.partition,
      key: b64(r.key),
      value: b64(r.value),
      headers: headersOf(r.headers),
      timestamp: String(r.timestamp),
    }));
    const results = await producer.send({
      topic: req.topic,
      acks: req.acks,
      timeout: req.timeout_ms || 30000,
      compression: CODECS[req.compression],
      messages,
    });
    process.stdout.write(JSON.stringify({ ok: true, results }) + '\n');
  } finally {
    await producer.disconnect();
  }
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ ok: false, error: String(e && (e.stack || e)) }) + '\n');
  process.exit(1);
});
