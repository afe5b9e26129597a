// ponder-plugin: write ponder plugins (thought templates, judges, pair selectors for Thought
// Preference Optimization) in JavaScript. A plugin is a class; `exportSelector(MySelector)` (or
// `exportJudge`, `exportTemplate`) makes it the component's plugin, and
// `node sdk/js/build.mjs my_selector.js -o my_selector.wasm` builds the sandboxed WebAssembly
// component with componentize-js against the bundled WIT contract (`ponder:plugin@0.2.0`).
// This module has no WebAssembly imports: natively it is plain JavaScript, so plugins are
// testable with `node --test` (with `--import <sdk>/js/register.mjs`, which resolves the bare
// specifier `ponder-plugin` to this file).
//
// Field names are the WIT names in camelCase, as componentize-js gives them.

/** The contract version the bundled WIT declares. */
export const WIT_VERSION = '0.2.0';

/**
 * Why a plugin call failed (WIT `plugin-error`). Throw a subclass: `InvalidConfig`,
 * `InvalidInput` or `Failed`. The host reports the plugin, the call and this message.
 */
export class PluginFailure extends Error {
  /** @param {string} message */
  constructor(message) {
    super(String(message));
    this.name = new.target.name;
  }

  /** The WIT case: `invalid-config`, `invalid-input` or `failed`. */
  get kind() {
    return 'failed';
  }
}

/** The configuration is unusable; say which key and why. */
export class InvalidConfig extends PluginFailure {
  get kind() {
    return 'invalid-config';
  }
}

/** The input of this call is unusable (a malformed metadata field, say). */
export class InvalidInput extends PluginFailure {
  get kind() {
    return 'invalid-input';
  }
}

/** The plugin could not do its work for another reason. */
export class Failed extends PluginFailure {}

/** Every WIT case of `model-error`. */
export const MODEL_ERROR_KINDS = Object.freeze([
  'not-granted',
  'unknown-model',
  'invalid-request',
  'unsupported',
  'failed',
]);

/**
 * A model call failed (WIT `model-error`); `errorKind` is one of `MODEL_ERROR_KINDS`. It is a
 * `Failed`: thrown out of `judge`, it fails every request of the call with its message.
 */
export class ModelError extends Failed {
  /**
   * @param {string} errorKind
   * @param {string} [detail]
   */
  constructor(errorKind, detail = '') {
    if (!MODEL_ERROR_KINDS.includes(errorKind)) {
      throw new TypeError(`unknown model error kind ${JSON.stringify(errorKind)}`);
    }
    const text =
      errorKind === 'not-granted'
        ? 'models are not granted to this plugin (grant = ["models"] in the manifest)'
        : errorKind === 'unknown-model'
          ? `unknown model \`${detail}\``
          : `${errorKind}: ${detail}`;
    super(text);
    this.errorKind = errorKind;
    this.detail = detail;
  }
}

/** One chat message. */
export class Message {
  /**
   * @param {string} role
   * @param {string} content
   */
  constructor(role, content) {
    this.role = role;
    this.content = content;
  }

  /** @param {string} content */
  static user(content) {
    return new Message('user', content);
  }

  /** @param {string} content */
  static system(content) {
    return new Message('system', content);
  }

  /** @param {string} content */
  static assistant(content) {
    return new Message('assistant', content);
  }
}

/** All candidates for one instruction (thoughts withheld). */
export class JudgeRequest {
  /**
   * @param {Message[]} instruction
   * @param {string[]} responses
   * @param {string|null} [reference]
   * @param {string} [metadata] the dataset row's metadata as JSON text
   */
  constructor(instruction, responses, reference = null, metadata = '{}') {
    this.instruction = instruction;
    this.responses = responses;
    this.reference = reference;
    this.metadata = metadata;
  }

  /** The metadata parsed from JSON; malformed JSON throws `InvalidInput`. */
  metadataJson() {
    try {
      return JSON.parse(this.metadata);
    } catch (error) {
      throw new InvalidInput(`metadata is not valid JSON: ${error.message}`);
    }
  }
}

/** One sampled output, as a pair selector sees it. `score` is `null` when unscored. */
export class Candidate {
  constructor({
    score = null,
    parsed = false,
    responseTokens = 0,
    responseChars = 0,
    thoughtTokens = 0,
    thoughtChars = 0,
    outputTokens = 0,
  } = {}) {
    this.score = score;
    this.parsed = parsed;
    this.responseTokens = responseTokens;
    this.responseChars = responseChars;
    this.thoughtTokens = thoughtTokens;
    this.thoughtChars = thoughtChars;
    this.outputTokens = outputTokens;
  }

  /** Parsed and scored: a candidate a selector can rank. */
  isScored() {
    return this.parsed && this.score !== null;
  }
}

/** A preference pair, by index within its group. The host checks indices and weight. */
export class Pair {
  /**
   * @param {number} chosen
   * @param {number} rejected
   * @param {number} [weight]
   */
  constructor(chosen, rejected, weight = 1.0) {
    this.chosen = chosen;
    this.rejected = rejected;
    this.weight = weight;
  }
}

/** An output split into thought and response. */
export class Split {
  constructor(thought, response) {
    this.thought = thought;
    this.response = response;
  }
}

/** What `parse` returns for an output without the expected format. */
export class ParseFailure {
  constructor(reason) {
    this.reason = reason;
  }
}

/** How the host shapes generation for a template (WIT `output-format`). */
export class OutputFormat {
  constructor({ assistantPrefix = '', responseSeparator = null, forcedResponse = '' } = {}) {
    this.assistantPrefix = assistantPrefix;
    this.responseSeparator = responseSeparator;
    this.forcedResponse = forcedResponse;
  }

  /** The output the host produces when it forces the response after `thought`. */
  forcedOutput(thought, response) {
    if (this.responseSeparator === null) {
      return this.assistantPrefix + thought + response;
    }
    return this.assistantPrefix + thought + this.forcedResponse + response;
  }
}

// Where log records go: stderr natively; the WebAssembly glue points it at the host's `log`.
let logSink = (level, message) => console.error(`${level}: ${message}`);

/** @internal Used by the glue. */
export function setLogSink(sink) {
  logSink = sink;
}

/** The levels of WIT `log.level`, lowest first. */
export const LOG_LEVELS = Object.freeze(['trace', 'debug', 'info', 'warn', 'error']);

/** Logging into the host's log (the host drops records past 64 KiB per call). */
export const log = Object.freeze({
  log(level, message) {
    if (!LOG_LEVELS.includes(level)) {
      throw new TypeError(`unknown log level ${JSON.stringify(level)}`);
    }
    logSink(level, String(message));
  },
  trace: (message) => log.log('trace', message),
  debug: (message) => log.log('debug', message),
  info: (message) => log.log('info', message),
  warn: (message) => log.log('warn', message),
  error: (message) => log.log('error', message),
});

function kindOf(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/** Reading a configuration (the JSON of the manifest table) with errors naming the key. */
export const config = Object.freeze({
  /** The configuration text as an object; anything but a JSON object throws `InvalidConfig`. */
  parse(text) {
    let value;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new InvalidConfig(`the configuration is not valid JSON: ${error.message}`);
    }
    if (kindOf(value) !== 'object') {
      throw new InvalidConfig(`the configuration must be a table, got ${kindOf(value)}`);
    }
    return value;
  },

  /** Throws `InvalidConfig` naming the first key of `table` not in `allowed`. */
  onlyKeys(table, allowed) {
    for (const key of Object.keys(table)) {
      if (!allowed.includes(key)) {
        const expected = allowed.map((name) => `\`${name}\``).join(', ') || 'none';
        throw new InvalidConfig(`unknown config key \`${key}\` (expected: ${expected})`);
      }
    }
  },

  /**
   * `table[key]` checked to be of `kind` (`number` (finite), `integer`, `string`, `boolean`,
   * `array` or `object`); `fallback` when absent (a missing key without one throws).
   */
  get(table, key, kind, ...fallback) {
    if (!Object.prototype.hasOwnProperty.call(table, key)) {
      if (fallback.length === 0) throw new InvalidConfig(`config key \`${key}\` is missing`);
      return fallback[0];
    }
    const value = table[key];
    const found = kindOf(value);
    const ok =
      kind === 'integer' ? Number.isInteger(value) : kind === found;
    if (!ok) {
      throw new InvalidConfig(`config key \`${key}\`: expected ${kind}, got ${JSON.stringify(value)}`);
    }
    if (found === 'number' && !Number.isFinite(value)) {
      throw new InvalidConfig(`config key \`${key}\`: ${value} is not finite`);
    }
    return value;
  },
});

/** Sampling settings of one generation request; temperature 0 is greedy. */
export class Sampling {
  constructor({ temperature = 0, topP = 1, maxNewTokens = 256, seed = 0n, stop = [] } = {}) {
    this.temperature = temperature;
    this.topP = topP;
    this.maxNewTokens = maxNewTokens;
    this.seed = BigInt(seed);
    this.stop = stop;
  }
}

/** One generation request. */
export class GenerateRequest {
  constructor(messages, sampling = new Sampling()) {
    this.messages = messages;
    this.sampling = sampling;
  }
}

/** The log-probabilities of alternative continuations after `messages` and `prefix`. */
export class ChoiceRequest {
  constructor(messages, prefix, choices) {
    this.messages = messages;
    this.prefix = prefix;
    this.choices = choices;
  }
}

/** A reward model's scalar for `response` after `messages`. */
export class RewardRequest {
  constructor(messages, response) {
    this.messages = messages;
    this.response = response;
  }
}

/** What a judge's `judge` receives as `models`; extend it for test doubles. */
export class Models {
  /** One reply per request. */
  generate(_model, _requests) {
    throw new ModelError('not-granted');
  }

  /** Per request, the log-probability of each choice. */
  choiceLogprobs(_model, _requests) {
    throw new ModelError('not-granted');
  }

  /** Per request, the reward model's scalar. */
  reward(_model, _requests) {
    throw new ModelError('not-granted');
  }
}

/** No models: every call throws `ModelError('not-granted')` (for native tests). */
export class NoModels extends Models {}

class Configurable {
  /**
   * Receives the manifest table (parsed JSON, `{}` when absent); throw `InvalidConfig` naming
   * the key for a bad one. The default accepts no keys.
   */
  configure(table) {
    const keys = Object.keys(table);
    if (keys.length > 0) {
      throw new InvalidConfig(`unknown config key \`${keys[0]}\` (this plugin takes no configuration)`);
    }
  }
}

/** A thought template: `render(instruction)`, `parse(output)`, optional `outputFormat()`. */
export class ThoughtTemplate extends Configurable {
  render(_instruction) {
    throw new Error('render is not implemented');
  }

  parse(_output) {
    throw new Error('parse is not implemented');
  }

  outputFormat() {
    return new OutputFormat();
  }
}

/**
 * A judge: `judge(requests, models)` returns, per request, an array of one score (a finite
 * number, or `null` when a response cannot be judged) per response, or a `PluginFailure` for a
 * request that cannot be judged at all. Throwing a `PluginFailure` fails every request.
 */
export class Judge extends Configurable {
  judge(_requests, _models) {
    throw new Error('judge is not implemented');
  }
}

/** A pair selector: `select(groups)` returns, per group, its `Pair`s (possibly none). */
export class PairSelector extends Configurable {
  select(_groups) {
    throw new Error('select is not implemented');
  }
}

let exportedPlugin = null;

function exportAs(role, base, cls) {
  if (typeof cls !== 'function' || !(cls.prototype instanceof base)) {
    throw new TypeError(`export${role[0].toUpperCase()}${role.slice(1)} takes a subclass of ${base.name}`);
  }
  if (exportedPlugin !== null && (exportedPlugin.role !== role || exportedPlugin.cls !== cls)) {
    throw new Error(
      `a module exports one plugin; ${exportedPlugin.cls.name} is already exported as the ${exportedPlugin.role}`,
    );
  }
  exportedPlugin = { role, cls };
  return cls;
}

/** Makes `cls` the component's thought template. */
export function exportTemplate(cls) {
  return exportAs('template', ThoughtTemplate, cls);
}

/** Makes `cls` the component's judge. */
export function exportJudge(cls) {
  return exportAs('judge', Judge, cls);
}

/** Makes `cls` the component's pair selector. */
export function exportSelector(cls) {
  return exportAs('selector', PairSelector, cls);
}

/** The exported `{role, cls}`, or `null` before any `export*` call. */
export function exported() {
  return exportedPlugin;
}
