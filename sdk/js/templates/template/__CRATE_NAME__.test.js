// Native tests: `npm test` (node --test, with `ponder-plugin` resolved to the SDK).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Message, ParseFailure, Split } from 'ponder-plugin';
import { TagTemplate } from './__CRATE_NAME__.js';

function template() {
  const t = new TagTemplate();
  t.configure({});
  return t;
}

test('render prefixes the last message', () => {
  const [message] = template().render([Message.user('Name a colour.')]);
  assert.equal(message.role, 'user');
  assert.ok(message.content.endsWith('Name a colour.'));
});

test('parse splits and accepts a forced response', () => {
  const t = template();
  assert.deepEqual(t.parse('<thought>hmm</thought> Blue.'), new Split('hmm', 'Blue.'));
  assert.deepEqual(t.parse(t.outputFormat().forcedOutput(' long thought', 'Red.')), new Split('long thought', 'Red.'));
  assert.ok(t.parse('Blue.') instanceof ParseFailure);
});
