// `node --import <sdk>/js/register.mjs --test`: resolves the bare specifier `ponder-plugin` to this
// SDK for native tests of a plugin (the build bundles it the same way).
import { register } from 'node:module';

register('./resolve-hook.mjs', import.meta.url);
