// Native tests: `npm test` (node --test, with `ponder-plugin` resolved to the SDK).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Candidate, Pair } from 'ponder-plugin';
import { BestWorst } from './__CRATE_NAME__.js';

test('best against worst', () => {
  const selector = new BestWorst();
  selector.configure({ min_margin: 0.1 });
  const c = (score, parsed = true) => new Candidate({ score, parsed });
  const group = [c(0.5), c(null, false), c(0.9), c(0.2)];
  assert.deepEqual(selector.select([group, [c(0.5), c(0.55)], []]), [[new Pair(2, 3)], [], []]);
});
