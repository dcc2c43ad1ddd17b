#!/bin/sh
# the test suite: here, the app prints its greeting
set -e
sh ./app.sh | grep -q hello
echo "tests passed"
