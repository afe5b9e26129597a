"""ponder-plugin: write ponder plugins (thought templates, judges, pair selectors for Thought
Preference Optimization) in Python. A plugin is a class; `export_judge(MyJudge)` (or
`export_template`, `export_selector`) makes it the component's plugin, and
`python -m ponder_plugin.build my_judge.py -o my_judge.wasm` builds the sandboxed WebAssembly
component with componentize-py against the bundled WIT contract (`ponder:plugin@0.2.0`).
The generated bindings stay inside the build; natively, this package is plain Python, so
plugins are testable with `python -m unittest`.
"""

from . import config, log
from .models import (
    ChoiceRequest,
    GenerateRequest,
    ModelError,
    Models,
    NoModels,
    RewardRequest,
    Sampling,
)
from .plugin import (
    Judge,
    PairSelector,
    ThoughtTemplate,
    export_judge,
    export_selector,
    export_template,
)
from .types import (
    Candidate,
    Failed,
    InvalidConfig,
    InvalidInput,
    JudgeOutcome,
    JudgeRequest,
    Message,
    OutputFormat,
    Pair,
    ParseFailure,
    Parsed,
    PluginFailure,
    Split,
)

#: The contract version the bundled WIT declares.
WIT_VERSION = "0.2.0"

__all__ = [
    "config",
    "log",
    "ChoiceRequest",
    "GenerateRequest",
    "ModelError",
    "Models",
    "NoModels",
    "RewardRequest",
    "Sampling",
    "Judge",
    "PairSelector",
    "ThoughtTemplate",
    "export_judge",
    "export_selector",
    "export_template",
    "Candidate",
    "Failed",
    "InvalidConfig",
    "InvalidInput",
    "JudgeOutcome",
    "JudgeRequest",
    "Message",
    "OutputFormat",
    "Pair",
    "ParseFailure",
    "Parsed",
    "PluginFailure",
    "Split",
    "WIT_VERSION",
]
