#!/usr/bin/env node
// kafkajs producer driven by tests/integration (tests_clients.py).
//
// Reads one JSON object on stdin:
//   { "brokers": ["127.0.0.1:9092"], "topic": "t", "acks": -1|0|1,
//     "compression": "none"|"gzip"|"snappy", "timeout_ms": 30000,
//     "records": [ { "partition": 0, "key": b64|null, "value": b64|null,
//                    "headers": [[name, b64|null], ...], "timestamp": ms } ] }
// Writes one JSON object on stdout:
//   { "ok": true, "results": [ {topicName, partition, errorCode, baseOffset} ] }
//   or { "ok": false, "error": "..." }  (exit status 1)
// kafkajs' own log lines go to stderr.
'use strict';

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
