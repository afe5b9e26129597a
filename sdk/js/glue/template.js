// Export of world `thought-template` (see common.js).
import { ParseFailure, Split } from 'ponder-plugin';
import { configure, configured, guarded, message, trap, witMessage } from './common.js';

export const template = {
  configure(text) {
    configure('template', text);
  },
  render(instruction) {
    const plugin = configured();
    return guarded(() => plugin.render(instruction.map(message)).map(witMessage));
  },
  parse(output) {
    const plugin = configured();
    let parsed;
    try {
      parsed = plugin.parse(output);
    } catch (error) {
      return trap(error);
    }
    if (parsed instanceof Split) {
      return { tag: 'ok', val: { thought: String(parsed.thought), response: String(parsed.response) } };
    }
    if (parsed instanceof ParseFailure) return { tag: 'failure', val: String(parsed.reason) };
    return trap(new TypeError(`parse must return a Split or a ParseFailure, got ${JSON.stringify(parsed)}`));
  },
  getOutputFormat() {
    const plugin = configured();
    let format;
    try {
      format = plugin.outputFormat();
    } catch (error) {
      return trap(error);
    }
    return {
      assistantPrefix: String(format.assistantPrefix),
      responseSeparator: format.responseSeparator === null ? undefined : String(format.responseSeparator),
      forcedResponse: String(format.forcedResponse),
    };
  },
};
