"""{{name}}: a ponder thought template in Python. Asks the model to think inside <thought> tags,
then answer; the host starts every output with `<thought>` (the assistant prefix).

Configuration (optional): {"instruction": "text put before the user's message"}
"""

import ponder_plugin as pp

DEFAULT_INSTRUCTION = (
    "Think about the request inside <thought></thought> tags first, then write your response "
    "after the closing tag."
)


@pp.export_template
class TagTemplate(pp.ThoughtTemplate):
    def configure(self, config):
        pp.config.only_keys(config, ["instruction"])
        self.instruction = pp.config.get(config, "instruction", str, DEFAULT_INSTRUCTION)

    def render(self, instruction):
        if not instruction:
            raise pp.InvalidInput("the instruction has no messages")
        messages = list(instruction)
        last = messages[-1]
        messages[-1] = pp.Message(last.role, f"{self.instruction}\n\n{last.content}")
        return messages

    def parse(self, output):
        if not output.startswith("<thought>"):
            return pp.ParseFailure("the output does not start with <thought>")
        thought, separator, response = output[len("<thought>"):].partition("</thought>")
        if not separator:
            return pp.ParseFailure("no </thought> closes the thought")
        if not response.strip():
            return pp.ParseFailure("the response after </thought> is empty")
        return pp.Split(thought.strip(), response.strip())

    def output_format(self):
        return pp.OutputFormat("<thought>", "</thought>", "\n</thought>\n")
