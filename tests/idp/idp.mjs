// A real OpenID provider (oidc-provider, certified) for the remote-key tests, on loopback.
//
// Environment: PORT (required), KEYS_DIR (where its RSA keys live, made on first use), KIDS
// (comma-separated key ids, the first signs; default "k1"). It issues JWT access tokens
// (RS256, audience "urn:api") to the client "api-client" / "api-client-secret-0123456789" by
// the client_credentials grant, with the claim type "access", and prints "ready <issuer>"
// once it listens.
import Provider from 'oidc-provider';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const port = Number(process.env.PORT);
if (!port) throw new Error('PORT is required');
const dir = process.env.KEYS_DIR || '.';
mkdirSync(dir, { recursive: true });
const kids = (process.env.KIDS || 'k1').split(',');

const keys = kids.map((kid) => {
  const file = join(dir, `${kid}.json`);
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(file, JSON.stringify({ ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }));
  }
  return JSON.parse(readFileSync(file, 'utf8'));
});

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  jwks: { keys },
  clients: [{
    client_id: 'api-client',
    client_secret: 'api-client-secret-0123456789',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
  }],
  // The demo's claim rules ask for `type: "access"` (DEMO_CONTRACT.md, "Tokens").
  extraTokenClaims: async () => ({ type: 'access' }),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:api',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api',
        audience: 'urn:api',
        accessTokenTTL: 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
});
provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
