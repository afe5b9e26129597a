// Native tests: `npm test` (node --test, with `ponder-plugin` resolved to the SDK).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidConfig, JudgeRequest, Message, NoModels } from 'ponder-plugin';
import { KeywordJudge } from './__CRATE_NAME__.js';

test('scores the fraction of keywords', () => {
  const judge = new KeywordJudge();
  judge.configure({ keywords: ['Paris', 'France'] });
  const request = new JudgeRequest([Message.user('What is the capital of France?')], ['Paris, France.', 'It is Paris.', 'Lyon']);
  assert.deepEqual(judge.judge([request], new NoModels()), [[1, 0.5, 0]]);
});

test('missing keywords are a config error', () => {
  assert.throws(() => new KeywordJudge().configure({}), InvalidConfig);
});
