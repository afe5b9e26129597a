// {{name}}: a ponder pair selector in JavaScript. For each instruction, the best-scored
// candidate is chosen and the worst rejected (parsed, scored candidates only); no pair when their
// scores are within `min_margin`.
//
// Configuration (optional): {"min_margin": 0}
import { InvalidConfig, Pair, PairSelector, config, exportSelector } from 'ponder-plugin';

export class BestWorst extends PairSelector {
  configure(table) {
    config.onlyKeys(table, ['min_margin']);
    this.minMargin = config.get(table, 'min_margin', 'number', 0);
    if (this.minMargin < 0) throw new InvalidConfig('config key `min_margin`: must not be negative');
  }

  select(groups) {
    return groups.map((group) => {
      const scored = group.map((c, i) => [c, i]).filter(([c]) => c.isScored());
      if (scored.length < 2) return [];
      const best = scored.reduce((a, b) => (b[0].score > a[0].score ? b : a));
      const worst = scored.reduce((a, b) => (b[0].score < a[0].score ? b : a));
      return best[0].score - worst[0].score > this.minMargin ? [new Pair(best[1], worst[1])] : [];
    });
  }
}

exportSelector(BestWorst);
