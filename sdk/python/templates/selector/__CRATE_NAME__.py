"""{{name}}: a ponder pair selector in Python. For each instruction, the best-scored candidate is
chosen and the worst rejected (parsed, scored candidates only); no pair when their scores are
within `min_margin`.

Configuration (optional): {"min_margin": 0.0}
"""

import ponder_plugin as pp


@pp.export_selector
class BestWorst(pp.PairSelector):
    def configure(self, config):
        pp.config.only_keys(config, ["min_margin"])
        self.min_margin = pp.config.get(config, "min_margin", float, 0.0)
        if self.min_margin < 0:
            raise pp.InvalidConfig("config key `min_margin`: must not be negative")

    def select(self, groups):
        selected = []
        for group in groups:
            scored = [(c.score, i) for i, c in enumerate(group) if c.is_scored()]
            pairs = []
            if len(scored) >= 2:
                best, worst = max(scored), min(scored)
                if best[0] - worst[0] > self.min_margin:
                    pairs.append(pp.Pair(best[1], worst[1]))
            selected.append(pairs)
        return selected
