// {{name}}: a ponder judge in JavaScript. Scores each response by the fraction of the configured
// keywords it mentions (case-insensitive).
//
// Configuration: {"keywords": ["paris", "france"]}
import { InvalidConfig, Judge, config, exportJudge, log } from 'ponder-plugin';

export class KeywordJudge extends Judge {
  configure(table) {
    config.onlyKeys(table, ['keywords']);
    const keywords = config.get(table, 'keywords', 'array');
    if (keywords.length === 0 || !keywords.every((k) => typeof k === 'string')) {
      throw new InvalidConfig('config key `keywords`: give a list of at least one string');
    }
    this.keywords = keywords.map((k) => k.toLowerCase());
    log.info(`{{name}}: ${this.keywords.length} keywords`);
  }

  judge(requests, _models) {
    return requests.map((request) =>
      request.responses.map((response) => {
        const text = response.toLowerCase();
        return this.keywords.filter((keyword) => text.includes(keyword)).length / this.keywords.length;
      }),
    );
  }
}

exportJudge(KeywordJudge);
