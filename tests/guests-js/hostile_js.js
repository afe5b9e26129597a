// Hostile judge in JavaScript for the runtime's tests (host/plugin-runtime/tests/hostile_js.rs),
// built with the JavaScript SDK (`node sdk/js/build.mjs`). The configuration names its attack
// (`{"attack": "loop"}`); a request whose first response is "attack" triggers it. Every other
// request is judged like the Rust guests judge: each response scores its length in characters.
// One module serves every attack, so that the tests build and compile one component.
import { Failed, GenerateRequest, InvalidConfig, InvalidInput, Judge, Message, Sampling, config, exportJudge } from 'ponder-plugin';

const ATTACKS = [
  'loop',
  'alloc',
  'recursion',
  'output',
  'exception',
  'failure',
  'nan',
  'wrong-length',
  'read-file',
  'socket',
  'env',
  'models',
  'clock',
  'random',
];

function recurse(depth) {
  return recurse(depth + 1) + 1;
}

/** What the host's JavaScript engine offers for files, sockets and the environment. */
function capabilities() {
  return ['process', 'require', 'Deno', 'fetch', 'XMLHttpRequest', 'WebSocket']
    .map((name) => `${name}: ${typeof globalThis[name]}`)
    .join(', ');
}

function attack(kind, request, models) {
  switch (kind) {
    case 'loop':
      for (;;) {}
    case 'alloc': {
      const hoard = [];
      for (;;) hoard.push(new Uint8Array(8 << 20).fill(1));
    }
    case 'recursion':
      return [recurse(0)];
    case 'output':
      // 64 million scores: more than the memory cap lets the engine hold.
      return new Array(64 << 20).fill(1.5);
    case 'exception':
      throw new RangeError('hostile JavaScript judge threw on purpose');
    case 'failure':
      throw new Failed('hostile JavaScript judge failed on purpose');
    case 'nan':
      return [Infinity, NaN];
    case 'wrong-length':
      return [1];
    case 'read-file':
      // The engine has no file API; `fetch` of a file URL is the only path left, and with
      // componentize-js's `http` feature disabled it traps.
      fetch('file:///etc/passwd');
      return [1];
    case 'socket':
      // The component imports neither wasi:sockets nor wasi:http: `fetch` traps.
      fetch('http://127.0.0.1:80/');
      return [1];
    case 'env':
      throw new Error(`reading the environment: ${capabilities()}`);
    case 'models': {
      const replies = models.generate(
        'judge',
        request.responses.map((text) => new GenerateRequest([Message.user(text)], new Sampling({ maxNewTokens: 4 }))),
      );
      return replies.map((reply) => reply.length);
    }
    case 'clock':
      return [Date.now() / 1000, performance.now()];
    case 'random': {
      const bytes = new Uint32Array(1);
      crypto.getRandomValues(bytes);
      return [Math.random(), bytes[0]];
    }
    default:
      throw new InvalidInput(`no attack ${JSON.stringify(kind)}`);
  }
}

class HostileJudge extends Judge {
  configure(table) {
    config.onlyKeys(table, ['attack']);
    this.attack = config.get(table, 'attack', 'string');
    if (!ATTACKS.includes(this.attack)) {
      throw new InvalidConfig(`config key \`attack\`: unknown attack ${JSON.stringify(this.attack)}`);
    }
  }

  judge(requests, models) {
    return requests.map((request) =>
      request.responses[0] === 'attack'
        ? attack(this.attack, request, models)
        : request.responses.map((response) => response.length),
    );
  }
}

exportJudge(HostileJudge);
