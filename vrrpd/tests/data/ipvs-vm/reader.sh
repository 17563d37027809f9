#!/bin/sh
# The tests' reader of the LVS notify FIFO: copies every line, to the end
# (past SIGTERM).
trap '' TERM
exec cat "$1" >> "$1.lines"
