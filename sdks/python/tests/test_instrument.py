"""``llmscope.instrument()`` traces clients made anywhere; in a child process, since it patches
classes for the rest of the process."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import model_calls

CHILD = r"""
import sys
import anthropic, openai, llmscope
from helpers import in_trace

endpoint, provider = sys.argv[1], sys.argv[2]
llmscope.init(endpoint=endpoint, service_name="sdk-instrument")
llmscope.instrument()
llmscope.instrument()

def calls():
    plain = openai.OpenAI(api_key="k", base_url=provider + "/v1", max_retries=0)
    plain.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}])
    wrapped = llmscope.wrap(openai.OpenAI(api_key="k", base_url=provider + "/v1", max_retries=0))
    wrapped.chat.completions.create(model="gpt-4o-mini",
                                    messages=[{"role": "user", "content": "b"}])
    claude = anthropic.Anthropic(api_key="k", base_url=provider, max_retries=0)
    claude.messages.create(model="claude-sonnet-4-20250514", max_tokens=10,
                           messages=[{"role": "user", "content": "c"}])

tid, _ = in_trace(llmscope, calls)
llmscope.flush(timeout=5)
print(tid, flush=True)
"""


def test_instrument_traces_clients_made_anywhere_once(collector, provider, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(__file__))
    out = subprocess.run(
        [sys.executable, str(script), collector.endpoint, provider.url],
        capture_output=True,
        env=env,
        text=True,
        timeout=60,
        check=True,
    )
    tid = out.stdout.strip()
    calls = model_calls(collector.trace(tid, spans=4))
    providers = sorted(c["gen_ai"]["provider"] for c in calls)
    assert providers == ["anthropic", "openai", "openai"], "one span per call, none twice"
