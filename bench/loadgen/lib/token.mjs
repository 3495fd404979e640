// HS256 JSON Web Tokens, signed here so the loadgen needs nothing but the shared secret.
import { createHmac } from 'node:crypto';

const SERVICE_ROLE = 'service'; // tidings.auth.SERVICE_ROLE
const TTL_S = 4 * 3600; // longer than any run

const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

export function mint(secret, subject, { service = false } = {}) {
  const issuedAt = Math.floor(Date.now() / 1000);
  const claims = { sub: subject, iat: issuedAt, exp: issuedAt + TTL_S };
  if (service) claims.role = SERVICE_ROLE;
  const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(claims)}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}
