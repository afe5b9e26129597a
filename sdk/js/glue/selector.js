// Export of world `pair-selector` (see common.js).
import { Candidate, Pair } from 'ponder-plugin';
import { configure, configured, guarded, trap } from './common.js';

function witPair(pair, group) {
  if (!(pair instanceof Pair)) {
    return trap(new TypeError(`group ${group}: expected a Pair, got ${JSON.stringify(pair)}`));
  }
  return { chosen: pair.chosen, rejected: pair.rejected, weight: pair.weight };
}

export const selector = {
  configure(text) {
    configure('selector', text);
  },
  select(groups) {
    const plugin = configured();
    const plain = groups.map((group) =>
      group.map((c) => new Candidate({ ...c, score: c.score === undefined ? null : c.score })),
    );
    return guarded(() => plugin.select(plain).map((pairs, index) => pairs.map((pair) => witPair(pair, index))));
  },
};
