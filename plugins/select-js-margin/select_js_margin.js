// select-js-margin: a pair selector written in JavaScript with the ponder SDK (sdk/js).
//
// For each instruction, the parsed and scored candidates are ranked best first (ties: the
// shorter response first) and worst first (ties: the longer response first); the i-th best is
// paired with the i-th worst, for i below `pairs_per_group`, while the two are distinct, each
// used once, and their score gap is positive and at least `min_margin`. With
// `weight = "margin"`, a pair's DPO weight is its score gap over the mean gap of every pair
// selected in the iteration (so weights average 1 and clearer preferences count more); with
// `"uniform"` every weight is 1.
//
// Configuration (all optional): {"pairs_per_group": 1, "min_margin": 0, "weight": "uniform"}
import { InvalidConfig, Pair, PairSelector, config, exportSelector, log } from 'ponder-plugin';

const WEIGHTS = ['uniform', 'margin'];

/**
 * The pairs of one group: `[chosen, rejected, gap]` triples, `gap` being half the score gap
 * (halves cannot overflow to infinity, whatever finite scores the judge gave).
 */
export function groupPairs(group, pairsPerGroup, minMargin) {
  const scored = group
    .map((candidate, index) => ({ index, score: candidate.score, tokens: candidate.responseTokens, ok: candidate.isScored() }))
    .filter((entry) => entry.ok);
  const best = [...scored].sort((a, b) => b.score - a.score || a.tokens - b.tokens || a.index - b.index);
  const worst = [...scored].sort((a, b) => a.score - b.score || b.tokens - a.tokens || a.index - b.index);
  const used = new Set();
  const pairs = [];
  for (let i = 0, j = 0; pairs.length < pairsPerGroup && i < best.length && j < worst.length; ) {
    const chosen = best[i];
    const rejected = worst[j];
    if (used.has(chosen.index)) {
      i++;
      continue;
    }
    if (used.has(rejected.index)) {
      j++;
      continue;
    }
    const gap = chosen.score / 2 - rejected.score / 2;
    if (chosen.index === rejected.index || !(gap > 0) || gap < minMargin / 2) break;
    pairs.push([chosen.index, rejected.index, gap]);
    used.add(chosen.index);
    used.add(rejected.index);
    i++;
    j++;
  }
  return pairs;
}

export class MarginSelector extends PairSelector {
  configure(table) {
    config.onlyKeys(table, ['pairs_per_group', 'min_margin', 'weight']);
    this.pairsPerGroup = config.get(table, 'pairs_per_group', 'integer', 1);
    if (this.pairsPerGroup < 1) {
      throw new InvalidConfig('config key `pairs_per_group`: must be at least 1');
    }
    this.minMargin = config.get(table, 'min_margin', 'number', 0);
    if (this.minMargin < 0) {
      throw new InvalidConfig('config key `min_margin`: must not be negative');
    }
    this.weight = config.get(table, 'weight', 'string', 'uniform');
    if (!WEIGHTS.includes(this.weight)) {
      throw new InvalidConfig(
        `config key \`weight\`: expected "uniform" or "margin", got ${JSON.stringify(this.weight)}`,
      );
    }
  }

  select(groups) {
    const selected = groups.map((group) => groupPairs(group, this.pairsPerGroup, this.minMargin));
    const gaps = selected.flat().map(([, , gap]) => gap);
    const meanGap = gaps.length > 0 ? gaps.reduce((sum, gap) => sum + gap, 0) / gaps.length : 1;
    log.debug(`select-js-margin: ${gaps.length} pairs from ${groups.length} groups`);
    return selected.map((pairs) =>
      pairs.map(([chosen, rejected, gap]) =>
        new Pair(chosen, rejected, this.weight === 'margin' && meanGap > 0 ? gap / meanGap : 1.0),
      ),
    );
  }
}

exportSelector(MarginSelector);
