// Native tests of the JavaScript SDK: `node --import ./register.mjs --test test/` in sdk/js
// (scripts/test-plugin-langs.sh runs them). The WebAssembly side (glue/, build.mjs) is tested by
// host/plugin-runtime/tests/hostile_js.rs and tests/tests/plugin_langs.rs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as pp from 'ponder-plugin';

test('config.parse takes a table only', () => {
  assert.deepEqual(pp.config.parse('{"a": 1}'), { a: 1 });
  assert.throws(() => pp.config.parse('[1]'), pp.InvalidConfig);
  assert.throws(() => pp.config.parse('{'), pp.InvalidConfig);
});

test('config.get checks kinds and names the key', () => {
  const table = { n: 3, x: 0.5, flag: true, name: 'a', list: [1] };
  assert.equal(pp.config.get(table, 'n', 'integer'), 3);
  assert.equal(pp.config.get(table, 'x', 'number'), 0.5);
  assert.equal(pp.config.get(table, 'flag', 'boolean'), true);
  assert.deepEqual(pp.config.get(table, 'list', 'array'), [1]);
  assert.equal(pp.config.get(table, 'missing', 'string', 'default'), 'default');
  for (const [key, kind, text] of [
    ['x', 'integer', 'config key `x`: expected integer, got 0.5'],
    ['flag', 'number', 'config key `flag`: expected number, got true'],
    ['list', 'object', 'config key `list`: expected object, got [1]'],
    ['missing', 'string', 'config key `missing` is missing'],
  ]) {
    assert.throws(() => pp.config.get(table, key, kind), (error) => error instanceof pp.InvalidConfig && error.message === text);
  }
});

test('config.onlyKeys names the unknown key', () => {
  pp.config.onlyKeys({ a: 1 }, ['a', 'b']);
  assert.throws(
    () => pp.config.onlyKeys({ a: 1, c: 2 }, ['a', 'b']),
    (error) => error.message === 'unknown config key `c` (expected: `a`, `b`)',
  );
});

test('failures carry their WIT kind', () => {
  assert.equal(new pp.InvalidConfig('x').kind, 'invalid-config');
  assert.equal(new pp.InvalidInput('x').kind, 'invalid-input');
  assert.equal(new pp.Failed('x').kind, 'failed');
  const error = new pp.ModelError('unknown-model', 'judge');
  assert.ok(error instanceof pp.Failed);
  assert.equal(error.message, 'unknown model `judge`');
  assert.throws(() => new pp.ModelError('teapot'), TypeError);
  assert.throws(() => new pp.NoModels().generate('judge', []), (e) => e instanceof pp.ModelError && e.errorKind === 'not-granted');
});

test('the default configure accepts no keys', () => {
  new pp.Judge().configure({});
  assert.throws(() => new pp.Judge().configure({ x: 1 }), pp.InvalidConfig);
});

test('requests, candidates and formats', () => {
  assert.deepEqual(new pp.JudgeRequest([], [], null, '{"k": 1}').metadataJson(), { k: 1 });
  assert.throws(() => new pp.JudgeRequest([], [], null, '{').metadataJson(), pp.InvalidInput);
  assert.ok(new pp.Candidate({ score: 0.5, parsed: true }).isScored());
  assert.ok(!new pp.Candidate({ score: null, parsed: true }).isScored());
  const format = new pp.OutputFormat({ assistantPrefix: 'T:', responseSeparator: 'R:', forcedResponse: '\nR:' });
  assert.equal(format.forcedOutput(' t', ' r'), 'T: t\nR: r');
  assert.equal(new pp.OutputFormat().forcedOutput('t', 'r'), 'tr');
  assert.equal(new pp.Sampling({ seed: 5 }).seed, 5n);
});

test('a module exports one plugin of the right base class', () => {
  class A extends pp.Judge {}
  class B extends pp.PairSelector {}
  assert.throws(() => pp.exportJudge(B), TypeError);
  assert.throws(() => pp.exportJudge(class {}), TypeError);
  assert.equal(pp.exported(), null);
  assert.equal(pp.exportJudge(A), A);
  assert.deepEqual(pp.exported(), { role: 'judge', cls: A });
  pp.exportJudge(A);
  assert.throws(() => pp.exportSelector(B), /already exported/);
});
