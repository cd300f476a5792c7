"""Checks --stop on a compiled byte-level model: generation ends at the
first occurrence of any stop string, the printed and JSON text end just
before it, stop_reason is "stop", and the tokens are those greedy decoding
chose up to there. Usage: stop_strings.py EXE PROMPT"""
import json
import subprocess
import sys

exe, prompt = sys.argv[1], sys.argv[2]


def run(*flags, output="json"):
    out = subprocess.run([exe, "-p", prompt, "-n", "48", "--temp", "0", "--ignore-eos",
                          "--no-stats", "--output=" + output, *flags],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out) if output == "json" else out


full = run()
text, tokens = full["text"], full["tokens"]
assert full["stop_reason"] == "length" and len(text) > 24, full

# A stop string from the middle of the text: everything before its first
# occurrence, nothing of it.
stop = text[12:16]
cut = text.find(stop)
a = run("--stop", stop)
assert a["stop_reason"] == "stop" and a["text"] == text[:cut], (stop, a["text"])
assert a["tokens"] == tokens[:len(a["tokens"])] and len(a["tokens"]) < len(tokens), a
assert run("--stop", stop, output="text") == text[:cut] + "\n"

# Two stop strings: the one that appears first wins, whichever is given
# first.
late = text[20:24]
late_cut = text.find(late)
assert late_cut > cut, (late, stop)
for flags in (["--stop", late, "--stop", stop], ["--stop", stop, "--stop", late]):
    b = run(*flags)
    assert b["stop_reason"] == "stop" and b["text"] == text[:cut], flags

# A string that never appears changes nothing; held-back bytes that could
# have started it are printed at the end.
c = run("--stop", text[-3:] + "\x01")
assert c["stop_reason"] == "length" and c["text"] == text and c["tokens"] == tokens, c
assert run("--stop", text[-3:] + "\x01", output="text") == text + "\n"
print("stop strings ok")
