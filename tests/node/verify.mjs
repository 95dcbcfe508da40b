// Reads JSON lines {"token", "alg", "key"} from stdin: key is the public key PEM
// for EdDSA, the secret text for HS256. Writes one JSON line per input:
// {"ok": true, "claims": {...}, "header": {...}} or {"ok": false, "error": "..."}.
import { createInterface } from "node:readline";
import { importSPKI, jwtVerify } from "jose";

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (!line.trim()) continue;
  const { token, alg, key } = JSON.parse(line);
  let result;
  try {
    const k = alg === "HS256" ? new TextEncoder().encode(key) : await importSPKI(key, alg);
    const { payload, protectedHeader } = await jwtVerify(token, k, {
      algorithms: [alg],
      typ: "homecare-event+jwt",
    });
    result = { ok: true, claims: payload, header: protectedHeader };
  } catch (err) {
    result = { ok: false, error: `${err.code || err.name}: ${err.message}` };
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}
