// The company IdP of the single sign-on browser test: oidc-provider (a certified OpenID
// Provider) on loopback, with its development sign-in pages, a few people and their groups.
// Usage: node idp.mjs PORT REDIRECT_URI CLIENT_SECRET
import Provider from 'oidc-provider';

const [port, redirect, secret] = process.argv.slice(2);
const people = {
  eve: { email: 'eve@sso-example.test', groups: ['clari-admins', 'staff'] },
  finn: { email: 'finn@sso-example.test', groups: ['clari-users'] },
  gus: { email: 'gus@sso-example.test', groups: ['sales'] },
};

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'clari-mcp',
    client_secret: secret,
    redirect_uris: [redirect],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'groups'] },
  // The groups claim goes into the ID token, where the relying party reads it.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['a cookie key for this test only'] },
  async findAccount(ctx, id) {
    const person = people[id];
    if (!person) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: person.email, email_verified: true, name: id, groups: person.groups };
      },
    };
  },
});
provider.listen(Number(port), '127.0.0.1', () => console.log('ready'));
