#!/usr/bin/env node
// Reference consumer for homecare-agent events (docs/integrators.md).
//
// Subscribes to homecare/+/events/# (QoS 1), verifies every event's signature with the
// device's public key (PEM or JWK), checks typ and kid, de-duplicates by jti, tracks seq
// per device and reports gaps (a gap across a new `boot` is normal: the agent reserves
// seq numbers in blocks). Prints one JSON report on stdout on SIGTERM/SIGINT, after
// --count unique events, or after --idle seconds without a new event. Progress and
// connection notes go to stderr as JSON lines.
//
//   node consumer.mjs --url mqtt://broker:1883 --key gw-0001.pub.pem \
//        [--kid KID] [--username U --password-file F] [--protocol 3.1.1|5]
//        [--topic 'homecare/+/events/#'] [--count N] [--idle S] [--progress N]
//
// --progress N notes {"event":"progress","unique":n} on stderr every N new events.
//
// Environment: HOMECARE_KEY (key file), HOMECARE_KID, MQTT_URL, MQTT_USERNAME,
// MQTT_PASSWORD_FILE. The password is read from a file, never taken on the command line.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import {
  calculateJwkThumbprint, compactVerify, decodeProtectedHeader, exportJWK, importJWK,
  importSPKI,
} from "jose";

const TYP = "homecare-event+jwt";
const REQUIRED = ["v", "iss", "jti", "seq", "boot", "iat", "ts", "ts_sync", "type", "sensor",
  "prio", "data"];

const { values: opt } = parseArgs({
  options: {
    url: { type: "string", default: process.env.MQTT_URL ?? "mqtt://localhost:1883" },
    key: { type: "string", default: process.env.HOMECARE_KEY },
    kid: { type: "string", default: process.env.HOMECARE_KID },
    alg: { type: "string", default: "EdDSA" },
    username: { type: "string", default: process.env.MQTT_USERNAME },
    "password-file": { type: "string", default: process.env.MQTT_PASSWORD_FILE },
    protocol: { type: "string", default: "5" },
    topic: { type: "string", default: "homecare/+/events/#" },
    "client-id": { type: "string" },
    count: { type: "string" },
    idle: { type: "string" },
    progress: { type: "string" },
  },
});
if (!opt.key) {
  console.error("consumer: give the device's public key with --key FILE (PEM or JWK) or HOMECARE_KEY");
  process.exit(2);
}
if (opt.alg !== "EdDSA") {
  console.error("consumer: this reference consumer verifies EdDSA (Ed25519) events only");
  process.exit(2);
}

// --- the key and its kid -------------------------------------------------------------
async function loadKey(path) {
  const text = readFileSync(path, "utf8").trim();
  let jwk;
  if (text.startsWith("{")) {
    jwk = JSON.parse(text);
  } else {
    jwk = await exportJWK(await importSPKI(text, "EdDSA", { extractable: true }));
  }
  if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || jwk.d) {
    throw new Error(`${path}: expected an Ed25519 public key (OKP/Ed25519 JWK or SPKI PEM)`);
  }
  const publicJwk = { kty: "OKP", crv: "Ed25519", x: jwk.x };
  return {
    key: await importJWK(publicJwk, "EdDSA"),
    kid: opt.kid ?? jwk.kid ?? await calculateJwkThumbprint(publicJwk, "sha256"),
  };
}
const { key, kid } = await loadKey(opt.key);

// --- bookkeeping -----------------------------------------------------------------------
const firstToken = new Map();   // jti -> token as first received
const duplicateJtis = new Set();
const byDevice = new Map();     // iss -> Map(seq -> boot)
const bad = [];
let received = 0;
let duplicates = 0;
let duplicateMismatches = 0;
let lastNew = Date.now();

function note(obj) {
  process.stderr.write(JSON.stringify(obj) + "\n");
}

function deviceReport(iss, seqs) {
  const ordered = [...seqs.entries()].sort((a, b) => a[0] - b[0]);
  const gaps = [];
  for (let i = 1; i < ordered.length; i++) {
    const [prevSeq, prevBoot] = ordered[i - 1];
    const [seq, boot] = ordered[i];
    if (seq > prevSeq + 1) {
      gaps.push({ iss, after_seq: prevSeq, before_seq: seq, missing: seq - prevSeq - 1,
        boot_before: prevBoot, boot_after: boot, across_boot: prevBoot !== boot });
    }
  }
  const boots = [...new Set(ordered.map(([, b]) => b))].sort((a, b) => a - b);
  return { gaps, summary: { events: ordered.length, boots, first_seq: ordered[0]?.[0] ?? null,
    last_seq: ordered.at(-1)?.[0] ?? null } };
}

function report() {
  const gaps = [];
  const devices = {};
  for (const [iss, seqs] of [...byDevice.entries()].sort()) {
    const r = deviceReport(iss, seqs);
    gaps.push(...r.gaps);
    devices[iss] = r.summary;
  }
  return {
    consumer: "node",
    received,
    unique: firstToken.size,
    duplicates,
    duplicate_jtis: [...duplicateJtis].sort(),
    duplicate_mismatches: duplicateMismatches,
    bad_signatures: bad.length,
    bad: bad.slice(0, 20),
    gaps,
    in_boot_gaps: gaps.filter((g) => !g.across_boot).length,
    devices,
    jtis: [...firstToken.keys()].sort(),
  };
}

async function handle(topic, payload) {
  received += 1;
  const token = payload.toString("ascii");
  let claims;
  try {
    const header = decodeProtectedHeader(token);
    if (header.typ !== TYP) throw new Error(`typ is ${JSON.stringify(header.typ)}, not ${TYP}`);
    if (header.kid !== kid) throw new Error(`kid ${JSON.stringify(header.kid)} is not the registered ${kid}`);
    const { payload: body } = await compactVerify(token, key, { algorithms: [opt.alg] });
    claims = JSON.parse(new TextDecoder().decode(body));
    const missing = REQUIRED.filter((c) => !(c in claims));
    if (missing.length) throw new Error(`missing claims: ${missing.join(", ")}`);
    const device = topic.split("/")[1];
    if (claims.iss !== device) throw new Error(`iss ${claims.iss} arrived on ${topic}`);
  } catch (err) {
    bad.push({ topic, error: `${err.code ?? err.name}: ${err.message}` });
    return;
  }
  const seen = firstToken.get(claims.jti);
  if (seen !== undefined) {
    duplicates += 1;
    duplicateJtis.add(claims.jti);
    if (seen !== token) duplicateMismatches += 1;  // same jti, different bytes: suspicious
    return;
  }
  firstToken.set(claims.jti, token);
  lastNew = Date.now();
  if (opt.progress && firstToken.size % Number(opt.progress) === 0) {
    note({ event: "progress", unique: firstToken.size });
  }
  if (!byDevice.has(claims.iss)) byDevice.set(claims.iss, new Map());
  byDevice.get(claims.iss).set(claims.seq, claims.boot);
}

// --- MQTT -----------------------------------------------------------------------------
const password = opt["password-file"] ? readFileSync(opt["password-file"], "utf8").trim() : undefined;
const client = mqtt.connect(opt.url, {
  protocolVersion: opt.protocol === "3.1.1" ? 4 : 5,
  clientId: opt["client-id"] ?? `consumer-node-${process.pid}`,
  username: opt.username,
  password,
  clean: true,
  resubscribe: false,      // we subscribe on every connect ourselves (and say so)
  reconnectPeriod: 250,
  connectTimeout: 5000,
});
let queue = Promise.resolve();   // verify in arrival order, one at a time
client.on("connect", () => {
  note({ event: "connected" });
  client.subscribe(opt.topic, { qos: 1 }, (err, granted) => {
    if (err || granted.some((g) => g.qos > 2)) note({ event: "subscribe_failed", error: String(err ?? "refused") });
    else note({ event: "subscribed", topic: opt.topic });
  });
});
client.on("close", () => note({ event: "disconnected" }));
client.on("error", (err) => note({ event: "error", error: err.message }));
client.on("message", (topic, payload) => {
  queue = queue.then(() => handle(topic, payload)).then(maybeDone);
});

let finished = false;
async function finish(why) {
  if (finished) return;
  finished = true;
  await queue;
  note({ event: "finished", why });
  process.stdout.write(JSON.stringify(report()) + "\n");
  client.end(true, () => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
function maybeDone() {
  if (opt.count && firstToken.size >= Number(opt.count)) finish("count");
}
process.on("SIGTERM", () => finish("SIGTERM"));
process.on("SIGINT", () => finish("SIGINT"));
if (opt.idle) {
  setInterval(() => {
    if (firstToken.size > 0 && Date.now() - lastNew > Number(opt.idle) * 1000) finish("idle");
  }, 100);
}
