"""{{name}}: a ponder judge in Python. Scores each response by the fraction of the configured
keywords it mentions (case-insensitive).

Configuration: {"keywords": ["paris", "france"]}
"""

import ponder_plugin as pp


@pp.export_judge
class KeywordJudge(pp.Judge):
    def configure(self, config):
        pp.config.only_keys(config, ["keywords"])
        keywords = pp.config.get(config, "keywords", list)
        if not keywords or not all(isinstance(k, str) for k in keywords):
            raise pp.InvalidConfig("config key `keywords`: give a list of at least one string")
        self.keywords = [k.lower() for k in keywords]
        pp.log.info(f"{{name}}: {len(self.keywords)} keywords")

    def judge(self, requests, models):
        outcomes = []
        for request in requests:
            scores = []
            for response in request.responses:
                text = response.lower()
                found = sum(1 for keyword in self.keywords if keyword in text)
                scores.append(found / len(self.keywords))
            outcomes.append(scores)
        return outcomes
