#!/usr/bin/env bash
# Regenerate the example frames at the end of docs/protocol.md from the codec (after a
# deliberate wire change; proto/tests/doc_examples.rs checks them on every test run).
set -euo pipefail
cd "$(dirname "$0")/.."
PLEXUS_PRINT_DOC_EXAMPLES=1 cargo test -q -p plexus-proto --test doc_examples the_built -- --nocapture 2>/dev/null |
  python3 -c '
import sys
out = sys.stdin.read()
start = out.index("<!-- example:")
end = out.rindex("```") + 3
doc = open("docs/protocol.md").read()
head = doc[: doc.index("<!-- example:")]
open("docs/protocol.md", "w").write(head + out[start:end] + "\n")
'
