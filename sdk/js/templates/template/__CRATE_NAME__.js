// {{name}}: a ponder thought template in JavaScript. Asks the model to think inside <thought>
// tags, then answer; the host starts every output with `<thought>` (the assistant prefix).
//
// Configuration (optional): {"instruction": "text put before the user's message"}
import { InvalidInput, Message, OutputFormat, ParseFailure, Split, ThoughtTemplate, config, exportTemplate } from 'ponder-plugin';

const DEFAULT_INSTRUCTION =
  'Think about the request inside <thought></thought> tags first, then write your response after the closing tag.';

export class TagTemplate extends ThoughtTemplate {
  configure(table) {
    config.onlyKeys(table, ['instruction']);
    this.instruction = config.get(table, 'instruction', 'string', DEFAULT_INSTRUCTION);
  }

  render(instruction) {
    if (instruction.length === 0) throw new InvalidInput('the instruction has no messages');
    const messages = instruction.slice();
    const last = messages[messages.length - 1];
    messages[messages.length - 1] = new Message(last.role, `${this.instruction}\n\n${last.content}`);
    return messages;
  }

  parse(output) {
    if (!output.startsWith('<thought>')) return new ParseFailure('the output does not start with <thought>');
    const rest = output.slice('<thought>'.length);
    const end = rest.indexOf('</thought>');
    if (end < 0) return new ParseFailure('no </thought> closes the thought');
    const response = rest.slice(end + '</thought>'.length).trim();
    if (response === '') return new ParseFailure('the response after </thought> is empty');
    return new Split(rest.slice(0, end).trim(), response);
  }

  outputFormat() {
    return new OutputFormat({ assistantPrefix: '<thought>', responseSeparator: '</thought>', forcedResponse: '\n</thought>\n' });
  }
}

exportTemplate(TagTemplate);
