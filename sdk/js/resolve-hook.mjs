// Module resolution hook (see register.mjs): `ponder-plugin` is this SDK's ponder-plugin.js.
const sdk = new URL('./ponder-plugin.js', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  if (specifier === 'ponder-plugin') {
    return { url: sdk, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
