// Baseline for `valyent fleets list --json`: the official TypeScript SDK making the same call, printing the JSON.
// Usage: node fleets.mjs  (env VALYENT_API_TOKEN, VALYENT_API_URL = the control-plane base, `/v1` included:
// the SDK appends paths like `/fleets` to the endpoint as given, its default being https://console.valyent.cloud/v1)
import sdk from 'valyent.ts';

const client = new sdk.Client(process.env.VALYENT_API_TOKEN, process.env.VALYENT_NAMESPACE || undefined,
  process.env.VALYENT_API_URL);
const fleets = await client.fleets.list();
process.stdout.write(JSON.stringify(fleets, null, 2) + '\n');
