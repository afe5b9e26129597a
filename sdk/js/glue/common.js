// The glue between componentize-js's bindings and the plain API (inside a component build only:
// it imports the host's `log`). The configured plugin lives here, at module level; an uncaught
// error prints its stack to stderr (which the host puts in the error and its log) and traps the
// call, as a panic does in a Rust plugin.
import { log as hostLog } from 'ponder:plugin/log@0.2.0';
import { Message, PluginFailure, config, exported, setLogSink } from 'ponder-plugin';

setLogSink((level, message) => hostLog(level, message));

let plugin = null;

/** The WIT `plugin-error` of a failure. */
export function witError(failure) {
  return { tag: failure.kind, val: failure.message };
}

/** Prints an unexpected error's stack to stderr, then rethrows it (a trap). */
export function trap(error) {
  const text = error instanceof Error ? `${error.name}: ${error.message}\n${error.stack ?? ''}` : String(error);
  console.error(`uncaught error in the plugin: ${text}`);
  throw error;
}

/**
 * Runs `call` for a function returning a WIT `result`: a `PluginFailure` becomes the error
 * case, anything else traps.
 */
export function guarded(call) {
  try {
    return call();
  } catch (error) {
    if (error instanceof PluginFailure) throw witError(error);
    return trap(error);
  }
}

/** `configure`: a fresh plugin of the exported class, configured with the table. */
export function configure(role, text) {
  const entry = exported();
  if (entry === null) {
    return trap(new Error(`the plugin module exports no plugin: call export${role[0].toUpperCase()}${role.slice(1)}(YourClass)`));
  }
  if (entry.role !== role) {
    return trap(new Error(`this component is built as a ${role}, but the module exports a ${entry.role}`));
  }
  plugin = null;
  guarded(() => {
    const fresh = new entry.cls();
    fresh.configure(config.parse(text));
    plugin = fresh;
  });
}

/** The configured plugin. */
export function configured() {
  if (plugin === null) return trap(new Error('the plugin is not configured'));
  return plugin;
}

/** A plain `Message` of a WIT message. */
export function message(value) {
  return new Message(value.role, value.content);
}

/** A WIT message of a plain one. */
export function witMessage(value) {
  return { role: String(value.role), content: String(value.content) };
}
