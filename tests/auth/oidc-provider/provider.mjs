// A real OpenID Connect provider (oidc-provider) on loopback for GoSight's tests.
//
// It registers one confidential client and signs in one test user without any
// page: the login and consent prompts are answered by the middleware below, so a
// test's HTTP client that follows redirects goes from GoSight's login route to
// GoSight's callback in one go. Settings come from environment variables; the
// provider prints one JSON line, {"listening": "<issuer>"}, when it is ready.

import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return value;
};

const port = Number(env('OIDC_PORT'));
const issuer = `http://127.0.0.1:${port}`;
const user = {
  sub: env('OIDC_USER_SUB', 'test-user-1'),
  email: env('OIDC_USER_EMAIL'),
  emailVerified: env('OIDC_USER_EMAIL_VERIFIED', 'true') === 'true',
  name: env('OIDC_USER_NAME', 'Test User'),
  groups: env('OIDC_USER_GROUPS', '').split(',').filter(Boolean),
};

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key-1', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: env('OIDC_CLIENT_ID'),
      client_secret: env('OIDC_CLIENT_SECRET'),
      redirect_uris: [env('OIDC_REDIRECT_URI')],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: ['gosight-test-cookie-key'] },
  pkce: { required: () => true },
  // Scope claims go into the ID token, which is all GoSight reads.
  conformIdTokenClaims: false,
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'groups'] },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, email: user.email, email_verified: user.emailVerified, name: user.name, groups: user.groups }),
  }),
});

// Answer the login and consent prompts for the test user, with no page in between.
provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith('/interaction/')) {
    await next();
    return;
  }
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  let result;
  if (details.prompt.name === 'login') {
    result = { login: { accountId: user.sub } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    result = { consent: { grantId: await grant.save() } };
  }
  ctx.respond = false;
  await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
});

provider.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: issuer }));
});

process.on('SIGTERM', () => process.exit(0));
