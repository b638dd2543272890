#!/usr/bin/env bash
# Smoke test of the real program in a real terminal: `assistant chat --new` in tmux.
#
#   tests/tmux_smoke.sh HOME BASE_URL [MODEL] [QUESTION]
#
# HOME is an ASSISTANT_HOME with an ingested library (e.g. after `assistant ingest`),
# BASE_URL an OpenAI-compatible endpoint (e.g. http://127.0.0.1:8080/v1). The script
# starts the chat in a detached 100x30 tmux session, types the question without
# clicking anything, and polls the screen with capture-pane until the answer's
# sources show. It exits 0 when they do, 1 (printing the screen) when they do not.
# Not part of the pytest run: it needs tmux (apt-get install -y tmux).
set -euo pipefail

if [[ $# -lt 2 ]]; then
    sed -n '2,12p' "$0"
    exit 2
fi
HOME_DIR=$1
BASE_URL=$2
MODEL=${3:-smollm2}
QUESTION=${4:-How many sets of natural images does the MetaShift collection contain?}
EXPECT_STATUS="papers"        # the status bar once the library is loaded
EXPECT_ANSWER="supported"      # the sources panel of a cited answer
TIMEOUT_S=${TMUX_SMOKE_TIMEOUT:-300}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SESSION="assistant-smoke-$$"
command -v tmux >/dev/null || { echo "tmux is not installed" >&2; exit 2; }

cleanup() { tmux kill-session -t "$SESSION" 2>/dev/null || true; }
trap cleanup EXIT

screen() { tmux capture-pane -p -t "$SESSION"; }

wait_for() {  # wait_for TEXT SECONDS
    local deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        if screen | grep -qF -- "$1"; then
            return 0
        fi
        sleep 0.5
    done
    echo "FAIL: '$1' did not show within $2 s; the screen:" >&2
    screen >&2
    return 1
}

tmux new-session -d -s "$SESSION" -x 100 -y 30 \
    "cd '$ROOT' && env ASSISTANT_HOME='$HOME_DIR' OPENAI_BASE_URL='$BASE_URL' \
     ASSISTANT_MODEL='$MODEL' ${ASSISTANT_EMBED_MODEL_DIR:+ASSISTANT_EMBED_MODEL_DIR='$ASSISTANT_EMBED_MODEL_DIR'} \
     .venv/bin/assistant chat --new; sleep 30"

# The input has focus on the first frame: type at once, no click.
wait_for "Ask about the papers" 60
tmux send-keys -t "$SESSION" -l "$QUESTION"
tmux send-keys -t "$SESSION" Enter
wait_for "$EXPECT_STATUS" 120
wait_for "$EXPECT_ANSWER" "$TIMEOUT_S"
ANSWERED=$(screen)
grep -qF "You" <<<"$ANSWERED" || { echo "FAIL: the question is not in the conversation" >&2; exit 1; }

# The help screen opens and closes, and ctrl+q quits.
tmux send-keys -t "$SESSION" F1
wait_for "binding id" 10
tmux send-keys -t "$SESSION" Escape
tmux send-keys -t "$SESSION" C-q
sleep 1
if screen | grep -qF "Ask about the papers"; then
    echo "FAIL: ctrl+q did not quit" >&2
    exit 1
fi
echo "OK: the chat answered with its sources:"
echo "$ANSWERED"
