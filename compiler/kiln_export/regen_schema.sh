#!/bin/sh
# Regenerates the FlatBuffers Python reader/writer (kiln/fb/) from the
# schema. The generated code is committed (Debian's flatc and
# python3-flatbuffers are both 2.0.8); test/Export/schema-in-sync.test
# fails when it is stale.
set -e
cd "$(dirname "$0")"
rm -rf kiln
flatc --python -o . ../../runtime/schema/kiln.fbs
