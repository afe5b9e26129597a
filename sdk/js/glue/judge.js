// Export of world `judge` (see common.js), and `models` served by the host's imports.
import { choiceLogprobs, generate, reward } from 'ponder:plugin/models@0.2.0';
import { JudgeRequest, ModelError, Models, PluginFailure } from 'ponder-plugin';
import { configure, configured, message, trap, witError, witMessage } from './common.js';

function modelCall(call) {
  try {
    return call();
  } catch (error) {
    // componentize-js throws the `model-error` variant ({tag, val}), or an Error carrying it.
    const value = error && error.payload !== undefined ? error.payload : error;
    if (value && typeof value.tag === 'string') {
      throw new ModelError(value.tag, value.val === undefined ? '' : String(value.val));
    }
    throw error;
  }
}

class HostModels extends Models {
  generate(model, requests) {
    const converted = requests.map((r) => ({
      messages: r.messages.map(witMessage),
      sampling: {
        temperature: r.sampling.temperature,
        topP: r.sampling.topP,
        maxNewTokens: r.sampling.maxNewTokens,
        seed: BigInt(r.sampling.seed),
        stop: r.sampling.stop.map(String),
      },
    }));
    return modelCall(() => generate(model, converted));
  }

  choiceLogprobs(model, requests) {
    const converted = requests.map((r) => ({
      messages: r.messages.map(witMessage),
      prefix: String(r.prefix),
      choices: r.choices.map(String),
    }));
    return modelCall(() => choiceLogprobs(model, converted));
  }

  reward(model, requests) {
    const converted = requests.map((r) => ({ messages: r.messages.map(witMessage), response: String(r.response) }));
    return modelCall(() => reward(model, converted));
  }
}

const models = new HostModels();

function score(value, request, response) {
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'number') {
    return trap(new TypeError(`request ${request}, response ${response}: score ${JSON.stringify(value)} is not a number or null`));
  }
  return value;
}

export const judging = {
  configure(text) {
    configure('judge', text);
  },
  judge(requests) {
    const plugin = configured();
    const plain = requests.map(
      (r) => new JudgeRequest(r.instruction.map(message), r.responses, r.reference ?? null, r.metadata),
    );
    let results;
    try {
      results = plugin.judge(plain, models);
    } catch (error) {
      if (error instanceof PluginFailure) return requests.map(() => ({ tag: 'err', val: witError(error) }));
      return trap(error);
    }
    return results.map((result, index) => {
      if (result instanceof PluginFailure) return { tag: 'err', val: witError(result) };
      if (Array.isArray(result)) return { tag: 'ok', val: result.map((value, j) => score(value, index, j)) };
      return trap(new TypeError(`request ${index}: expected an array of scores or a PluginFailure, got ${JSON.stringify(result)}`));
    });
  },
};
