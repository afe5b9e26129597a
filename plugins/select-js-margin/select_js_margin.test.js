// Native tests of select-js-margin (no WebAssembly):
//   node --import ../../sdk/js/register.mjs --test
// scripts/test-plugin-langs.sh runs them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Candidate, InvalidConfig, Pair } from 'ponder-plugin';
import { MarginSelector, groupPairs } from './select_js_margin.js';

const c = (score, responseTokens = 10, parsed = true) => new Candidate({ score, parsed, responseTokens });

function selector(table = {}) {
  const s = new MarginSelector();
  s.configure(table);
  return s;
}

test('best against worst, unscored and unparsed ignored', () => {
  const group = [c(0.5), c(null, 10, false), c(0.9), c(0.2), c(0.95, 10, false)];
  assert.deepEqual(selector().select([group]), [[new Pair(2, 3)]]);
});

test('ties prefer the shorter chosen and the longer rejected', () => {
  const group = [c(0.9, 50), c(0.9, 20), c(0.1, 5), c(0.1, 80)];
  assert.deepEqual(selector().select([group]), [[new Pair(1, 3)]]);
});

test('several pairs per group, each candidate once, down to the margin', () => {
  const group = [c(1.0), c(0.8), c(0.6), c(0.5), c(0.0)];
  assert.deepEqual(groupPairs(group, 3, 0), [
    [0, 4, 0.5],
    [1, 3, 0.15000000000000002],
  ]);
  assert.deepEqual(selector({ pairs_per_group: 3, min_margin: 0.25 }).select([group]), [[new Pair(0, 4), new Pair(1, 3)]]);
  assert.deepEqual(selector({ pairs_per_group: 3, min_margin: 0.5 }).select([group]), [[new Pair(0, 4)]]);
});

test('no pair without a positive gap or two scored candidates', () => {
  assert.deepEqual(selector().select([[c(0.5), c(0.5)], [c(0.7)], []]), [[], [], []]);
});

test('margin weights average one over the iteration', () => {
  const pairs = selector({ weight: 'margin' }).select([[c(1), c(0)], [c(0.5), c(0.25)]]);
  assert.deepEqual(pairs, [[new Pair(0, 1, 1.6)], [new Pair(0, 1, 0.4)]]);
  const huge = selector({ weight: 'margin' }).select([[c(Number.MAX_VALUE), c(-Number.MAX_VALUE)]]);
  assert.equal(huge[0][0].weight, 1);
});

test('configuration errors name the key', () => {
  for (const [table, key] of [
    [{ pairs_per_group: 0 }, 'pairs_per_group'],
    [{ pairs_per_group: 1.5 }, 'pairs_per_group'],
    [{ min_margin: -1 }, 'min_margin'],
    [{ weight: 'heavy' }, 'weight'],
    [{ rho: 0.3 }, 'rho'],
  ]) {
    assert.throws(() => selector(table), (error) => error instanceof InvalidConfig && error.message.includes(`\`${key}\``));
  }
});
