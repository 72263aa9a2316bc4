"""Runs a Node.js recording script against the fake provider and the capture receiver.

    python record_js.py vercel_ai.mjs ../vercel-ai-openai-chat.json   (NODE_PATH: its node_modules)

The script reads PROVIDER_URL (an OpenAI-compatible base URL) and OTLP_URL (the traces
endpoint) and must flush before it exits.
"""

import os
import subprocess
import sys

import fake_provider
import capture

script, out = sys.argv[1], sys.argv[2]
provider, base_url = fake_provider.start()
collector, endpoint = capture.start()
env = os.environ | {"PROVIDER_URL": base_url, "OTLP_URL": f"{endpoint}/v1/traces"}
subprocess.run(["node", script], env=env, check=True)
doc = capture.write(out)
print("spans:", sum(len(s["spans"]) for r in doc.get("resourceSpans", []) for s in r["scopeSpans"]))
