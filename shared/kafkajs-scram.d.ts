// kafkajs ships no types for its internal SCRAM provider; shared/kafka.ts wraps it to read credentials lazily.
declare module 'kafkajs/src/broker/saslAuthenticator/scram512.js' {
  import type { AuthenticationProviderArgs, Authenticator } from 'kafkajs';
  const scram512AuthenticationProvider: (sasl: { mechanism: 'scram-sha-512'; username: string; password: string }) => (args: AuthenticationProviderArgs) => Authenticator;
  export default scram512AuthenticationProvider;
}
